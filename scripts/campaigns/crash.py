#!/usr/bin/env python3
"""Crash campaign (issue 12 item 5): `bulwark serve` on a temporary data directory, GT06 TCP
and native-batch HTTP devices that record every acknowledgement they get, `kill -9` at random
moments (seeded), restarts on the same data, devices resending what was not acknowledged; then
SIGTERM under load, and (with --disk-full, as root) a full disk under load.

At the end, from the store opened read-only: every acknowledged fix is stored exactly once, no
alert episode has two rows, and `bulwark audit verify` passes. Exit code 1 on any failure.

    scripts/campaigns/crash.py --bin target/debug/bulwark --cycles 30 [--seed N] [--disk-full]
"""

import argparse
import os
import socket
import subprocess
import tempfile
import threading
import time

from common import (
    HOME,
    Server,
    finish,
    gt06_location,
    gt06_login,
    http,
    iso,
    jitter,
    log,
    read_gt06_ack,
    seed,
    seed_rng,
)


class Device(threading.Thread):
    """A device that keeps every unacknowledged fix and resends it until acknowledged.

    `acked` holds the key of each fix whose acknowledgement arrived (GT06: device time in
    seconds; native: seq), with the time the acknowledgement arrived."""

    def __init__(self, name, rng, interval_s):
        super().__init__(daemon=True, name=name)
        self.rng = rng
        self.interval_s = interval_s
        self.pending = []  # (key, unix_s, lat, lon), oldest first
        self.acked = {}  # key -> monotonic time of the ack
        self.generate = True
        self.stop = False
        self.errors = 0
        self.last_t = int(time.time()) - 1
        self.next_new = 0.0

    def new_fix(self):
        # Device time is the dedup key for GT06: one fix per device second.
        t = max(self.last_t + 1, int(time.time()))
        self.last_t = t
        lat, lon = jitter(self.rng, *HOME)
        self.pending.append((t, t, lat, lon))

    def run(self):
        while not self.stop:
            now = time.monotonic()
            if self.generate and now >= self.next_new and len(self.pending) < 50:
                self.new_fix()
                self.next_new = now + self.interval_s
            if not self.pending:
                time.sleep(0.02)
                continue
            try:
                self.send_pending()
            except OSError:
                self.errors += 1
                self.disconnect()
                time.sleep(0.1)

    def disconnect(self):
        pass


class Gt06Device(Device):
    def __init__(self, imei, port, rng, interval_s):
        super().__init__(f"gt06-{imei}", rng, interval_s)
        self.imei = imei
        self.port = port
        self.sock = None
        self.buf = bytearray()
        self.serial = 1

    def disconnect(self):
        if self.sock:
            self.sock.close()
        self.sock = None
        self.buf = bytearray()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.settimeout(5)
        s.sendall(gt06_login(self.imei, 1))
        if read_gt06_ack(s, self.buf) is None:
            s.close()
            raise OSError("closed before the login ack")
        self.sock = s

    def send_pending(self):
        if self.sock is None:
            self.connect()
        key, t, lat, lon = self.pending[0]
        self.serial = self.serial % 0xFFFF + 1
        self.sock.sendall(gt06_location(t, lat, lon, self.serial))
        while True:
            ack = read_gt06_ack(self.sock, self.buf)
            if ack is None:
                raise OSError("closed without the ack")
            if ack == (0x12, self.serial):
                break
        self.acked[key] = time.monotonic()
        self.pending.pop(0)


class NativeDevice(Device):
    """The native batch door: up to 5 pending fixes per request, keyed by seq."""

    def __init__(self, token, base, rng, interval_s):
        super().__init__(f"native-{token[-4:]}", rng, interval_s)
        self.token = token
        self.base = base
        self.seq = 0

    def new_fix(self):
        self.seq += 1
        t = time.time()
        lat, lon = jitter(self.rng, *HOME)
        self.pending.append((self.seq, t, lat, lon))

    def send_pending(self):
        batch = self.pending[:5]
        body = {"fixes": [{"seq": k, "time": iso(t), "lat": la, "lon": lo, "accuracy_m": 8.0} for k, t, la, lo in batch]}
        status, answer = http("POST", self.base + "/api/v1/ingest/batch", body, self.token, timeout=5)
        if status != 200:
            self.errors += 1
            time.sleep(0.1)
            return
        now = time.monotonic()
        for k, *_ in batch:
            self.acked[k] = now
        del self.pending[: len(batch)]


class Reader(threading.Thread):
    """The officer reading positions all along, so access-log appends are in flight when the
    server dies."""

    def __init__(self, base, token):
        super().__init__(daemon=True)
        self.base, self.token, self.stop, self.reads = base, token, False, 0

    def run(self):
        while not self.stop:
            try:
                s, _ = http("GET", self.base + "/api/v1/positions/latest", token=self.token, timeout=3)
                self.reads += s == 200
            except OSError:
                pass
            time.sleep(0.2)


def drain(devices, timeout_s):
    for d in devices:
        d.generate = False
    deadline = time.time() + timeout_s
    while time.time() < deadline and any(d.pending for d in devices):
        time.sleep(0.1)
    return sum(len(d.pending) for d in devices)


def check_store(server, gt06, native, label):
    """Every acknowledged fix stored exactly once; no alert episode with two rows."""
    problems = []
    db = server.db()
    ids = {hw: i for i, hw in db.execute("SELECT id, hardware_id FROM devices")}
    total_acked = 0
    for d in gt06:
        rows = dict(db.execute("SELECT device_time, COUNT(*) FROM fixes WHERE device_id = ? GROUP BY device_time", (ids[d.imei],)))
        for k in d.acked:
            total_acked += 1
            n = rows.get(k * 1_000_000, 0)
            if n != 1:
                problems.append(f"{d.name}: acked fix at {k} stored {n} times")
        problems += [f"{d.name}: fix at {t} stored {n} times" for t, n in rows.items() if n > 1]
    for i, d in enumerate(native):
        hw = getattr(d, "hardware_id", f"35990000{i:07d}")
        rows = dict(db.execute("SELECT seq, COUNT(*) FROM fixes WHERE device_id = ? GROUP BY seq", (ids[hw],)))
        for k in d.acked:
            total_acked += 1
            n = rows.get(k, 0)
            if n != 1:
                problems.append(f"{d.name}: acked seq {k} stored {n} times")
    doubled = db.execute(
        "SELECT order_id, rule, protected_id, zone_id, device_id, COUNT(*) FROM alerts "
        "WHERE order_id IS NOT NULL GROUP BY order_id, rule, protected_id, zone_id, device_id HAVING COUNT(*) > 1"
    ).fetchall()
    open_twice = db.execute(
        "SELECT order_id, rule, protected_id, zone_id, device_id, COUNT(*) FROM alerts "
        "WHERE condition_active = 1 GROUP BY order_id, rule, protected_id, zone_id, device_id HAVING COUNT(*) > 1"
    ).fetchall()
    alerts = dict(db.execute("SELECT rule, COUNT(*) FROM alerts GROUP BY rule").fetchall())
    stored = db.execute("SELECT COUNT(*) FROM fixes").fetchone()[0]
    db.close()
    problems += [f"alert episode {r[:5]} has {r[5]} rows" for r in doubled]
    problems += [f"alert episode {r[:5]} open {r[5]} times" for r in open_twice]
    log(f"{label}: {total_acked} fixes acknowledged, {stored} stored, alert rows by rule {alerts}, {len(doubled)} doubled episodes")
    return problems


def start_devices(server, rng, n_gt06, n_native, gt06_interval_s, native_interval_s):
    imeis = [f"8675{i:011d}" for i in range(n_gt06)]
    tokens = [f"campaign-native-token-{i:04d}-abcdef" for i in range(n_native)]
    phone = "campaign-victim-phone-token-abcdef"
    officer = seed(server, imeis, tokens, victim_phone_token=phone)
    gt06 = [Gt06Device(imei, server.ports["gt06"], rng, gt06_interval_s) for imei in imeis]
    native = [NativeDevice(tok, server.base, rng, native_interval_s) for tok in tokens]
    # Her phone reports where he is: a proximity episode beside the zone episode.
    victim = NativeDevice(phone, server.base, rng, 1.0)
    victim.hardware_id = "campaign-victim-phone"
    native.append(victim)
    for d in gt06 + native:
        d.start()
    reader = Reader(server.base, officer)
    reader.start()
    return gt06, native, reader


def crash_cycles(args, workdir, rng):
    server = Server(args.bin, os.path.join(workdir, "data"), os.path.join(workdir, "server.log"))
    server.start()
    gt06, native, reader = start_devices(server, rng, args.gt06, args.native, 1.0, args.native_interval)
    devices = gt06 + native
    time.sleep(1.0)
    downtime = []
    for cycle in range(1, args.cycles + 1):
        time.sleep(rng.uniform(0.3, args.max_uptime))
        acked_before = sum(len(d.acked) for d in devices)
        server.kill9()
        t0 = time.monotonic()
        time.sleep(rng.uniform(0.0, 0.3))
        server.start()
        downtime.append(time.monotonic() - t0)
        log(f"cycle {cycle}/{args.cycles}: kill -9 with {acked_before} acks so far, back in {downtime[-1]:.2f} s")

    # SIGTERM under load: everything acknowledged up to the exit must be stored.
    time.sleep(1.5)
    before = sum(len(d.acked) for d in devices)
    t_term = time.monotonic()
    server.proc.send_signal(15)
    rc = server.proc.wait(timeout=60)
    after_signal = sum(1 for d in devices for t in d.acked.values() if t >= t_term)
    log(f"SIGTERM under load: exit code {rc} after {time.monotonic() - t_term:.2f} s; {before} acks before the signal, {after_signal} during shutdown")
    problems = [] if rc == 0 else [f"SIGTERM exit code {rc}"]
    server.start()
    left = drain(devices, 60)
    reader.stop = True
    for d in devices:
        d.stop = True
    if left:
        problems.append(f"{left} fixes still unacknowledged 60 s after the last restart")
    rc = server.terminate()
    problems += check_store(server, gt06, native, "crash")
    vrc, report = server.audit_verify()
    log(f"audit verify: exit code {vrc}: {report.splitlines()[-1] if report else ''}")
    if vrc != 0:
        problems.append(f"audit verify failed: {report}")
    log(
        f"crash: {args.cycles} kill -9 cycles, downtime mean {sum(downtime) / len(downtime):.2f} s, "
        f"{sum(d.errors for d in devices)} device errors (reconnects, refusals), {reader.reads} officer reads"
    )
    return problems


def disk_full(args, workdir, rng):
    mnt = os.path.join(workdir, "tmpfs")
    os.makedirs(mnt, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs_mib}m", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"SKIPPED: disk full: cannot mount a tmpfs here ({r.stderr.strip()})")
        return []
    try:
        server = Server(args.bin, os.path.join(mnt, "data"), os.path.join(workdir, "server-diskfull.log"))
        server.start()
        gt06, native, reader = start_devices(server, rng, 4, 4, 1.0, args.native_interval)
        devices = gt06 + native
        time.sleep(2.0)
        filler = os.path.join(mnt, "filler")
        # Unbuffered, so the write that meets ENOSPC raises here and closing the file
        # has nothing left to flush (a buffered close raised ENOSPC again on CI).
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:
            pass
        finally:
            os.close(fd)
        t_full = time.monotonic()
        acked_at_full = sum(len(d.acked) for d in devices)
        health = []
        while time.monotonic() - t_full < args.full_s:
            try:
                s, h = http("GET", server.base + "/healthz", timeout=2)
                health.append((s, h.get("status") if isinstance(h, dict) else h, h.get("store") if isinstance(h, dict) else None))
            except OSError as e:
                health.append(("down", str(e), None))
            time.sleep(0.5)
        acked_while_full = sum(1 for d in devices for t in d.acked.values() if t >= t_full + 1.0)
        log(f"disk full for {args.full_s} s: {acked_while_full} fixes acknowledged after the first second (WAL space already held can take a few)")
        log(f"disk full: /healthz answers {sorted(set(map(str, health)))}")
        problems = []
        if not any(h[1] != "ok" for h in health):
            problems.append("/healthz said ok all the time the disk was full")
        if server.proc.poll() is not None:
            problems.append(f"server exited while the disk was full (code {server.proc.returncode})")
        os.remove(filler)
        t_back = time.monotonic()
        left = drain(devices, 60)
        log(f"disk space back: pending fixes drained in {time.monotonic() - t_back:.2f} s, {left} left; acks at fill {acked_at_full}")
        # The store keeps saying write_failing for its hold (3 s, store::writer::FAILING_HOLD)
        # after the last failed write, then clears with the next clean one; the devices keep
        # writing, so /healthz must be ok again within 15 s.
        deadline = time.monotonic() + 15
        while True:
            s, h = http("GET", server.base + "/healthz", timeout=2)
            if (isinstance(h, dict) and h.get("status") == "ok") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        log(f"disk space back: /healthz {s} {h} {time.monotonic() - t_back:.1f} s after space came back")
        if isinstance(h, dict) and h.get("status") != "ok":
            problems.append(f"/healthz not ok 15 s after recovery: {h}")
        reader.stop = True
        for d in devices:
            d.stop = True
        if left:
            problems.append(f"{left} fixes unacknowledged 60 s after space came back")
        if server.proc.poll() is None:
            server.terminate()
        problems += check_store(server, gt06, native, "disk full")
        vrc, report = server.audit_verify()
        if vrc != 0:
            problems.append(f"audit verify after disk full failed: {report}")
        return problems
    finally:
        subprocess.run(["umount", "-l", mnt])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/debug/bulwark")
    p.add_argument("--cycles", type=int, default=30)
    p.add_argument("--seed", type=int)
    p.add_argument("--gt06", type=int, default=10, help="GT06 TCP devices (one fix a second each: device time is their dedup key)")
    p.add_argument("--native", type=int, default=6, help="native batch HTTP devices")
    p.add_argument("--native-interval", type=float, default=0.1, help="seconds between one native device's fixes")
    p.add_argument("--max-uptime", type=float, default=3.0, help="longest time between kills, s")
    p.add_argument("--disk-full", action="store_true", help="also the full-disk phase (needs mount)")
    p.add_argument("--tmpfs-mib", type=int, default=48)
    p.add_argument("--full-s", type=float, default=6.0, help="seconds the disk stays full")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    _, rng = seed_rng(args.seed)
    workdir = tempfile.mkdtemp(prefix="bulwark-crash-")
    log(f"work directory {workdir}")
    started = time.time()
    problems = crash_cycles(args, workdir, rng)
    if args.disk_full:
        problems += disk_full(args, workdir, rng)
    log(f"crash campaign took {time.time() - started:.1f} s")
    finish("crash campaign", problems, workdir, args.keep)


if __name__ == "__main__":
    main()

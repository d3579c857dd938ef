"""Shared parts of the outside campaigns: a `bulwark serve` process on its own data directory,
seeding through the HTTP API as the real roles do, and the device side of GT06 and the native
batch door. Standard library only, so the campaigns run wherever python3 does.

Nothing here imports Bulwark code: the campaigns see the server as its devices and users do.
"""

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

ADMIN_TOKEN = "campaign-admin-token-0123456789abcdef"
OFFICER = "campaign-officer"
PASSWORD = "campaign-password-1"
# Seoul, far from anything else the tests use.
HOME = (37.5560, 126.9040)


def log(*parts):
    print(*parts, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile(want=65536):
    """Raise the soft open-files limit as far as the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Server:
    """One `bulwark serve` on fixed ports, restartable on the same data directory."""

    def __init__(self, binary, data_dir, log_path, extra_toml=""):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.http_port = free_port()
        self.ports = {p: free_port() for p in ("gt06", "h02", "watch", "teltonika")}
        self.osmand_port = free_port()
        os.makedirs(data_dir, exist_ok=True)
        self.config = os.path.join(os.path.dirname(os.path.abspath(log_path)), "campaign.toml")
        with open(self.config, "w") as f:
            f.write(
                f'data_dir = "{data_dir}"\nbind = "127.0.0.1"\nhttp_port = {self.http_port}\n'
                f'osmand_port = {self.osmand_port}\nadmin_token = "{ADMIN_TOKEN}"\n'
                f"{extra_toml}\n[devices]\n"
                + "".join(f"{p}_port = {n}\n" for p, n in self.ports.items())
                + "max_connections_per_ip = 64\n"
            )
        self.proc = None
        self.base = f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout=60.0):
        out = open(self.log_path, "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.config],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                status, _ = http("GET", self.base + "/healthz", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server did not answer /healthz in time")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def audit_verify(self):
        r = subprocess.run(
            [self.binary, "audit", "verify", "--data-dir", self.data_dir],
            capture_output=True,
            text=True,
        )
        return r.returncode, (r.stdout + r.stderr).strip()

    def db(self):
        """The store opened read-only (the server may be running)."""
        path = os.path.join(self.data_dir, "bulwark.db")
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)


def http(method, url, body=None, token=None, timeout=10, raw=None, headers=None):
    """One request; returns (status, parsed JSON or text). Connection errors raise OSError."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    if body is not None or raw is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode("utf-8", "replace")
            status = r.status
    except urllib.error.HTTPError as e:
        text = e.read().decode("utf-8", "replace")
        status = e.code
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def must(status_body, *ok):
    status, body = status_body
    if status not in ok:
        raise RuntimeError(f"unexpected answer {status}: {body}")
    return body


def seed(server, gt06_imeis, native_tokens, zone_radius_m=150.0, victim_phone_token=None):
    """One case: an offender wearing every campaign device, a protected person (with a native
    phone if `victim_phone_token`), an order with a home zone around `HOME` where the devices
    report (so a zone alert opens, and a proximity alert when her phone reports there too),
    and a monitoring officer assigned to it. Returns the officer's session token."""
    b, t = server.base, ADMIN_TOKEN
    off = must(http("POST", b + "/api/v1/people", {"role": "offender", "display_name": "Campaign offender"}, t), 201)
    vic = must(http("POST", b + "/api/v1/people", {"role": "protected", "display_name": "Campaign victim"}, t), 201)
    for imei in gt06_imeis:
        must(http("POST", b + "/api/v1/devices", {"kind": "ankle_monitor", "protocol": "gt06", "hardware_id": imei, "owner_id": off["id"]}, t), 201)
    for i, tok in enumerate(native_tokens):
        must(http("POST", b + "/api/v1/devices", {"kind": "ankle_monitor", "protocol": "native", "hardware_id": f"35990000{i:07d}", "owner_id": off["id"], "token": tok}, t), 201)
    if victim_phone_token:
        must(http("POST", b + "/api/v1/devices", {"kind": "victim_phone", "protocol": "native", "hardware_id": "campaign-victim-phone", "owner_id": vic["id"], "token": victim_phone_token}, t), 201)
    case = must(http("POST", b + "/api/v1/cases", {"reference": "CAMPAIGN-1", "offender_id": off["id"], "protected_ids": [vic["id"]]}, t), 201)
    acct = must(http("POST", b + "/api/v1/accounts", {"username": OFFICER, "password": PASSWORD, "role": "monitoring_officer"}, t), 201)
    must(http("POST", b + f"/api/v1/accounts/{acct['account']['id']}/assignments", {"case_id": case["id"]}, t), 204)
    login = must(http("POST", b + "/api/v1/auth/login", {"username": OFFICER, "password": PASSWORD}), 200)
    officer = login["token"]
    must(
        http(
            "POST",
            b + "/api/v1/orders",
            {
                "case_id": case["id"],
                "kind": "provisional_measure",
                "valid_from": "2026-01-01T00:00:00Z",
                "no_approach_m": 100.0,
                "warning_m": 500.0,
                "disclosure_radius_m": 600.0,
                "zones": [{"kind": "home", "label": "home", "shape": {"type": "circle", "lat": HOME[0], "lon": HOME[1], "radius_m": zone_radius_m}}],
            },
            officer,
        ),
        201,
    )
    return officer


# ---- GT06 (Concox), the device side --------------------------------------------------------


def crc16_x25(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


def gt06_frame(protocol, content, serial):
    body = bytes([1 + len(content) + 4, protocol]) + content + serial.to_bytes(2, "big")
    return b"\x78\x78" + body + crc16_x25(body).to_bytes(2, "big") + b"\x0d\x0a"


def gt06_login(imei, serial=1):
    digits = imei.rjust(16, "0")
    return gt06_frame(0x01, bytes(int(digits[i]) << 4 | int(digits[i + 1]) for i in range(0, 16, 2)), serial)


def gt06_location(unix_s, lat, lon, serial):
    t = time.gmtime(unix_s)
    c = bytes([t.tm_year - 2000, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, 0xC9])
    c += round(abs(lat) * 1_800_000).to_bytes(4, "big") + round(abs(lon) * 1_800_000).to_bytes(4, "big")
    flags = (1 << 12) | (1 << 10 if lat >= 0 else 0) | (1 << 11 if lon < 0 else 0)
    c += bytes([0]) + flags.to_bytes(2, "big") + bytes([0x01, 0xC2, 0x05, 0x12, 0x34, 0x00, 0x56, 0x78])
    return gt06_frame(0x12, c, serial)


def read_gt06_ack(sock, buf):
    """Reads one 10-byte GT06 acknowledgement; returns (protocol, serial) or None on EOF."""
    while len(buf) < 10:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buf.extend(chunk)
    # Skip to a start marker (a server command may sit between acks).
    while len(buf) >= 2 and buf[:2] != b"\x78\x78":
        del buf[0]
    if len(buf) < 3:
        return read_gt06_ack(sock, buf)
    n = buf[2] + 5
    while len(buf) < n:
        chunk = sock.recv(4096)
        if not chunk:
            return None
        buf.extend(chunk)
    frame = bytes(buf[:n])
    del buf[:n]
    return frame[3], int.from_bytes(frame[n - 6 : n - 4], "big")


def jitter(rng, lat, lon, m=20.0):
    d = m / 111_000.0
    return lat + rng.uniform(-d, d), lon + rng.uniform(-d, d)


def iso(unix_s):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(unix_s))) + f".{int((unix_s % 1) * 1e6):06d}Z"


def seed_rng(seed):
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 32)
    log(f"seed {seed} (rerun with --seed {seed})")
    return seed, random.Random(seed)


def fail(msg):
    log(f"FAILED: {msg}")
    sys.exit(1)


def finish(name, problems, workdir, keep):
    """Prints the problems and exits 1, keeping the work directory; or removes it (unless
    `keep`) and prints PASSED."""
    if problems:
        for pr in problems[:60]:
            log(f"  {pr}")
        fail(f"{len(problems)} problems (work directory kept: {workdir})")
    if not keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    log(f"PASSED: {name}")

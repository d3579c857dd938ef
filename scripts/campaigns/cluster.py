#!/usr/bin/env python3
"""Cluster campaign (issue 11 item 3): Bulwark nodes on real PostgreSQL and NATS JetStream, GT06
TCP trackers and native-batch HTTP devices spread over every node, each device keeping what was
not acknowledged and resending it (to the next node when its node is gone), officers' SSE
consoles on every node. Three phases, each on its own PostgreSQL schema and NATS namespace:

  failover  3 nodes on the shared services; the node owning the busiest partition (the main
            offender's, found from /healthz) is killed with -9 under load, and the offender
            walks up to his victim while it is down.
  nats      2 nodes on a private `nats-server -js`, killed with -9 under load and restarted on
            its store: the nodes must keep acknowledging fixes (PostgreSQL is the truth), and
            the violation made while NATS is down is raised once it is back.
  postgres  2 nodes on a private PostgreSQL (initdb, as the postgres user), stopped
            (immediate) under load and started again: no fix acknowledged while it is down,
            /healthz not ok, clear errors to the devices, nothing acknowledged lost, and no
            fix acknowledged before its commit (track_commit_timestamp on that instance).

Checked at the end of each phase, from PostgreSQL directly (psql): every acknowledged fix is
stored exactly once (GT06 by device time, native by seq), no alert episode has two rows, the
violation is raised exactly once, and every surviving node's console received it. Times
(kill -> partition leased again, kill -> alert on a console, outage -> catch-up) are printed,
never asserted. Every wait has a bound; the whole run has a watchdog (--timeout).

A missing PostgreSQL or NATS (or nats-server / initdb for the private phases) prints SKIPPED
and exits 0, unless BULWARK_REQUIRE_SERVICES=1. A binary without `serve --cluster` (before the
cluster wiring is merged) prints NOT RUN naming what it waits for and exits 0, unless
BULWARK_REQUIRE_CLUSTER=1; so does one whose `serve --cluster` starts without a cluster view in
/healthz (the flags exist before the wiring does). `--store-only` runs the postgres phase on one `serve --store` node without NATS.
`--self-check` runs the failover phase on one SQLite node of today's
binary instead (kill -9 and restart), to check the harness itself.

    scripts/campaigns/cluster.py --bin target/debug/bulwark [--phases failover,nats,postgres]
"""

import argparse
import http.client as httpc
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from common import HOME, OFFICER, PASSWORD, ADMIN_TOKEN, Server, finish, http, jitter, log, must, seed_rng
from crash import Gt06Device, NativeDevice

PG_SERVER = os.environ.get("BULWARK_PG", "postgres://postgres@127.0.0.1:5432/test")
NATS_URL = os.environ.get("BULWARK_NATS", "nats://127.0.0.1:4222")
REQUIRE_SERVICES = os.environ.get("BULWARK_REQUIRE_SERVICES") == "1"
REQUIRE_CLUSTER = os.environ.get("BULWARK_REQUIRE_CLUSTER") == "1"
PARTITIONS = 64
# About 3 km north of the victim's home: far outside the 500 m warning distance.
FAR = (HOME[0] + 0.027, HOME[1])


class Skip(Exception):
    pass


class Watchdog(Exception):
    pass


class NotWired(Exception):
    """The binary takes --cluster, but its /healthz has no cluster view: not wired yet."""


def hostport(url, default):
    h = url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    host, _, port = h.partition(":")
    return host, int(port or default)


def reachable(url, default):
    try:
        with socket.create_connection(hostport(url, default), timeout=2):
            return True
    except OSError:
        return False


def missing(what):
    if REQUIRE_SERVICES:
        raise RuntimeError(f"{what} is missing but BULWARK_REQUIRE_SERVICES=1")
    raise Skip(what)


def partition_of(person_id, count=PARTITIONS):
    """crates/cluster/src/partition.rs, pinned there by a test: splitmix64 of the person id."""
    m = (1 << 64) - 1
    z = (person_id + 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return z % count


# ---- PostgreSQL and NATS from the outside -------------------------------------------------


class Pg:
    """One schema on a PostgreSQL server, read and written with psql."""

    def __init__(self, server_url, schema):
        self.server_url, self.schema = server_url, schema
        sep = "&" if "?" in server_url else "?"
        self.url = f"{server_url}{sep}options=-csearch_path%3D{schema}"

    def sql(self, query, url=None, timeout=60):
        r = subprocess.run(
            ["psql", "-X", "-q", "-At", "-F", "\x1f", "-v", "ON_ERROR_STOP=1", url or self.url, "-c", query],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if r.returncode != 0:
            raise RuntimeError(f"psql: {r.stderr.strip()}")
        return [line.split("\x1f") for line in r.stdout.splitlines() if line]

    def create(self):
        self.sql(f"CREATE SCHEMA {self.schema}", url=self.server_url)

    def drop(self):
        try:
            self.sql(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE", url=self.server_url)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            log(f"could not drop schema {self.schema}: {e}")


def nats_drop_namespace(url, ns):
    """Deletes the JetStream streams of one namespace (events, KV buckets) over the plain NATS
    protocol, as scripts/cluster down does."""
    assert len(ns) >= 6
    try:
        s = socket.create_connection(hostport(url, 4222), timeout=5)
    except OSError:
        return
    with s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(b'CONNECT {"verbose":false}\r\nSUB _campaign.r 1\r\n')

        def req(subject, body=b""):
            s.sendall(b"PUB %s _campaign.r %d\r\n%s\r\n" % (subject.encode(), len(body), body))
            while True:
                line = f.readline()
                if not line or line.startswith(b"-ERR"):
                    return {}
                if line.startswith(b"PING"):
                    s.sendall(b"PONG\r\n")
                elif line.startswith(b"MSG"):
                    n = int(line.split()[-1])
                    return json.loads(f.read(n + 2)[:n] or b"{}")

        names = req("$JS.API.STREAM.NAMES", b'{"offset":0}').get("streams") or []
        for name in names:
            if ns in name:
                req(f"$JS.API.STREAM.DELETE.{name}")


class PrivateNats:
    """A nats-server -js of this campaign's own, restartable on its store directory."""

    def __init__(self, workdir):
        self.bin = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.access(self.bin, os.X_OK):
            missing("nats-server (for the private NATS of the nats phase)")
        self.port = free_port()
        self.dir = os.path.join(workdir, "nats")
        os.makedirs(self.dir, exist_ok=True)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        log_f = open(os.path.join(self.dir, "nats.log"), "ab")
        self.proc = subprocess.Popen(
            [self.bin, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", self.dir],
            stdout=log_f,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: reachable(self.url, 4222), 20, "the private nats-server to listen")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=20)


class PrivatePg:
    """A PostgreSQL instance of this campaign's own (initdb + pg_ctl as the postgres user,
    since they refuse root), stoppable and startable under load."""

    def __init__(self, workdir):
        self.initdb = shutil.which("initdb")
        self.pg_ctl = shutil.which("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            missing("initdb / pg_ctl (for the private PostgreSQL of the postgres phase)")
        self.dir = os.path.join(workdir, "pg")
        os.makedirs(self.dir, exist_ok=True)
        self.as_user = []
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(workdir, pw.pw_uid, pw.pw_gid)
            os.chmod(workdir, 0o755)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.run([self.initdb, "-D", self.dir + "/data", "-U", "postgres", "--auth=trust", "-E", "UTF8"], 120)

    def run(self, argv, timeout):
        r = subprocess.run(self.as_user + argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[:2])}: {r.stdout[-400:]} {r.stderr[-400:]}")

    def start(self):
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c track_commit_timestamp=on"
        self.run([self.pg_ctl, "-D", self.dir + "/data", "-l", self.dir + "/pg.log", "-o", opts, "-w", "-t", "60", "start"], 90)

    def stop(self, mode="immediate"):
        self.run([self.pg_ctl, "-D", self.dir + "/data", "-m", mode, "-w", "-t", "60", "stop"], 90)


# ---- nodes, devices, consoles --------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout_s, what, every=0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")


class Node(Server):
    """One `bulwark serve` of the cluster, on its own ports and data directory."""

    def __init__(self, binary, workdir, name, cluster_args):
        d = os.path.join(workdir, name)
        os.makedirs(d, exist_ok=True)
        super().__init__(binary, os.path.join(d, "data"), os.path.join(d, "serve.log"))
        self.name = name
        self.cluster_args = cluster_args

    def start(self, timeout=90.0):
        out = open(self.log_path, "ab")
        # The pipeline at info: its engine rebuilds (with their duration) are read back.
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn,server::pipeline=info"))
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--config", self.config] + self.cluster_args,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if http("GET", self.base + "/healthz", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not answer /healthz in {timeout} s; see {self.log_path}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def health(self):
        """(status code, body) of /healthz with the admin token, or (None, error)."""
        try:
            return http("GET", self.base + "/healthz", token=ADMIN_TOKEN, timeout=3)
        except OSError as e:
            return None, str(e)

    def owned(self):
        s, h = self.health()
        if s is None or not isinstance(h, dict):
            return None
        c = h.get("cluster") or {}
        owned = set()
        for x in c.get("partitions_owned") or []:  # numbers, or names like "p7"
            try:
                owned.add(int(str(x).lstrip("p")))
            except ValueError:
                pass
        return owned

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Moving:
    """Where a device reports from; the campaign moves the violator by setting `where`."""

    def place(self, where):
        self.where = where

    def spot(self):
        return jitter(self.rng, *self.where, m=5.0)


class CGt06(Moving, Gt06Device):
    """A GT06 tracker that moves to the next node when its connection fails."""

    def __init__(self, imei, nodes, first, rng, interval_s, where):
        super().__init__(imei, nodes[first % len(nodes)].ports["gt06"], rng, interval_s)
        self.nodes, self.at, self.where = nodes, first, where

    def new_fix(self):
        t = max(self.last_t + 1, int(time.time()))
        self.last_t = t
        self.pending.append((t, t, *self.spot()))

    def disconnect(self):
        super().disconnect()
        self.at += 1
        self.port = self.nodes[self.at % len(self.nodes)].ports["gt06"]


class CNative(Moving, NativeDevice):
    """A native batch device that moves to the next node when its node does not answer, and
    keeps the refusals it got (status, body) for the report."""

    def __init__(self, token, hardware_id, nodes, first, rng, interval_s, where):
        super().__init__(token, nodes[first % len(nodes)].base, rng, interval_s)
        self.hardware_id, self.nodes, self.at, self.where = hardware_id, nodes, first, where
        self.refusals = {}

    def new_fix(self):
        self.seq += 1
        self.pending.append((self.seq, time.time(), *self.spot()))

    def disconnect(self):
        self.at += 1
        self.base = self.nodes[self.at % len(self.nodes)].base

    def send_pending(self):
        from common import iso

        batch = self.pending[:5]
        body = {"fixes": [{"seq": k, "time": iso(t), "lat": la, "lon": lo, "accuracy_m": 8.0} for k, t, la, lo in batch]}
        status, answer = http("POST", self.base + "/api/v1/ingest/batch", body, self.token, timeout=5)
        if status != 200:
            self.errors += 1
            err = answer.get("error") if isinstance(answer, dict) else None
            key = f"{status} {err.get('code')}" if isinstance(err, dict) else f"{status} {str(answer)[:80]}"
            self.refusals[key] = self.refusals.get(key, 0) + 1
            time.sleep(0.2)
            return
        now = time.monotonic()
        for k, *_ in batch:
            self.acked[k] = now
        del self.pending[: len(batch)]


class Console(threading.Thread):
    """An officer's SSE console on one node: records every alert event with its arrival time.
    Reconnects (with Last-Event-ID) while `reconnect` is set."""

    def __init__(self, node, token, reconnect=False):
        super().__init__(daemon=True, name=f"console-{node.name}")
        self.node, self.token, self.reconnect = node, token, reconnect
        self.alerts = []  # (monotonic time, alert dict)
        self.connected = threading.Event()
        self.stop = False
        self.last_id = None
        self.error = None

    def run(self):
        while not self.stop:
            try:
                self.listen()
            except (OSError, httpc.HTTPException, ValueError) as e:
                self.error = str(e)
            self.connected.clear()
            if not self.reconnect:
                return
            time.sleep(0.3)

    def listen(self):
        c = httpc.HTTPConnection("127.0.0.1", self.node.http_port, timeout=30)
        headers = {"authorization": f"Bearer {self.token}", "accept": "text/event-stream"}
        if self.last_id:
            headers["last-event-id"] = self.last_id
        c.request("GET", "/api/v1/live", headers=headers)
        r = c.getresponse()
        if r.status != 200:
            raise ValueError(f"live stream answered {r.status}: {r.read()[:200]!r}")
        self.connected.set()
        data = []
        while not self.stop:
            line = r.fp.readline()
            if not line:
                raise OSError("live stream closed")
            line = line.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("id:"):
                self.last_id = line[3:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
            elif line == "" and data:
                try:
                    ev = json.loads("\n".join(data))
                except ValueError:
                    ev = None
                data = []
                if isinstance(ev, dict) and ev.get("type") == "alert":
                    self.alerts.append((time.monotonic(), ev))

    def first(self, pred):
        return next((t for t, a in self.alerts if pred(a)), None)


# ---- one cluster run -----------------------------------------------------------------------


class Run:
    """Nodes on one schema and namespace, the cases, devices and consoles of one phase."""

    def __init__(self, args, workdir, rng, label, n_nodes, pg_server, nats_url, self_check=False):
        self.args, self.rng, self.label = args, rng, label
        stamp = f"{int(time.time())}_{os.getpid()}_{label}"
        self.self_check = self_check
        self.pg = None if self_check else Pg(pg_server, f"bulwark_campaign_{stamp}")
        self.ns = f"bwcamp{stamp}"
        self.nats_url = nats_url
        self.dir = os.path.join(workdir, label)
        self.nodes = []
        for i in range(1, n_nodes + 1):
            if self_check:
                extra = []
            elif nats_url is None:  # --store-only: one node on PostgreSQL, no cluster
                extra = ["--store", self.pg.url]
            else:
                extra = ["--store", self.pg.url, "--cluster", nats_url, "--node-id", f"{label}-n{i}", "--cluster-namespace", self.ns]
            self.nodes.append(Node(args.bin, self.dir, f"n{i}", extra))
        self.devices, self.consoles = [], []
        self.wall_offset = time.time() - time.monotonic()

    def start(self):
        if self.pg:
            self.pg.create()
        for i, n in enumerate(self.nodes):
            if i > 0:  # every node signs with the same keys (docs/cluster.md)
                os.makedirs(n.data_dir, exist_ok=True)
                for f in os.listdir(self.nodes[0].data_dir):
                    if f.endswith(".key"):
                        shutil.copy2(os.path.join(self.nodes[0].data_dir, f), n.data_dir)
            n.start()
            if i == 0 and not self.self_check and self.nats_url:
                _, h = n.health()
                if not (isinstance(h, dict) and isinstance(h.get("cluster"), dict)):
                    raise NotWired(f"`serve --cluster` started, but /healthz has no cluster view ({json.dumps(h)[:200]})")
        log(f"{self.label}: {len(self.nodes)} node(s) up: " + ", ".join(f"{n.name} http {n.base}" for n in self.nodes))

    def cleanup(self):
        for d in self.devices:
            d.stop = True
        for c in self.consoles:
            c.stop = True
        for n in self.nodes:
            if n.alive():
                n.proc.kill()
                n.proc.wait()
        if self.pg and not self.args.keep:
            self.pg.drop()
        if not self.self_check and self.nats_url and not self.args.keep:
            nats_drop_namespace(self.nats_url, self.ns)

    def seed(self):
        """Case 1 (the busy one): an offender wearing GT06 trackers and native devices that
        report 3 km from his victim, whose phone reports at her home; a proximity order.
        Cases 2 and 3: quieter offenders elsewhere, so the busiest partition is case 1's.
        Registration goes through node 1; devices and consoles are spread over every node."""
        a = self.args
        b, t = self.nodes[0].base, ADMIN_TOKEN
        people, cases = [], []
        for k in range(3):
            off = must(http("POST", b + "/api/v1/people", {"role": "offender", "display_name": f"Cluster offender {k}"}, t), 201)
            vic = must(http("POST", b + "/api/v1/people", {"role": "protected", "display_name": f"Cluster victim {k}"}, t), 201)
            case = must(http("POST", b + "/api/v1/cases", {"reference": f"CLUSTER-{self.label}-{k}", "offender_id": off["id"], "protected_ids": [vic["id"]]}, t), 201)
            people.append((off["id"], vic["id"]))
            cases.append(case["id"])
        acct = must(http("POST", b + "/api/v1/accounts", {"username": OFFICER, "password": PASSWORD, "role": "monitoring_officer"}, t), 201)
        for c in cases:
            must(http("POST", b + f"/api/v1/accounts/{acct['account']['id']}/assignments", {"case_id": c}, t), 204)
        officer = must(http("POST", b + "/api/v1/auth/login", {"username": OFFICER, "password": PASSWORD}), 200)["token"]
        orders = []
        for c in cases:
            o = must(http("POST", b + "/api/v1/orders", {
                "case_id": c, "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
                "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
            }, officer), 201)
            orders.append(o["id"])
        self.case, self.order, self.offender = cases[0], orders[0], people[0][0]
        self.busy_partition = partition_of(self.offender)
        nodes, first = self.nodes, 0

        def dev(body):
            must(http("POST", b + "/api/v1/devices", dict(body, kind=body.get("kind", "ankle_monitor")), t), 201)

        for i in range(a.gt06):
            imei = f"8676{self.rng.randrange(10**10):010d}{i % 10}"
            dev({"protocol": "gt06", "hardware_id": imei, "owner_id": self.offender})
            self.devices.append(CGt06(imei, nodes, first, self.rng, 1.0, FAR))
            first += 1
        for i in range(a.native):
            tok, hw = f"cluster-native-{self.label}-{i:04d}-token-abcdef", f"cluster-{self.label}-{i:04d}"
            dev({"protocol": "native", "hardware_id": hw, "owner_id": self.offender, "token": tok})
            self.devices.append(CNative(tok, hw, nodes, first, self.rng, a.native_interval, FAR))
            first += 1
        for k in (1, 2):  # the quiet cases: one slow native device each, far from anyone
            tok, hw = f"cluster-quiet-{self.label}-{k}-token-abcdef", f"cluster-quiet-{self.label}-{k}"
            dev({"protocol": "native", "hardware_id": hw, "owner_id": people[k][0], "token": tok})
            self.devices.append(CNative(tok, hw, nodes, first, self.rng, 2.0, (FAR[0] + 0.05 * k, FAR[1])))
            first += 1
        tok = f"cluster-phone-{self.label}-token-abcdef"
        dev({"kind": "victim_phone", "protocol": "native", "hardware_id": f"cluster-phone-{self.label}", "owner_id": people[0][1], "token": tok})
        self.phone = CNative(tok, f"cluster-phone-{self.label}", nodes, first, self.rng, 1.0, HOME)
        self.devices.append(self.phone)
        # The violator: the main offender, all his devices together (his first one is timed).
        self.offender_devices = self.devices[: a.gt06 + a.native]
        self.violator = self.devices[0]
        for d in self.devices:
            d.start()
        self.consoles = [Console(n, officer, reconnect=True) for n in self.nodes]
        for c in self.consoles:
            c.start()
        for c in self.consoles:
            if not c.connected.wait(20):
                raise RuntimeError(f"console on {c.node.name} did not connect: {c.error}")
        log(f"{self.label}: seeded 3 cases; main case {self.case} (offender {self.offender}, partition {self.busy_partition}); "
            f"{a.gt06} GT06 + {a.native} native devices on him, 2 quiet devices, her phone; consoles on every node")

    def acks(self, since=None, until=None):
        return sum(1 for d in self.devices for t in d.acked.values() if (since is None or t >= since) and (until is None or t <= until))

    def is_violation(self, a):
        return a.get("rule") == "proximity_violation" and a.get("case_id") == self.case

    def violate(self):
        for d in self.offender_devices:
            d.place(HOME)
        return time.monotonic()

    def drain(self, timeout_s=90):
        for d in self.devices:
            d.generate = False
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(d.pending for d in self.devices):
            time.sleep(0.1)
        return sum(len(d.pending) for d in self.devices)

    def rows(self, query):
        if self.self_check:
            import sqlite3

            db = sqlite3.connect(f"file:{os.path.join(self.nodes[0].data_dir, 'bulwark.db')}?mode=ro", uri=True, timeout=30)
            try:
                return [[str(v) if v is not None else "" for v in r] for r in db.execute(query).fetchall()]
            finally:
                db.close()
        return self.pg.sql(query)

    def fence(self, partition):
        """The partition's fencing token recorded in the store (`partition_fences`), or None."""
        r = self.rows(f"SELECT token FROM partition_fences WHERE part = {int(partition)}")
        return int(r[0][0]) if r and r[0] and r[0][0] != "" else None

    def check(self, commit_ts=False):
        """Every acknowledged fix stored exactly once; no alert episode with two rows; the
        violation raised exactly once. With `commit_ts` (a PostgreSQL with
        track_commit_timestamp = on): no fix acknowledged before its transaction committed."""
        problems = []
        stored, committed = {}, {}
        ts = "MAX(extract(epoch FROM pg_xact_commit_timestamp(f.xmin)))" if commit_ts else "0"
        for hw, t, seq, n, c in self.rows(
            f"SELECT d.hardware_id, f.device_time, COALESCE(f.seq, -1), COUNT(*), {ts} FROM fixes f "
            "JOIN devices d ON d.id = f.device_id GROUP BY d.hardware_id, f.device_time, f.seq"
        ):
            stored[(hw, int(t), int(seq))] = int(n)
            committed[(hw, int(t), int(seq))] = float(c or 0)
        by_time, by_seq = {}, {}
        for (hw, t, seq), n in stored.items():
            by_time[(hw, t)] = by_time.get((hw, t), 0) + n
            if seq >= 0:
                by_seq[(hw, seq)] = by_seq.get((hw, seq), 0) + n
            if n > 1:
                problems.append(f"{hw}: fix at {t} seq {seq} stored {n} times")
        commit_of = {}
        for (hw, t, seq), c in committed.items():
            commit_of[(hw, "t", t)] = c
            commit_of[(hw, "s", seq)] = c
        total, early = 0, []
        for d in self.devices:
            for k, acked_at in d.acked.items():
                total += 1
                if isinstance(d, CGt06):
                    n = by_time.get((d.imei, k * 1_000_000), 0)
                    c = commit_of.get((d.imei, "t", k * 1_000_000))
                else:
                    n = by_seq.get((d.hardware_id, k), 0)
                    c = commit_of.get((d.hardware_id, "s", k))
                if n != 1:
                    problems.append(f"{d.name}: acknowledged fix {k} stored {n} times")
                # The monotonic ack time on the wall clock; 0.2 s covers the conversion, an
                # ack sent while PostgreSQL was down precedes its commit by the outage.
                if commit_ts and c and acked_at + self.wall_offset < c - 0.2:
                    early.append(f"{d.name}: fix {k} acknowledged {c - acked_at - self.wall_offset:.2f} s before its commit")
        problems += early
        if commit_ts:
            log(f"{self.label}: {len(early)} fixes acknowledged before their commit (PostgreSQL commit timestamps)")
        doubled = self.rows(
            "SELECT order_id, rule, protected_id, zone_id, device_id, COUNT(*) FROM alerts WHERE order_id IS NOT NULL "
            "GROUP BY order_id, rule, protected_id, zone_id, device_id HAVING COUNT(*) > 1"
        )
        problems += [f"alert episode {r[:5]} has {r[5]} rows" for r in doubled]
        violations = self.rows(f"SELECT id, state, raised_at FROM alerts WHERE order_id = {self.order} AND rule = 'proximity_violation'")
        if len(violations) != 1:
            problems.append(f"the violation of order {self.order} has {len(violations)} alert rows (want exactly 1): {violations}")
        by_rule = self.rows("SELECT rule, COUNT(*) FROM alerts GROUP BY rule ORDER BY rule")
        log(f"{self.label}: {total} fixes acknowledged, {sum(stored.values())} rows stored, alerts by rule {dict(map(tuple, by_rule))}")
        return problems

    def consoles_saw(self, nodes, t0, timeout_s):
        """Waits until every console on `nodes` has the violation; returns {node: seconds after
        t0 or None}."""
        deadline = time.monotonic() + timeout_s
        cs = [c for c in self.consoles if c.node in nodes]
        while time.monotonic() < deadline and not all(c.first(self.is_violation) for c in cs):
            time.sleep(0.1)
        return {c.node.name: (lambda t: None if t is None else t - t0)(c.first(self.is_violation)) for c in cs}

    def cluster_views(self):
        for n in self.nodes:
            s, h = n.health()
            view = h.get("cluster") if isinstance(h, dict) else h
            if isinstance(view, dict) and isinstance(view.get("partitions_owned"), list):
                view = dict(view, partitions_owned=f"{len(view['partitions_owned'])} partitions")
            log(f"  {n.name}: /healthz {s} {h.get('status') if isinstance(h, dict) else ''} cluster {json.dumps(view)[:300]}")


def fmt(x):
    return "never" if x is None else f"{x:.2f} s"


# ---- the phases ----------------------------------------------------------------------------


def failover(args, workdir, rng):
    if args.self_check:
        run = Run(args, workdir, rng, "selfcheck", 1, None, None, self_check=True)
    else:
        if not reachable(PG_SERVER, 5432) or not shutil.which("psql"):
            missing(f"PostgreSQL at {PG_SERVER} (or psql)")
        if not reachable(NATS_URL, 4222):
            missing(f"NATS at {NATS_URL}")
        run = Run(args, workdir, rng, "failover", args.nodes, PG_SERVER, NATS_URL)
    try:
        run.start()
        run.seed()
        time.sleep(args.warmup)
        problems = []
        if run.self_check:
            victim = run.nodes[0]
        else:
            # Wait for the leases to settle, then find the busiest partition's owner.
            def owner():
                hits = [n for n in run.nodes if run.busy_partition in (n.owned() or set())]
                return hits[0] if len(hits) == 1 else None

            victim = wait_for(owner, 60, f"exactly one node to own partition {run.busy_partition}", every=0.5)
            run.cluster_views()
        fence_before = run.fence(run.busy_partition)
        log_offsets = {n.name: os.path.getsize(n.log_path) if os.path.exists(n.log_path) else 0 for n in run.nodes}
        acks_before = run.acks()
        t_kill = time.monotonic()
        victim.kill9()
        log(f"failover: kill -9 {victim.name} (owner of partition {run.busy_partition}) with {acks_before} acks so far")
        survivors = [n for n in run.nodes if n is not victim]
        if run.self_check:
            victim.start()
            survivors = [victim]
            wait_for(lambda: run.consoles[0].connected.is_set(), 30, "the console to reconnect")
        t_violate = run.violate()
        t_lease = None
        if not run.self_check:
            def taken():
                return any(run.busy_partition in (n.owned() or set()) for n in survivors)

            try:
                wait_for(taken, 60, f"a survivor to take partition {run.busy_partition}", every=0.1)
                t_lease = time.monotonic() - t_kill
            except RuntimeError as e:
                problems.append(str(e))
        seen = run.consoles_saw(survivors, t_kill, 60)
        time.sleep(args.after)
        t_acked = min((t for d in run.offender_devices for t in d.acked.values() if t >= t_violate), default=None)
        log(f"failover: partition {run.busy_partition} leased again {'n/a (one node)' if run.self_check else fmt(t_lease)} after the kill; "
            f"his first fix at her home acknowledged {fmt(t_acked - t_kill if t_acked else None)} after the kill; "
            f"violation on the consoles (kill -> alert = the partition's next evaluation, upper bound) {', '.join(f'{k} {fmt(v)}' for k, v in seen.items())}")
        problems += [f"console on {k} did not receive the violation within 60 s" for k, v in seen.items() if v is None]
        if not run.self_check:
            # The successor claimed the partition's fencing token before it wrote the
            # violation, so a late write of the killed node would be refused.
            fence_after = run.fence(run.busy_partition)
            log(f"failover: partition {run.busy_partition}'s fencing token in the store {fence_before} before the kill, {fence_after} after the takeover")
            if fence_before is None or fence_after is None or fence_after <= fence_before:
                problems.append(f"partition {run.busy_partition}'s fencing token did not grow with the takeover ({fence_before} -> {fence_after})")
        if not run.self_check:
            # The engine rebuilds of the takeover, from the survivors' logs (printed, not
            # asserted: a time on a shared machine).
            for n in survivors:
                with open(n.log_path, "rb") as f:
                    f.seek(log_offsets.get(n.name, 0))
                    lines = [re.sub(r"\x1b\[[0-9;]*m", "", l.decode(errors="replace")) for l in f if b"engine state rebuilt" in l]
                figures = [
                    " ".join(w for w in l.split() if w.startswith(("rebuild_ms=", "replayed=", "partitions=")))
                    for l in lines
                ]
                log(f"failover: {n.name} engine rebuilds after the kill: {'; '.join(figures) or 'none'}")
        left = run.drain()
        if left:
            problems.append(f"{left} fixes still unacknowledged 90 s after the load stopped")
        errors = sum(d.errors for d in run.devices)
        log(f"failover: {run.acks()} acks in all, {run.acks(since=t_kill)} after the kill, {errors} device errors (reconnects)")
        run.cluster_views()
        for n in run.nodes:
            n.stop()
        problems += run.check()
        return problems
    finally:
        run.cleanup()


def outage_nats(args, workdir, rng):
    if not reachable(PG_SERVER, 5432) or not shutil.which("psql"):
        missing(f"PostgreSQL at {PG_SERVER} (or psql)")
    nats = PrivateNats(workdir)
    nats.start()
    run = Run(args, workdir, rng, "nats", 2, PG_SERVER, nats.url)
    try:
        run.start()
        run.seed()
        wait_for(lambda: any(run.busy_partition in (n.owned() or set()) for n in run.nodes), 60, "partition owner", every=0.5)
        time.sleep(args.warmup)
        t_down = time.monotonic()
        nats.kill9()
        log(f"nats: private nats-server killed -9 with {run.acks()} acks so far")
        time.sleep(1.0)
        t_violate = run.violate()
        health = set()
        while time.monotonic() - t_down < args.outage:
            for n in run.nodes:
                s, h = n.health()
                health.add((n.name, s, h.get("status") if isinstance(h, dict) else str(h)[:60]))
            time.sleep(0.5)
        t_up = time.monotonic()
        during = run.acks(since=t_down + 1.0, until=t_up)
        nats.start()
        log(f"nats: down {t_up - t_down:.1f} s; {during} fixes acknowledged while it was down; /healthz during: {sorted(map(str, health))}")
        problems = []
        never_degraded = sorted({h[0] for h in health} - {h[0] for h in health if h[2] == "degraded"})
        if never_degraded:
            # A node cut off from NATS acks from PostgreSQL but its commits reach no owner:
            # an operator (and a load balancer's dashboard) must see that.
            problems.append(f"/healthz never said degraded on {never_degraded} while NATS was down")
        if during == 0:
            problems.append("no fix was acknowledged while NATS was down (PostgreSQL is the source of truth)")
        seen = run.consoles_saw(run.nodes, t_up, 90)
        log(f"nats: violation (made {t_up - t_violate:.1f} s before NATS came back) on the consoles {', '.join(f'{k} {fmt(v)}' for k, v in seen.items())} after NATS was back")
        problems += [f"console on {k} did not receive the violation within 90 s of NATS coming back" for k, v in seen.items() if v is None]
        time.sleep(args.after)
        left = run.drain()
        if left:
            problems.append(f"{left} fixes still unacknowledged 90 s after the load stopped")
        run.cluster_views()
        for n in run.nodes:
            n.stop()
        problems += run.check()
        return problems
    finally:
        run.cleanup()
        nats.kill9()


def outage_pg(args, workdir, rng):
    if not args.store_only and not reachable(NATS_URL, 4222):
        missing(f"NATS at {NATS_URL}")
    pg = PrivatePg(workdir)
    pg.start()
    run = Run(args, workdir, rng, "postgres", 1 if args.store_only else 2, pg.url, None if args.store_only else NATS_URL)
    try:
        run.start()
        run.seed()
        time.sleep(args.warmup)
        t_down = time.monotonic()
        pg.stop("immediate")
        log(f"postgres: private PostgreSQL stopped (immediate) with {run.acks()} acks so far")
        health = set()
        while time.monotonic() - t_down < args.outage:
            for n in run.nodes:
                s, h = n.health()
                health.add((n.name, s, h.get("status") if isinstance(h, dict) else str(h)[:60]))
            time.sleep(0.5)
        t_up = time.monotonic()
        during = run.acks(since=t_down + 1.0, until=t_up)
        pg.start()
        refusals = {}
        for d in run.devices:
            for k, v in getattr(d, "refusals", {}).items():
                refusals[k] = refusals.get(k, 0) + v
        log(f"postgres: down {t_up - t_down:.1f} s; {during} fixes acknowledged while it was down; /healthz during: {sorted(map(str, health))}")
        log(f"postgres: what native devices were told (status and error code: count): {refusals}")
        problems = []
        unclear = {k: v for k, v in refusals.items() if not k.startswith("503")}
        if unclear:
            # A device must be able to tell an outage (503: retry later) from a bug.
            problems.append(f"while PostgreSQL was down the native door answered {unclear}, not 503")
        # "No ack while it is down" is checked without a clock race at the end: no fix may be
        # acknowledged before its commit (check(commit_ts=True)); `during` is only printed.
        if not any(h[2] != "ok" for h in health):
            problems.append("/healthz said ok on every node all the time PostgreSQL was down")
        back = None
        try:
            wait_for(lambda: all(n.health()[0] == 200 and n.health()[1].get("status") == "ok" for n in run.nodes), 60, "/healthz ok on every node", every=0.5)
            back = time.monotonic() - t_up
        except RuntimeError as e:
            problems.append(str(e))
        run.violate()
        t_v = time.monotonic()
        seen = run.consoles_saw(run.nodes, t_v, 60)
        problems += [f"console on {k} did not receive the violation made after PostgreSQL came back" for k, v in seen.items() if v is None]
        time.sleep(args.after)
        left = run.drain()
        log(f"postgres: /healthz ok again {fmt(back)} after the restart; backlog drained with {left} left")
        if left:
            problems.append(f"{left} fixes still unacknowledged 90 s after the load stopped")
        # The outage itself is an alert (the backlog alert, raised while the store could not
        # write, stored once it could): the record that protection was blind, and when.
        backlog = run.rows("SELECT id, raised_at, summary FROM alerts WHERE rule = 'ingest_backlog'")
        log(f"postgres: ingest_backlog alerts stored: {[(r[0], r[1], r[2][:60]) for r in backlog]}")
        if not backlog:
            problems.append("no ingest_backlog alert was stored for the PostgreSQL outage")
        for n in run.nodes:
            n.stop()
        problems += run.check(commit_ts=True)
        return problems
    finally:
        run.cleanup()
        try:
            pg.stop("fast")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass


PHASES = {"failover": failover, "nats": outage_nats, "postgres": outage_pg}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/debug/bulwark")
    p.add_argument("--phases", default="failover,nats,postgres")
    p.add_argument("--nodes", type=int, default=3, help="nodes of the failover phase")
    p.add_argument("--gt06", type=int, default=6, help="GT06 trackers on the main offender")
    p.add_argument("--native", type=int, default=4, help="native batch devices on the main offender")
    p.add_argument("--native-interval", type=float, default=0.2)
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the failure")
    p.add_argument("--outage", type=float, default=6.0, help="seconds NATS / PostgreSQL stay down")
    p.add_argument("--after", type=float, default=2.0, help="seconds of load after recovery")
    p.add_argument("--timeout", type=int, default=600, help="watchdog for the whole run, s")
    p.add_argument("--self-check", action="store_true", help="the failover phase on one SQLite node of today's binary")
    p.add_argument("--store-only", action="store_true", help="the postgres phase on one `serve --store` node without NATS")
    p.add_argument("--seed", type=int)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    _, rng = seed_rng(args.seed)
    if args.store_only:
        args.phases = "postgres"
    if not args.self_check:
        help_text = subprocess.run([args.bin, "serve", "--help"], capture_output=True, text=True).stdout
        if ("--store" if args.store_only else "--cluster") not in help_text:
            msg = f"{args.bin} has no `serve --cluster`: waits for the cluster wiring of `bulwark serve` (branch cluster, docs/cluster.md)"
            if REQUIRE_CLUSTER:
                log(f"FAILED: {msg}")
                sys.exit(1)
            log(f"NOT RUN: cluster campaign: {msg}")
            return

    def watchdog(*_):
        raise Watchdog(f"the campaign ran past its --timeout of {args.timeout} s")

    signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(args.timeout)
    workdir = tempfile.mkdtemp(prefix="bulwark-cluster-")
    log(f"work directory {workdir}")
    started = time.time()
    problems, not_run = [], []
    phases = ["failover"] if args.self_check else [x for x in args.phases.split(",") if x]
    for name in phases:
        t0 = time.time()
        try:
            problems += [f"{name}: {pr}" for pr in PHASES[name](args, workdir, rng)]
        except Skip as e:
            log(f"SKIPPED: cluster campaign, {name} phase: {e} not available")
        except NotWired as e:
            msg = f"{name} phase: {e}: waits for the cluster wiring of `bulwark serve` (branch cluster, docs/cluster.md)"
            if REQUIRE_CLUSTER:
                problems.append(msg)
            else:
                not_run.append(name)
                log(f"NOT RUN: cluster campaign, {msg}")
        except (RuntimeError, Watchdog, subprocess.TimeoutExpired) as e:
            problems.append(f"{name}: {e}")
        log(f"{name} phase took {time.time() - t0:.1f} s")
    signal.alarm(0)
    log(f"cluster campaign took {time.time() - started:.1f} s")
    name = "cluster campaign" + (f" (NOT RUN: {', '.join(not_run)})" if not_run else "")
    finish(name, problems, workdir, args.keep)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""API campaign (issue 12 item 7, issue 17 item 9): a seeded server with two cases and one
account per role, then

1. the route x role probe: every role calls every GET route of the OpenAPI document, with
   every id 1..N (the ids of both cases' people, devices, orders, alerts, petitions…), and
   both live streams (SSE and WebSocket) while every party reports; every position in every answer is matched against the four parties'
   distinct places, and any position read by an account not entitled to it fails the run;
2. schemathesis (if --schemathesis is given) against /api/openapi.json as each role, bounded
   by --max-examples and --max-time per role, with the checks `not_a_server_error`,
   `status_code_conformance`, `content_type_conformance` and `response_schema_conformance`.

    scripts/campaigns/api.py --bin target/debug/bulwark [--schemathesis .venv/bin/schemathesis]
"""

import argparse
import base64
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

from common import ADMIN_TOKEN, PASSWORD, Server, finish, http, iso, log, must

# Each party reports from its own place, far enough apart that a position is attributable.
PLACES = {
    "offender_a": (37.6012, 127.0034),
    "victim_a": (37.5023, 126.8945),
    "offender_b": (35.2011, 129.1022),
    "victim_b": (35.1033, 129.0044),
}
# Zones sit away from every party, so a zone is never mistaken for a position here (zone
# disclosure is its own check, issue 17 item 1).
ZONE = (36.0, 128.0)
NEAR_DEG = 0.01

# Who may see whose position. Staff see their assigned case's parties; the victim her own
# position and (coarsened by distance) the offender's; the offender only his own; the
# bootstrap administrator, police without a dispatch, court staff and the auditor none.
ENTITLED = {
    "admin": set(),
    "officer_a": {"offender_a", "victim_a"},
    "officer_b": {"offender_b", "victim_b"},
    "victim_a": {"victim_a", "offender_a"},
    "offender_a": {"offender_a"},
    "police": set(),
    "clerk": set(),
    "judge": set(),
    "auditor": set(),
}


def seed_two_cases(server):
    b, t = server.base, ADMIN_TOKEN
    people, tokens, cases = {}, {}, {}
    for party in PLACES:
        role = "offender" if party.startswith("offender") else "protected"
        people[party] = must(http("POST", b + "/api/v1/people", {"role": role, "display_name": party}, t), 201)["id"]
        tokens[party] = f"api-campaign-device-token-{party}"
        kind = "ankle_monitor" if role == "offender" else "victim_phone"
        must(http("POST", b + "/api/v1/devices", {"kind": kind, "protocol": "native", "hardware_id": f"api-{party}", "owner_id": people[party], "token": tokens[party]}, t), 201)
    for c in ("a", "b"):
        cases[c] = must(http("POST", b + "/api/v1/cases", {"reference": f"API-{c}", "offender_id": people[f"offender_{c}"], "protected_ids": [people[f"victim_{c}"]]}, t), 201)["id"]
    accounts = {
        "officer_a": ("monitoring_officer", None),
        "officer_b": ("monitoring_officer", None),
        "victim_a": ("victim", people["victim_a"]),
        "offender_a": ("offender", people["offender_a"]),
        "police": ("police", None),
        "clerk": ("court_clerk", None),
        "judge": ("judge", None),
        "auditor": ("auditor", None),
    }
    ids = {}
    for name, (role, person) in accounts.items():
        a = must(http("POST", b + "/api/v1/accounts", {"username": f"api-{name}", "password": PASSWORD, "role": role, "person_id": person}, t), 201)
        ids[name] = a["account"]["id"]
    for c in ("a", "b"):
        must(http("POST", b + f"/api/v1/accounts/{ids['officer_' + c]}/assignments", {"case_id": cases[c]}, t), 204)
    sessions = {"admin": ADMIN_TOKEN}
    for name in accounts:
        sessions[name] = must(http("POST", b + "/api/v1/auth/login", {"username": f"api-{name}", "password": PASSWORD}), 200)["token"]
    for c in ("a", "b"):
        must(
            http(
                "POST",
                b + "/api/v1/orders",
                {
                    "case_id": cases[c], "kind": "provisional_measure", "valid_from": "2026-01-01T00:00:00Z",
                    "no_approach_m": 100.0, "warning_m": 500.0, "disclosure_radius_m": 600.0,
                    "zones": [{"kind": "work", "label": "work", "shape": {"type": "circle", "lat": ZONE[0], "lon": ZONE[1], "radius_m": 100.0}}],
                },
                sessions[f"officer_{c}"],
            ),
            201,
        )
    now = time.time()
    for party, (lat, lon) in PLACES.items():
        fixes = [{"seq": i + 1, "time": iso(now - 30 + i * 5), "lat": lat, "lon": lon, "accuracy_m": 5.0} for i in range(5)]
        must(http("POST", b + "/api/v1/ingest/batch", {"fixes": fixes}, tokens[party]), 200)
    # An SOS from each ankle monitor, so there are alerts (and alert ids) in both cases.
    for c in ("a", "b"):
        lat, lon = PLACES[f"offender_{c}"]
        http("POST", b + "/api/v1/ingest/batch", {"fixes": [{"seq": 10, "time": iso(now), "lat": lat, "lon": lon, "accuracy_m": 5.0}], "events": [{"kind": "sos", "time": iso(now)}]}, tokens[f"offender_{c}"])
    return sessions, tokens


def positions_in(value, found):
    """Every (lat, lon) pair in a JSON value, attributed to the party whose place it is."""
    if isinstance(value, dict):
        lat, lon = value.get("lat"), value.get("lon")
        if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
            for party, (plat, plon) in PLACES.items():
                if abs(lat - plat) < NEAR_DEG and abs(lon - plon) < NEAR_DEG:
                    found.add(party)
        for v in value.values():
            positions_in(v, found)
    elif isinstance(value, list):
        for v in value:
            positions_in(v, found)
        if len(value) == 2 and all(isinstance(x, (int, float)) for x in value):
            for party, (plat, plon) in PLACES.items():
                if abs(value[0] - plat) < NEAR_DEG and abs(value[1] - plon) < NEAR_DEG:
                    found.add(party)
    elif isinstance(value, str) and value.startswith(("{", "[")):
        try:
            positions_in(json.loads(value), found)
        except ValueError:
            pass


def read_stream(base, token, ws, seconds, out):
    """What one live stream (SSE, or the WebSocket) sends in `seconds`: a list of JSON values
    appended to `out`."""
    u = urllib.parse.urlparse(base)
    try:
        s = socket.create_connection((u.hostname, u.port), timeout=0.5)
    except OSError:
        return
    if ws:
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET /api/v1/live/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
    else:
        s.sendall(f"GET /api/v1/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
    data = b""
    end = time.time() + seconds
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not ws:
        for line in body.decode("utf-8", "replace").splitlines():
            if line.startswith("data:"):
                try:
                    out.append(json.loads(line[5:]))
                except ValueError:
                    pass
        return
    if b" 101 " not in head.split(b"\r\n", 1)[0]:
        return
    # Server frames are unmasked: opcode, length (7 bits, or 16/64-bit extended), payload.
    i = 0
    while i + 2 <= len(body):
        n = body[i + 1] & 0x7F
        j = i + 2
        if n == 126:
            n, j = int.from_bytes(body[j : j + 2], "big"), j + 2
        elif n == 127:
            n, j = int.from_bytes(body[j : j + 8], "big"), j + 8
        if body[i] & 0x0F == 1 and j + n <= len(body):
            try:
                out.append(json.loads(body[j : j + n]))
            except ValueError:
                pass
        i = j + n


def live_probe(server, sessions, device_tokens):
    """Both live streams of every role open while each party reports once."""
    seen = {(role, ws): [] for role in sessions for ws in (False, True)}
    threads = [threading.Thread(target=read_stream, args=(server.base, sessions[role], ws, 4.0, seen[(role, ws)])) for role, ws in seen]
    for t in threads:
        t.start()
    time.sleep(1.0)
    now = time.time()
    for party, (lat, lon) in PLACES.items():
        must(http("POST", server.base + "/api/v1/ingest/batch", {"fixes": [{"seq": 100, "time": iso(now), "lat": lat, "lon": lon, "accuracy_m": 5.0}]}, device_tokens[party]), 200)
    for t in threads:
        t.join()
    leaks = []
    for (role, ws), events in seen.items():
        found = set()
        positions_in(events, found)
        stream = "WebSocket" if ws else "SSE stream"
        for party in found - ENTITLED[role]:
            leaks.append(f"{role} read {party}'s position on the {stream}")
        if role.startswith("officer") and not ENTITLED[role] <= found:
            leaks.append(f"probe blind: {role}'s {stream} showed {sorted(found)} of {sorted(ENTITLED[role])}")
    log(f"live probe: {len(seen)} streams, {sum(len(e) for e in seen.values())} messages")
    return leaks


def probe(server, sessions, max_id):
    _, doc = http("GET", server.base + "/api/openapi.json")
    purpose = {"from": "2026-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z", "purpose_code": "supervision", "purpose_text": "route by role probe of the API campaign"}
    routes = []
    for path, ops in doc["paths"].items():
        if "get" not in ops or path.startswith("/api/v1/live") or path in ("/metrics",):
            continue
        names = {p["name"] for p in ops["get"].get("parameters", []) if p["in"] == "query"}
        query = {k: v for k, v in purpose.items() if k in names}
        routes.append((path, query))
    leaks, requests, statuses = [], 0, {}
    for role, token in sessions.items():
        for path, query in routes:
            for i in range(1, max_id + 1) if "{" in path else [None]:
                p = path
                if i is not None:
                    p = p.replace("{id}", str(i))
                url = server.base + p + ("?" + urllib.parse.urlencode(query) if query else "")
                s, body = http("GET", url, token=token)
                requests += 1
                statuses[s] = statuses.get(s, 0) + 1
                if s >= 500:
                    leaks.append(f"{role} GET {p}: {s}")
                found = set()
                positions_in(body, found)
                for party in found - ENTITLED[role]:
                    leaks.append(f"{role} read {party}'s position at GET {p} ({s})")
    log(f"probe: {len(sessions)} roles x {len(routes)} GET routes (ids 1..{max_id}): {requests} requests, statuses {dict(sorted(statuses.items()))}")
    # The probe must be able to see a position at all, or it proves nothing.
    for role in ("officer_a", "officer_b", "offender_a"):
        found = set()
        positions_in(http("GET", server.base + "/api/v1/positions/latest", token=sessions[role])[1], found)
        if not ENTITLED[role] & found:
            leaks.append(f"probe blind: {role} sees none of {sorted(ENTITLED[role])} at /positions/latest ({found})")
    return leaks


def schemathesis(args, server, sessions):
    problems = []
    roles = [r for r in sessions if r != "admin"] + ["admin"]  # admin last: it can disable accounts
    for role in roles:
        cmd = [
            args.schemathesis, "run", server.base + "/api/openapi.json",
            "-H", f"Authorization: Bearer {sessions[role]}",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--phases", "examples,fuzzing",
            "--max-examples", str(args.max_examples), "--max-time", str(args.max_time),
            "--exclude-path-regex", "^/api/v1/live|^/api/v1/auth/logout$",
            "--request-timeout", "10", "--workers", "2", "--seed", str(args.seed),
            "--suppress-health-check", "all", "--warnings", "off", "--no-color",
        ]
        t0 = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        tail = [l for l in r.stdout.splitlines() if "generated" in l or "passed" in l or "failures" in l or "error" in l.lower()]
        log(f"schemathesis as {role}: exit code {r.returncode} in {time.time() - t0:.0f} s; {' | '.join(tail[-3:])}")
        if r.returncode != 0:
            with open(os.path.join(args.workdir, f"schemathesis-{role}.log"), "w") as f:
                f.write(r.stdout + r.stderr)
            problems.append(f"schemathesis as {role} found failures (log: {args.workdir}/schemathesis-{role}.log)")
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="target/debug/bulwark")
    p.add_argument("--schemathesis", help="path of the schemathesis command; without it, the probe only")
    p.add_argument("--max-examples", type=int, default=20)
    p.add_argument("--max-time", type=int, default=40, help="seconds of schemathesis per role")
    p.add_argument("--max-id", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    args.bin = os.path.abspath(args.bin)
    args.workdir = tempfile.mkdtemp(prefix="bulwark-api-")
    server = Server(args.bin, os.path.join(args.workdir, "data"), os.path.join(args.workdir, "server.log"))
    server.start()
    sessions, device_tokens = seed_two_cases(server)
    problems = probe(server, sessions, args.max_id)
    problems += live_probe(server, sessions, device_tokens)
    if args.schemathesis:
        problems += schemathesis(args, server, sessions)
    alive = server.proc.poll() is None
    if alive:
        server.terminate()
    else:
        problems.append("the server died")
    finish("API campaign", problems, args.workdir, args.keep)


if __name__ == "__main__":
    main()

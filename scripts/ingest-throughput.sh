#!/usr/bin/env bash
# Measures durable ingest throughput: starts `bulwark serve` on a fresh store and drives it with
# `bulwark simulate` over each device protocol in turn. Usage:
#   [PROTOCOLS="gt06:15023 native:18080"] scripts/ingest-throughput.sh [devices] [interval_s] [duration_s]
# All protocols share one fresh store, in the order given. The figure that counts is "stored
# rate" (rows the server stored, from its own counters); acks include resends it recognised.
# GT06, H02 and Watch carry whole-second device times: a simulated device sends at most one fix
# per second, so a higher rate takes more devices, not a shorter interval -- or BACKFILL=1:
# each device uploads a stored history (device times in the past, one second apart, as after a
# coverage gap), which lets an interval under 1 s saturate those doors with fewer sockets.
# Needs a release build (cargo build --release -p bulwark) and `ulimit -n` above the device
# count (each process, server and load generator, holds one descriptor per device).
# After each protocol it prints the load generator's peak RSS and the server's current and
# peak RSS (/proc/<pid>/status).
set -euo pipefail
DEVICES=${1:-1000}
INTERVAL=${2:-1}
DURATION=${3:-30}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/bulwark}
if [ "$(ulimit -n)" -le $((DEVICES + 100)) ]; then
  echo "ulimit -n is $(ulimit -n); $DEVICES devices need more than $((DEVICES + 100))" >&2
  exit 1
fi
WORK=$(mktemp -d /tmp/bulwark-throughput.XXXXXX)
TOKEN=throughput-staff-token-0123456789
cat > "$WORK/bench.toml" <<TOML
http_port = 18080
osmand_port = 15055
[devices]
gt06_port = 15023
h02_port = 15013
watch_port = 15093
teltonika_port = 15027
max_connections_per_ip = 100000   # every simulated device shares 127.0.0.1
max_connections = 100000
TOML
RUST_LOG=warn "$BIN" serve --config "$WORK/bench.toml" --data-dir "$WORK/data" \
  --bind 127.0.0.1 --admin-token "$TOKEN" > "$WORK/serve.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -fs http://127.0.0.1:18080/healthz > /dev/null && break; sleep 0.1; done
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f "simulate peak RSS %M KiB")
PROTOCOLS=${PROTOCOLS:-"gt06:15023 h02:15013 watch:15093 teltonika:15027 osmand:15055 native:18080"}
for p in $PROTOCOLS; do
  proto=${p%%:*}; port=${p##*:}
  echo "== $proto"
  "${TIME[@]}" "$BIN" simulate --quiet --server 127.0.0.1 --http-port 18080 --port "$port" \
    --protocol "$proto" --devices "$DEVICES" --interval "$INTERVAL" --duration "$DURATION" \
    --token "$TOKEN" ${BACKFILL:+--backfill}
  echo "server RSS $(awk '/VmRSS/ {print $2}' /proc/$SERVER/status) KiB, peak $(awk '/VmHWM/ {print $2}' /proc/$SERVER/status) KiB"
done

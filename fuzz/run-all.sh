#!/bin/sh
# Runs every fuzz target for $1 seconds (default 600), one after another, at lowest priority.
# Extra arguments go to `cargo fuzz run` (e.g. -a for debug assertions / overflow checks).
# Usage (from fuzz/): ./run-all.sh 600 2>&1 | tee fuzz-run.log
secs=${1:-600}
[ $# -gt 0 ] && shift
for t in gt06 h02 watch teltonika http_apps; do
  echo "=== $t start $(date -u +%FT%TZ)"
  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run -O "$@" "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 > "/tmp/fuzz-$t.log" 2>&1
  rc=$?
  tail -8 "/tmp/fuzz-$t.log"
  echo "=== $t end $(date -u +%FT%TZ) exit=$rc"
done

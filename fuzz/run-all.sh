#!/bin/sh
# Runs every fuzz target for $1 seconds (default 600), one after another, at lowest priority.
# Usage (from fuzz/): ./run-all.sh 600 2>&1 | tee fuzz-run.log
secs=${1:-600}
for t in gt06 h02 watch teltonika http_apps; do
  echo "=== $t start $(date -u +%FT%TZ)"
  RUSTC_BOOTSTRAP=1 nice -n 19 cargo fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -25
  echo "=== $t end $(date -u +%FT%TZ) exit=$?"
done

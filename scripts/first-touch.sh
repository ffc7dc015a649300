#!/usr/bin/env bash
# First touch: POSTs (ack applied) into a new list each (scripts/wrk/post-fresh.lua)
# against POSTs into 1,000 lists (post.lua, WRK_LISTS=1000), wrk -c64, interleaved,
# ROUNDS rounds (default 3) of SECONDS each (default 10), on one `sluicegate serve`
# on the default config. Prints requests/s per run, the medians and their ratio.
#
#   scripts/first-touch.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "first-touch: wrk not found; install Debian's package wrk" >&2; exit 1; }
cargo build --release --quiet --bin sluicegate
BIN=${SLUICEGATE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluicegate}
TMP=$(mktemp -d)
PORT=${SG_PORT:-18182}
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
RUST_LOG=warn "$BIN" serve --data-dir "$TMP/data" --listen "127.0.0.1:$PORT" >"$TMP/sg.out" 2>"$TMP/sg.log" &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
for round in $(seq "$ROUNDS"); do
    for case in fresh lists1000; do
        script=post-fresh.lua
        [ "$case" = lists1000 ] && script=post.lua
        rps=$(WRK_LISTS=1000 wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -s "scripts/wrk/$script" \
            "http://127.0.0.1:$PORT" | awk '/^Requests\/sec:/ {print $2}')
        echo "{\"case\":\"$case\",\"round\":$round,\"requests_s\":$rps}"
    done
done | tee "$TMP/runs.jsonl"
python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
m = {c: statistics.median(r["requests_s"] for r in runs if r["case"] == c) for c in ["fresh", "lists1000"]}
print(f"fresh lists {m['fresh']:.0f} req/s, 1,000 lists {m['lists1000']:.0f} req/s, ratio {m['fresh'] / m['lists1000']:.2f}")
PY

#!/usr/bin/env bash
# Overload at the HTTP edge: one `sluicegate serve` on the built-in config with
# every write durable (default_ack = "durable"), the adaptive limit on as built in,
# on SQLite or the backend BACKEND names (files: slower, so the load generator,
# which shares the machine, stays light).
#   1. capacity: wrk -t2 -c64 durable POSTs into 1,000 lists (closed loop, so it
#      never overloads): C requests/s;
#   2. then, ROUNDS times interleaved, `sluicegate load` open loop (all writes,
#      1,000 lists, 1,024 connections) at 0.5 C and at 2 C for SECONDS each.
# The load generator must not share the server's CPU, or at 2 C it measures its own
# backlog. With ISOLATE=1 (the default when run as root with the cgroup v1 `cpu`
# controller at /sys/fs/cgroup/cpu) the server runs pinned to core 0 under a CFS
# quota of SERVER_CPU (default 0.5) of that core, and wrk and `sluicegate load` run
# pinned to core 1: a server on half a core, fed by a client with a whole one.
# Both take priority over anything else the machine runs (a build beside the run):
# the server's cgroup has the largest `cpu.shares`, the load generator runs at nice -20.
# ISOLATE=0 runs everything unpinned (the generator then falls behind at 2 C).
# Prints each run's summary lines and, per target of issue #26, the medians:
# p99 of accepted requests at 2 C against 0.5 C, the response time of refusals
# (503 with Retry-After), and accepted requests/s at 2 C against C.
#
#   scripts/overload.sh [ROUNDS] [SECONDS]      (SLUICEGATE_BIN skips the build)
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-8}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "overload: wrk not found; install Debian's package wrk" >&2; exit 1; }
if [ -z "${SLUICEGATE_BIN:-}" ]; then cargo build --release --quiet --bin sluicegate; fi
BIN=${SLUICEGATE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluicegate}
TMP=$(mktemp -d)
PORT=${SG_PORT:-18183}
URL="http://127.0.0.1:$PORT"
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$TMP"
    [ -d "${CG:-}" ] && rmdir "$CG" 2>/dev/null || true
}
trap cleanup EXIT
CG=/sys/fs/cgroup/cpu/sluicegate-overload
if [ -z "${ISOLATE:-}" ]; then
    if [ "$(id -u)" = 0 ] && [ -w /sys/fs/cgroup/cpu ] && [ "$(nproc)" -ge 2 ]; then ISOLATE=1; else ISOLATE=0; fi
fi
SERVER_PIN=() CLIENT_PIN=()
if [ "$ISOLATE" = 1 ]; then
    command -v taskset >/dev/null || { echo "overload: ISOLATE=1 needs taskset (util-linux)" >&2; exit 1; }
    mkdir -p "$CG" || { echo "overload: cannot create $CG (ISOLATE=1 needs root and the cgroup v1 cpu controller; ISOLATE=0 runs unpinned)" >&2; exit 1; }
    echo 10000 >"$CG/cpu.cfs_period_us"
    quota=$(awk -v c="${SERVER_CPU:-0.5}" 'BEGIN { printf "%d", c * 10000 }')
    echo "$quota" >"$CG/cpu.cfs_quota_us"
    echo 262144 >"$CG/cpu.shares"
    SERVER_PIN=(taskset -c 0) CLIENT_PIN=(nice -n -20 taskset -c 1)
    echo "isolated: server on core 0 with ${SERVER_CPU:-0.5} of it (CFS quota, 10 ms period), load generator on core 1"
else
    echo "not isolated: server and load generator share every core (ISOLATE=0)"
fi
sed -e 's/^default_ack = .*/default_ack = "durable"/' -e "s/^backend = .*/backend = \"${BACKEND:-sqlite}\"/" \
    policies/coalesce.toml >"$TMP/durable.toml"
RUST_LOG=warn "${SERVER_PIN[@]}" "$BIN" serve --config "$TMP/durable.toml" --data-dir "$TMP/data" \
    --listen "127.0.0.1:$PORT" >"$TMP/sg.out" 2>"$TMP/sg.log" &
pid=$!
if [ "$ISOLATE" = 1 ]; then echo "$pid" >"$CG/cgroup.procs"; fi
for _ in $(seq 100); do curl -sf -o /dev/null "$URL/healthz" && break; sleep 0.1; done
capacity=$(WRK_LISTS=1000 "${CLIENT_PIN[@]}" wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -s scripts/wrk/post.lua "$URL" \
    | awk '/^Requests\/sec:/ {print $2}')
echo "capacity (wrk -c64, durable POSTs): $capacity req/s"
for round in $(seq "$ROUNDS"); do
    for factor in 0.5 2; do
        rate=$(python3 -c "print(round($capacity * $factor))")
        out=$("${CLIENT_PIN[@]}" "$BIN" load --target "$URL" --rate "$rate" --duration "${SECONDS_PER_RUN}s" \
            --lists 1000 --write-pct 100 --connections 1024 --max-failure-share 1)
        echo "-- round $round, ${factor} C = $rate req/s"
        echo "$out" | grep -E '^(accepted|refused|statuses|throughput|requests)'
        echo "$out" | python3 -c '
import json, re, sys
t = sys.stdin.read()
a = re.search(r"accepted \(2xx\): (\d+)\s+(\d+) req/s .*p99 ([\d.]+)", t)
r = re.search(r"refused \(503 with Retry-After\): (\d+) .*p99 ([\d.]+)", t)
print(json.dumps({"round": int(sys.argv[1]), "factor": float(sys.argv[2]),
    "accepted_s": float(a.group(2)), "accepted_p99_ms": float(a.group(3)),
    "refused": int(r.group(1)) if r else 0, "refused_p99_ms": float(r.group(2)) if r else None}))
' "$round" "$factor" >>"$TMP/runs.jsonl"
    done
done
python3 - "$TMP/runs.jsonl" "$capacity" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
cap = float(sys.argv[2])
half = [r for r in runs if r["factor"] == 0.5]
over = [r for r in runs if r["factor"] == 2]
med = lambda rs, k: statistics.median(r[k] for r in rs)
p99_ratios = [o["accepted_p99_ms"] / h["accepted_p99_ms"] for h, o in zip(half, over)]
refused = [r["refused_p99_ms"] for r in over if r["refused_p99_ms"] is not None]
print(f"accepted p99: {med(half, 'accepted_p99_ms'):.1f} ms at 0.5 C, {med(over, 'accepted_p99_ms'):.1f} ms at 2 C; "
      f"per-round ratio median {statistics.median(p99_ratios):.2f} (target <= 3)")
print(f"refused at 2 C: median {med(over, 'refused'):.0f} per run; response time p99 median "
      + (f"{statistics.median(refused):.2f} ms" if refused else "n/a (none refused)") + " (target <= 1 ms)")
print(f"accepted at 2 C: {med(over, 'accepted_s'):.0f} req/s = {med(over, 'accepted_s') / cap:.2f} C (target >= 0.9)")
PY

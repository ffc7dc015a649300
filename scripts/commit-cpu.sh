#!/usr/bin/env bash
# CPU of a commit per write on SQLite: one `sluicegate serve` per build (default
# config), wrk -t2 -c64 POSTs into 1,000 lists for SECONDS (default 10), acked
# `applied` then `durable`, the builds interleaved, ROUNDS rounds (default 3). For
# each run it reads, from /proc, the CPU seconds (user + system) of the
# `sqlite-writer` thread and of the whole process, and from /metrics the stores
# (`sluicegate_db_stores_total`) and, where the build has them, the transactions
# (`sluicegate_db_transactions_total`). Prints per build and ack the medians of:
# writer CPU ms per 1,000 stores, process CPU ms per 1,000 requests, requests/s,
# commits/s and stores per commit.
#
#   BASE_BIN=/path/to/other/sluicegate scripts/commit-cpu.sh [ROUNDS] [SECONDS]
#
# Without BASE_BIN only this build runs. NEW_BIN overrides this build's binary.
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "commit-cpu: wrk not found; install Debian's package wrk" >&2; exit 1; }
if [ -z "${NEW_BIN:-}" ]; then
    cargo build --release --quiet --bin sluicegate
    NEW_BIN=${CARGO_TARGET_DIR:-target}/release/sluicegate
fi
TMP=$(mktemp -d)
PORT=${SG_PORT:-18184}
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
trap 'stop; rm -rf "$TMP"' EXIT
TICKS=$(getconf CLK_TCK)

cpu_ticks() { # PID [THREAD_NAME]: utime + stime in clock ticks
    local stat=/proc/$1/stat
    if [ -n "${2:-}" ]; then
        stat=$(grep -lx "$2" /proc/"$1"/task/*/comm | head -1 | sed 's/comm$/stat/')
    fi
    # Fields 14 and 15 (after the command name in parentheses).
    sed 's/.*) //' "$stat" | awk '{print $12 + $13}'
}

metric() { # NAME: sum of the metric's samples on /metrics (0 when absent)
    curl -sf "http://127.0.0.1:$PORT/metrics" |
        awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $2} END {print s + 0}'
}

run() { # SIDE ACK ROUND
    local bin=$NEW_BIN
    [ "$1" = base ] && bin=$BASE_BIN
    rm -rf "$TMP/data"
    RUST_LOG=warn "$bin" serve --data-dir "$TMP/data" --listen "127.0.0.1:$PORT" >"$TMP/out" 2>"$TMP/log" &
    pid=$!
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
    local query=""
    [ "$2" = durable ] && query="?ack=durable"
    local w0 p0 s0 t0 w1 p1 s1 t1 rps
    w0=$(cpu_ticks "$pid" sqlite-writer) p0=$(cpu_ticks "$pid")
    s0=$(metric sluicegate_db_stores_total) t0=$(metric sluicegate_db_transactions_total)
    rps=$(WRK_LISTS=1000 WRK_QUERY=$query wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -s scripts/wrk/post.lua \
        "http://127.0.0.1:$PORT" | awk '/^Requests\/sec:/ {print $2}')
    sleep 0.5
    w1=$(cpu_ticks "$pid" sqlite-writer) p1=$(cpu_ticks "$pid")
    s1=$(metric sluicegate_db_stores_total) t1=$(metric sluicegate_db_transactions_total)
    stop
    python3 -c '
import json, sys
side, ack, rnd, ticks, secs, rps, w0, w1, p0, p1, s0, s1, t0, t1 = sys.argv[1:]
ticks, secs, rps = float(ticks), float(secs), float(rps)
stores, tx = float(s1) - float(s0), float(t1) - float(t0)
requests = rps * secs
print(json.dumps({"side": side, "ack": ack, "round": int(rnd), "requests_s": rps,
    "writer_cpu_ms_per_1000_stores": (float(w1) - float(w0)) / ticks * 1e6 / stores if stores else None,
    "process_cpu_ms_per_1000_requests": (float(p1) - float(p0)) / ticks * 1e6 / requests,
    "commits_s": tx / secs if tx else None,
    "stores_per_commit": stores / tx if tx else None}))
' "$1" "$2" "$3" "$TICKS" "$SECONDS_PER_RUN" "$rps" "$w0" "$w1" "$p0" "$p1" "$s0" "$s1" "$t0" "$t1"
}

SIDES="new"
[ -n "${BASE_BIN:-}" ] && SIDES="base new"
for round in $(seq "$ROUNDS"); do
    order=$SIDES
    [ $((round % 2)) -eq 0 ] && order=$(tr ' ' '\n' <<<"$SIDES" | tac | tr '\n' ' ')
    for ack in applied durable; do
        for side in $order; do run "$side" "$ack" "$round"; done
    done
done | tee "$TMP/runs.jsonl"

python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
keys = ["writer_cpu_ms_per_1000_stores", "process_cpu_ms_per_1000_requests", "requests_s",
        "commits_s", "stores_per_commit"]
print("\n| build | ack | writer CPU ms / 1,000 stores | process CPU ms / 1,000 requests | requests/s | commits/s | stores/commit |")
print("|---|---|---|---|---|---|---|")
for side in ["base", "new"]:
    for ack in ["applied", "durable"]:
        rs = [r for r in runs if r["side"] == side and r["ack"] == ack]
        if not rs:
            continue
        def med(k):
            v = [r[k] for r in rs if r[k] is not None]
            return f"{statistics.median(v):,.1f}" if v else "-"
        print(f"| {side} | {ack} | " + " | ".join(med(k) for k in keys) + " |")
PY

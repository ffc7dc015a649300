#!/usr/bin/env bash
# Instructions per HTTP request of `sluicegate serve` (embedded default config),
# counted by valgrind's callgrind: repeatable where CPU time on a shared machine is
# not. For each binary given: start it under callgrind, write the read lists
# (read-0 .. read-99, ten entries each, as scripts/http-bench.sh does), then per
# case zero the counters, drive it with wrk (-c4, SECONDS) and dump: the server's
# instructions (every thread: HTTP, list servers, SQLite) over the requests wrk
# completed. Prints one JSON line per binary and case.
#
#   scripts/http-callgrind.sh SECONDS BIN [BIN...]
set -euo pipefail
SECONDS_PER_CASE=${1:?seconds}
shift
cd "$(dirname "$0")/.."
port=${CG_PORT:-18400}
for bin in "$@"; do
    port=$((port + 1))
    tmp=$(mktemp -d)
    RUST_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.%p" \
        "$bin" serve --data-dir "$tmp/data" --listen "127.0.0.1:$port" >"$tmp/out" 2>"$tmp/log" &
    pid=$!
    for _ in $(seq 600); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
    for l in $(seq 0 99); do for i in $(seq 10); do echo "$l"; done; done |
        xargs -P 8 -I{} curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
            -d '{"date":"2026-12-02","title":"Dentist"}' \
            "http://127.0.0.1:$port/lists/read-{}/entries?ack=durable"
    for case in get post post_durable; do
        script=post.lua query=""
        [ "$case" = get ] && script=get.lua
        [ "$case" = post_durable ] && query="?ack=durable"
        callgrind_control -z "$pid" >/dev/null
        out=$(WRK_QUERY=$query wrk -t1 -c4 -d"${SECONDS_PER_CASE}s" -s "scripts/wrk/$script" "http://127.0.0.1:$port")
        callgrind_control -d "$case" "$pid" >/dev/null
        requests=$(awk '/requests in/ {print $1}' <<<"$out")
        non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
        # Each dump is one file (every thread), marked with the dump's reason.
        ir=$(grep -l "^desc: Trigger: dump $case\$" "$tmp"/cg.* | xargs awk '/^summary:/ {s += $2} END {print s + 0}')
        echo "{\"bin\":\"$bin\",\"case\":\"$case\",\"requests\":$requests,\"non_2xx\":${non2xx:-0},\"instructions_per_request\":$(awk -v i="$ir" -v n="$requests" 'BEGIN {printf "%.0f", i / n}')}"
    done
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$tmp"
done

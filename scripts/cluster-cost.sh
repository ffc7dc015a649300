#!/usr/bin/env bash
# What being a cluster node costs a durable write: the same release build serving
# POST ?ack=durable (wrk -c64, WRK_LISTS lists, default 1000) on PostgreSQL at URL,
# once as a plain node and once as a one-node cluster (fenced stores, activations,
# the routing layer), interleaved ROUNDS times for SECONDS each; each run starts
# from an empty schema. Prints one JSON line per run, then the median requests/s
# per mode, the ratio cluster / plain of each round (the two runs of a round are
# back to back) and its median (#26 target: >= 0.9). Each run also gives the CPU
# per request of the server process and, when PostgreSQL runs on this machine, of
# its processes (`postgres`), in microseconds, read from /proc: on shared cores
# these move less than the rates do.
#
#   apt-get install wrk postgresql
#   scripts/cluster-cost.sh postgres://postgres@127.0.0.1:5432/bench [ROUNDS] [SECONDS]
set -euo pipefail
URL=${1:?usage: cluster-cost.sh POSTGRES_URL [ROUNDS] [SECONDS]}
ROUNDS=${2:-3}
SECONDS_PER_RUN=${3:-10}
export WRK_LISTS=${WRK_LISTS:-1000}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "cluster-cost: wrk not found; install Debian's package wrk" >&2; exit 1; }
command -v psql >/dev/null || { echo "cluster-cost: psql not found; install Debian's package postgresql-client" >&2; exit 1; }
# SLUICEGATE_BIN measures another build (e.g. an earlier commit's, built in a git
# worktree); without it, this checkout's release build.
if [ -z "${SLUICEGATE_BIN:-}" ]; then
    cargo build --release --quiet --bin sluicegate
fi
BIN=${SLUICEGATE_BIN:-${CARGO_TARGET_DIR:-target}/release/sluicegate}
TMP=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
base="[storage]
backend = \"postgres\"
url = \"$URL\"
[system]
default_ack = \"durable\""
printf '%s\n' "$base" >"$TMP/plain.toml"
printf '%s\n[cluster]\nnode_id = "n1"\n' "$base" >"$TMP/cluster.toml"
HZ=$(getconf CLK_TCK)
cpu_ticks() { # user + system CPU of process PID, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
pg_ticks() { # the same summed over this machine's postgres processes; empty without any
    local pids total=0 p t
    pids=$(pgrep -x postgres || true)
    [ -n "$pids" ] || return 0
    for p in $pids; do
        t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo "$total"
}
per_request() { # BEFORE AFTER REQUESTS: microseconds of CPU per request
    python3 -c "import sys; b, a, n, hz = map(float, sys.argv[1:]); print(round((a - b) * 1e6 / hz / n, 1))" "$1" "$2" "$3" "$HZ"
}
run() { # MODE ROUND
    psql -q "$URL" -c 'DROP SCHEMA IF EXISTS sluicegate CASCADE' >/dev/null 2>&1
    rm -rf "$TMP/data"
    "$BIN" serve --config "$TMP/$1.toml" --listen 127.0.0.1:0 --data-dir "$TMP/data" \
        >"$TMP/out" 2>"$TMP/err" &
    server=$!
    local url=
    for _ in $(seq 300); do
        url=$(sed -n 's/^listening on //p' "$TMP/out")
        [ -n "$url" ] && break
        sleep 0.1
    done
    [ -n "$url" ] || { echo "cluster-cost: $1 did not start:" >&2; cat "$TMP/err" >&2; exit 1; }
    # A cluster node serves once it holds its shards.
    for _ in $(seq 300); do
        curl -sf -X POST -H 'content-type: application/json' -d '{"date":"2026-12-02","title":"warm"}' \
            "$url/lists/warm/entries?ack=durable" >/dev/null && break
        sleep 0.1
    done
    local out c0 c1 p0 p1
    c0=$(cpu_ticks "$server"); p0=$(pg_ticks)
    out=$(WRK_QUERY="?ack=durable" wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" -s scripts/wrk/post.lua "$url")
    c1=$(cpu_ticks "$server"); p1=$(pg_ticks)
    kill "$server"; wait "$server" 2>/dev/null || true; server=
    local rps non2xx reqs
    rps=$(printf '%s\n' "$out" | sed -n 's/^Requests\/sec: *//p')
    reqs=$(printf '%s\n' "$out" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
    non2xx=$(printf '%s\n' "$out" | sed -n 's/^ *Non-2xx or 3xx responses: *//p')
    local server_us pg_us=null
    server_us=$(per_request "$c0" "$c1" "$reqs")
    [ -n "$p0" ] && pg_us=$(per_request "$p0" "$p1" "$reqs")
    echo "{\"mode\": \"$1\", \"round\": $2, \"rps\": $rps, \"non_2xx\": ${non2xx:-0}, \"server_cpu_us_per_request\": $server_us, \"postgres_cpu_us_per_request\": $pg_us}" | tee -a "$TMP/runs.jsonl"
}
for round in $(seq 1 "$ROUNDS"); do
    run plain "$round"
    run cluster "$round"
done
python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {m: statistics.median(r["rps"] for r in runs if r["mode"] == m) for m in ("plain", "cluster")}
by_round = {}
for r in runs:
    by_round.setdefault(r["round"], {})[r["mode"]] = r["rps"]
ratios = [round(v["cluster"] / v["plain"], 3) for _, v in sorted(by_round.items())]
cpu = {m: statistics.median(r["server_cpu_us_per_request"] for r in runs if r["mode"] == m)
       for m in ("plain", "cluster")}
pg = {m: [r["postgres_cpu_us_per_request"] for r in runs if r["mode"] == m] for m in ("plain", "cluster")}
pg = {m: (statistics.median(v) if None not in v else None) for m, v in pg.items()}
print(json.dumps({"median_rps": med, "cluster_over_plain_per_round": ratios,
                  "median_ratio": statistics.median(ratios),
                  "median_server_cpu_us_per_request": cpu,
                  "median_postgres_cpu_us_per_request": pg}))
PY

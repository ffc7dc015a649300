#!/usr/bin/env bash
# HTTP throughput of `sluicegate serve` on the embedded default config beside a bare
# axum server answering the same routes with fixed JSON (examples/bare_axum.rs), in
# the same run: wrk -c64 for POST (ack applied, the default), POST ?ack=durable and
# GET (a ten-entry list), the two servers interleaved, ROUNDS rounds (default 3).
# Prints one line per wrk run, then per case the median requests/s of each side and
# the ratio sluicegate / bare, and the non-2xx answers seen (any fail the case).
# With BASE_BIN set (another build's `sluicegate`, e.g. from a `git worktree` of an
# older commit), that build runs as a third side, interleaved with the other two,
# and its ratio to bare and this build's ratio to it are printed too.
# Each run also reads the server's CPU time (utime + stime from /proc/PID/stat) before
# and after, and prints the CPU per request (µs): less sensitive to the machine's
# load than requests/s. PIN=1 runs the servers on core 0 and wrk on core 1 (at nice
# -20 as root), so the two do not take each other's CPU.
#
#   apt-get install wrk        # Debian's package
#   scripts/http-bench.sh [ROUNDS] [SECONDS]
set -euo pipefail
ROUNDS=${1:-3}
SECONDS_PER_RUN=${2:-10}
CONNECTIONS=${WRK_CONNECTIONS:-64}
THREADS=${WRK_THREADS:-2}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "http-bench: wrk not found; install Debian's package wrk" >&2; exit 1; }
cargo build --release --quiet --bin sluicegate --example bare_axum
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${SLUICEGATE_BIN:-$TARGET/release/sluicegate}
BARE=$TARGET/release/examples/bare_axum
TMP=$(mktemp -d)
SG_PORT=${SG_PORT:-18180}
BARE_PORT=${BARE_PORT:-18181}
BASE_PORT=${BASE_PORT:-18183}
SIDES="bare sluicegate"
SERVER_PIN=() CLIENT_PIN=()
if [ "${PIN:-0}" = 1 ]; then
    SERVER_PIN=(taskset -c 0) CLIENT_PIN=(taskset -c 1)
    [ "$(id -u)" = 0 ] && CLIENT_PIN=(nice -n -20 taskset -c 1)
fi
[ -n "${BASE_BIN:-}" ] && SIDES="bare sluicegate base"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
RUST_LOG=warn "${SERVER_PIN[@]}" "$BIN" serve >"$TMP/sg.out" --data-dir "$TMP/data" --listen "127.0.0.1:$SG_PORT" 2>"$TMP/sg.log" &
pids+=($!)
SG_PID=$!
"${SERVER_PIN[@]}" "$BARE" "127.0.0.1:$BARE_PORT" 2>"$TMP/bare.log" &
pids+=($!)
BARE_PID=$!
urls=("http://127.0.0.1:$SG_PORT/healthz" "http://127.0.0.1:$BARE_PORT/lists/x/entries")
if [ -n "${BASE_BIN:-}" ]; then
    RUST_LOG=warn "${SERVER_PIN[@]}" "$BASE_BIN" serve >"$TMP/base.out" --data-dir "$TMP/base-data" \
        --listen "127.0.0.1:$BASE_PORT" 2>"$TMP/base.log" &
    pids+=($!)
    BASE_PID=$!
    urls+=("http://127.0.0.1:$BASE_PORT/healthz")
fi
for url in "${urls[@]}"; do
    for _ in $(seq 100); do curl -sf -o /dev/null "$url" && break; sleep 0.1; done
    curl -sf -o /dev/null "$url" || { echo "http-bench: $url does not answer" >&2; cat "$TMP"/*.log >&2; exit 1; }
done
# The read lists: read-0 .. read-99, ten entries each, durable before the clock starts.
ports=("$SG_PORT")
[ -n "${BASE_BIN:-}" ] && ports+=("$BASE_PORT")
for port in "${ports[@]}"; do
    for l in $(seq 0 99); do for i in $(seq 10); do echo "$l"; done; done |
        xargs -P 16 -I{} curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
            -d '{"date":"2026-12-02","title":"Dentist"}' \
            "http://127.0.0.1:$port/lists/read-{}/entries?ack=durable" ||
        { echo "http-bench: writing the read lists failed" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
run() { # side case round
    local port=$SG_PORT pid=$SG_PID script=post.lua query=""
    [ "$1" = bare ] && port=$BARE_PORT pid=$BARE_PID
    [ "$1" = base ] && port=$BASE_PORT pid=$BASE_PID
    case "$2" in
        get) script=get.lua ;;
        post_durable) query="?ack=durable" ;;
    esac
    local out before after
    before=$(cpu_ticks "$pid")
    out=$(WRK_QUERY=$query "${CLIENT_PIN[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" \
        -s "scripts/wrk/$script" "http://127.0.0.1:$port")
    after=$(cpu_ticks "$pid")
    local rps non2xx errors requests cpu_us
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    cpu_us=$(awk -v t="$((after - before))" -v n="$requests" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    errors=$(awk '/Socket errors:/ {sub(/^ *Socket errors: */, ""); print}' <<<"$out")
    echo "{\"side\":\"$1\",\"case\":\"$2\",\"round\":$3,\"requests_s\":$rps,\"cpu_us\":$cpu_us,\"non_2xx\":${non2xx:-0},\"socket_errors\":\"${errors:-none}\"}"
}
for round in $(seq "$ROUNDS"); do
    for case in post post_durable get; do
        # Alternate which side goes first, so drift in the machine's load hits both.
        if [ $((round % 2)) = 1 ]; then order=$SIDES; else order=$(tr ' ' '\n' <<<"$SIDES" | tac | tr '\n' ' '); fi
        for side in $order; do run "$side" "$case" "$round"; done
    done
done | tee "$TMP/runs.jsonl"
python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n{'case':<14}{'bare req/s':>12}{'sluicegate':>12}{'ratio':>8}  non-2xx  ratios per round")
bad = False
for case in ["post", "post_durable", "get"]:
    side = lambda s: [r for r in runs if r["case"] == case and r["side"] == s]
    b, g = side("bare"), side("sluicegate")
    per_round = [gr["requests_s"] / br["requests_s"] for br, gr in zip(sorted(b, key=lambda r: r["round"]), sorted(g, key=lambda r: r["round"]))]
    non2xx = sum(r["non_2xx"] for r in g)
    bad |= non2xx > 0
    mb, mg = statistics.median(r["requests_s"] for r in b), statistics.median(r["requests_s"] for r in g)
    print(f"{case:<14}{mb:>12.0f}{mg:>12.0f}{statistics.median(per_round):>8.2f}  {non2xx:>7}  {' '.join(f'{x:.2f}' for x in per_round)}")
    cpu = lambda rs: statistics.median(r["cpu_us"] for r in rs)
    print(f"{'  CPU µs/req':<14}{cpu(b):>12.1f}{cpu(g):>12.1f}{cpu(g) / cpu(b):>8.2f}x bare")
    base = side("base")
    if base:
        rounds = lambda rs: sorted(rs, key=lambda r: r["round"])
        to_bare = [x["requests_s"] / y["requests_s"] for x, y in zip(rounds(base), rounds(b))]
        to_base = [x["requests_s"] / y["requests_s"] for x, y in zip(rounds(g), rounds(base))]
        mbase = statistics.median(r["requests_s"] for r in base)
        print(f"{'  base build':<14}{'':>12}{mbase:>12.0f}{statistics.median(to_bare):>8.2f}  this build x base: {statistics.median(to_base):.2f} ({' '.join(f'{x:.2f}' for x in to_base)})")
        print(f"{'  base CPU':<14}{'':>12}{cpu(base):>12.1f}  µs/req; this build's CPU x base: {cpu(g) / cpu(base):.2f}")
sys.exit(1 if bad else 0)
PY

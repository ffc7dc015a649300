#!/usr/bin/env bash
# The cost of a forward, and failover time, on a 2-node cluster sharing PostgreSQL
# at URL (release build, 256 shards, default leases unless LEASE_TTL/RENEW/MARGIN).
# For 40 lists owned by node n1 (20 to read, ten entries each; 20 to write), wrk -c32
# runs GET entries and POST ?ack=durable straight to n1 ("direct") and through n2, which forwards every
# request to n1 ("forwarded"), interleaved, ROUNDS rounds; prints one JSON line per
# run, then per case the median requests/s and the ratio forwarded / direct. Then
# kill -9 of n1 with a durable write probing one of its lists through n2 every 50 ms:
# prints the time until that write succeeds again (the failover time). Also the CPU
# each node spent per request (/proc/PID/stat) and the owner's writes per commit.
#
#   apt-get install wrk
#   scripts/cluster-bench.sh postgres://postgres@127.0.0.1:5432/bench [ROUNDS] [SECONDS]
set -euo pipefail
URL=${1:?usage: cluster-bench.sh POSTGRES_URL [ROUNDS] [SECONDS]}
ROUNDS=${2:-3}
SECONDS_PER_RUN=${3:-8}
CONNECTIONS=${WRK_CONNECTIONS:-32}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "cluster-bench: wrk not found; install Debian's package wrk" >&2; exit 1; }
cargo build --release --quiet --bin sluicegate
BIN=${SLUICEGATE_BIN:-target/release/sluicegate}
TMP=$(mktemp -d)
P1=${P1:-18281}
P2=${P2:-18282}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
cat >"$TMP/node.toml" <<EOF
[storage]
backend = "postgres"
url = "$URL"
[system]
default_ack = "durable"
[cluster]
lease_ttl = "${LEASE_TTL:-10s}"
renew_every = "${RENEW:-3s}"
lease_margin = "${MARGIN:-2s}"
EOF
# A fresh cluster: the tables of an earlier run would hold its leases.
psql -q "$URL" -c "DROP SCHEMA IF EXISTS sluicegate CASCADE" >/dev/null
for n in 1 2; do
    port=$P1; [ $n = 2 ] && port=$P2
    RUST_LOG=warn "$BIN" serve --config "$TMP/node.toml" --node-id "n$n" \
        --listen "127.0.0.1:$port" >"$TMP/n$n.out" 2>"$TMP/n$n.log" &
    pids+=($!)
done
settled() { curl -sf "http://127.0.0.1:$1/cluster" | python3 -c 'import json,sys; v=json.load(sys.stdin); sys.exit(0 if v["settled"] and sum(m["live"] for m in v["members"]) == 2 else 1)'; }
for _ in $(seq 300); do settled "$P1" && settled "$P2" && break; sleep 0.2; done
settled "$P1" && settled "$P2" || { echo "cluster-bench: the cluster did not settle" >&2; cat "$TMP"/*.log >&2; exit 1; }
# 20 lists whose shard n1 holds (the shard of a name: FNV-1a 64 as src/cluster/shard.rs).
LISTS=$(curl -sf "http://127.0.0.1:$P2/cluster" | python3 -c '
import json, sys
v = json.load(sys.stdin)
owner = {l["shard"]: l["owner"] for l in v["leases"]}
def shard(name):
    h = 0xcbf29ce484222325
    for b in list(name.encode()) + [0xff]:
        h = ((h ^ b) * 0x100000001b3) % 2**64
    return h % v["shards"]
names = (f"fw-{i}" for i in range(100000))
print(",".join([n for n in names if owner.get(shard(n)) == "n1"][:40]))')
# Reads go to the first 20 (ten entries each, never written during the runs), writes
# to the other 20, so a read's cost does not grow with the writes of earlier rounds.
READ_LISTS=$(cut -d, -f1-20 <<<"$LISTS")
WRITE_LISTS=$(cut -d, -f21-40 <<<"$LISTS")
for l in ${READ_LISTS//,/ }; do for i in $(seq 10); do echo "$l"; done; done |
    xargs -P 8 -I{} curl -sf -o /dev/null -X POST -H 'Content-Type: application/json' \
        -d '{"date":"2026-12-02","title":"Dentist"}' "http://127.0.0.1:$P1/lists/{}/entries" ||
    { echo "cluster-bench: writing the lists failed" >&2; exit 1; }

# CPU time (utime + stime, clock ticks) of a process.
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
run() { # side case round
    local port=$P1 method=GET query=""
    [ "$1" = forwarded ] && port=$P2
    local lists=$READ_LISTS
    [ "$2" = post_durable ] && method=POST && query="?ack=durable" && lists=$WRITE_LISTS
    local out rps non2xx p50 c1 c2 total
    c1=$(cpu "${pids[0]}"); c2=$(cpu "${pids[1]}")
    out=$(WRK_LISTS=$lists WRK_METHOD=$method WRK_QUERY=$query wrk -t2 -c"$CONNECTIONS" \
        -d"${SECONDS_PER_RUN}s" --latency -s scripts/wrk/lists.lua "http://127.0.0.1:$port")
    c1=$(( $(cpu "${pids[0]}") - c1 )); c2=$(( $(cpu "${pids[1]}") - c2 ))
    rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    # CPU microseconds per request of the owner (n1) and of the forwarder (n2).
    local us1 us2
    us1=$(python3 -c "print(round($c1 / $TICK / $total * 1e6, 1))")
    us2=$(python3 -c "print(round($c2 / $TICK / $total * 1e6, 1))")
    echo "{\"side\":\"$1\",\"case\":\"$2\",\"round\":$3,\"requests_s\":$rps,\"p50\":\"$p50\",\"non_2xx\":${non2xx:-0},\"owner_cpu_us\":$us1,\"forwarder_cpu_us\":$us2}"
}
for round in $(seq "$ROUNDS"); do
    for case in get post_durable; do
        if [ $((round % 2)) = 1 ]; then order="direct forwarded"; else order="forwarded direct"; fi
        for side in $order; do run "$side" "$case" "$round"; done
    done
done | tee "$TMP/runs.jsonl"
python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n{'case':<14}{'direct req/s':>14}{'forwarded':>11}{'ratio':>8}  {'owner CPU us/req':>17}  {'forwarder CPU us/req':>20}  p50 direct vs forwarded  non-2xx")
for case in ["get", "post_durable"]:
    side = lambda s: sorted((r for r in runs if r["case"] == case and r["side"] == s), key=lambda r: r["round"])
    d, f = side("direct"), side("forwarded")
    ratios = [b["requests_s"] / a["requests_s"] for a, b in zip(d, f)]
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    print(f"{case:<14}{med(d, 'requests_s'):>14.0f}{med(f, 'requests_s'):>11.0f}{statistics.median(ratios):>8.2f}"
          f"  {med(d, 'owner_cpu_us'):>7.0f} / {med(f, 'owner_cpu_us'):<7.0f}  {med(f, 'forwarder_cpu_us'):>20.0f}"
          f"  {'/'.join(r['p50'] for r in d)} vs {'/'.join(r['p50'] for r in f)}"
          f"  {sum(r['non_2xx'] for r in d + f)}")
PY

# Writes per group commit on the owner (sluicegate_db_commit_writes: sum / count).
curl -sf "http://127.0.0.1:$P1/metrics" | python3 -c '
import sys
v = {}
for line in sys.stdin:
    for k in ("sluicegate_db_commit_writes_sum", "sluicegate_db_commit_writes_count"):
        if line.startswith(k + " ") or line.startswith(k + "{"):
            v[k] = v.get(k, 0) + float(line.split()[-1])
s, c = v.get("sluicegate_db_commit_writes_sum", 0), v.get("sluicegate_db_commit_writes_count", 0)
print(f"owner: {c:.0f} commits, {s / c if c else 0:.1f} writes per commit on average")'

# Failover: kill -9 n1, probe one of its lists through n2.
probe=${LISTS%%,*}
kill -9 "${pids[0]}"
start=$(date +%s.%N)
for _ in $(seq 1200); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -d '{"date":"2026-12-02","title":"probe"}' "http://127.0.0.1:$P2/lists/$probe/entries" || true)
    [ "$code" = 201 ] && break
    sleep 0.05
done
end=$(date +%s.%N)
echo "failover: list $probe writable through n2 again $(python3 -c "print(f'{$end - $start:.1f}')") s after kill -9 of its owner (last answer $code; lease_ttl ${LEASE_TTL:-10s}, renew_every ${RENEW:-3s})"

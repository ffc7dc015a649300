#!/usr/bin/env bash
# `experiment-run --scenario mixed` (1000 lists, 100 clients x 1000 operations, 80 %
# adds) with every add acknowledged durable (policies/coalesce.toml with
# default_ack = "durable"), on sqlite and on PostgreSQL at URL, interleaved ROUNDS
# times; prints one JSON line per run, then medians and the ratio postgres / sqlite.
# Each postgres run writes into a schema of its own in URL's database and drops it.
#
#   cargo build --release
#   scripts/compare-pg.sh postgres://postgres@127.0.0.1:5432/bench 3
set -euo pipefail
URL=${1:?usage: compare-pg.sh POSTGRES_URL [ROUNDS]}
ROUNDS=${2:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release/sluicegate
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
sed 's/default_ack = "applied"/default_ack = "durable"/' "$ROOT/policies/coalesce.toml" > "$TMP/sqlite.toml"
sed "s|^backend = \"sqlite\"|backend = \"postgres\"\nurl = \"$URL\"|" "$TMP/sqlite.toml" > "$TMP/postgres.toml"
for round in $(seq 1 "$ROUNDS"); do
    for backend in sqlite postgres; do
        "$BIN" experiment-run --scenario mixed --policy "$TMP/$backend.toml" 2>/dev/null |
            python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
print(json.dumps({"backend": sys.argv[1], "round": int(sys.argv[2]),
    "ops_s": r["completed"] / r["seconds"], "p99_ms": r["p99_ms"],
    "errors": sum(r["errors"].values()), "lost_after_restart": r["lost_after_restart"]}))
' "$backend" "$round" | tee -a "$TMP/runs.jsonl"
    done
done
python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
med = {b: statistics.median(r["ops_s"] for r in runs if r["backend"] == b) for b in ("sqlite", "postgres")}
pairs = [p["ops_s"] / s["ops_s"] for s in runs if s["backend"] == "sqlite"
         for p in runs if p["backend"] == "postgres" and p["round"] == s["round"]]
print(f"median ops/s: sqlite {med['sqlite']:,.0f}, postgres {med['postgres']:,.0f}, "
      f"postgres/sqlite {med['postgres'] / med['sqlite']:.2f} "
      f"(per round: {', '.join(f'{x:.2f}' for x in pairs)}); "
      f"lost after restart: {sum(r['lost_after_restart'] for r in runs)}")
PY

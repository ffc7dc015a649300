#!/usr/bin/env bash
# `experiment mixed` (1000 lists, 100 clients x 1000 operations, 80 % adds), this
# build against another build (BASE_BIN, e.g. a `git worktree` of an older commit
# built in release), interleaved: ROUNDS rounds (default 3), each running both
# builds under policies/book.toml, policies/coalesce.toml and coalesce.toml with
# every add acknowledged durable, the side that goes first alternating per round.
# Both builds read this tree's policy files. Prints one JSON line per run, then
# per policy the medians of client ops/s (answered per second while the load ran)
# and end-to-end ops/s (until every acknowledged write was on disk) and the median
# of the per-round ratios new / base.
#
#   BASE_BIN=/work/target-base/release/sluicegate scripts/experiment-ab.sh [ROUNDS]
#
# NEW_BIN overrides this build's binary (default: built here, release).
set -euo pipefail
ROUNDS=${1:-3}
: "${BASE_BIN:?set BASE_BIN to the sluicegate binary of the build to compare with}"
cd "$(dirname "$0")/.."
if [ -z "${NEW_BIN:-}" ]; then
    cargo build --release --quiet --bin sluicegate
    NEW_BIN=${CARGO_TARGET_DIR:-target}/release/sluicegate
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp policies/book.toml policies/coalesce.toml "$TMP/"
sed 's/^default_ack = "applied"/default_ack = "durable"/' policies/coalesce.toml >"$TMP/coalesce-durable.toml"
grep -q '^default_ack = "durable"' "$TMP/coalesce-durable.toml" ||
    { echo "experiment-ab: coalesce.toml has no default_ack = \"applied\" line to turn durable" >&2; exit 1; }

run() { # SIDE POLICY ROUND
    local bin=$NEW_BIN
    [ "$1" = base ] && bin=$BASE_BIN
    "$bin" experiment-run --scenario mixed --policy "$TMP/$2.toml" 2>>"$TMP/stderr.log" |
        python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
flush = r["durable_after_ms"]
print(json.dumps({"side": sys.argv[1], "policy": sys.argv[2], "round": int(sys.argv[3]),
    "client_ops_s": r["completed"] / r["seconds"],
    "end_to_end_ops_s": None if flush is None else r["completed"] / (r["seconds"] + flush / 1000),
    "p99_ms": r["p99_ms"], "errors": sum(r["errors"].values()),
    "lost_after_restart": r["lost_after_restart"]}))
' "$1" "$2" "$3"
}

for round in $(seq "$ROUNDS"); do
    order="base new"
    [ $((round % 2)) -eq 0 ] && order="new base"
    for policy in book coalesce coalesce-durable; do
        for side in $order; do
            run "$side" "$policy" "$round" | tee -a "$TMP/runs.jsonl"
        done
    done
done

python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
def one(side, policy, rnd, key):
    for r in runs:
        if (r["side"], r["policy"], r["round"]) == (side, policy, rnd):
            return r[key]
print()
print("| policy | metric | base (median) | new (median) | new / base per round | median ratio |")
print("|---|---|---|---|---|---|")
for policy in ["book", "coalesce", "coalesce-durable"]:
    rounds = sorted({r["round"] for r in runs if r["policy"] == policy})
    for key in ["client_ops_s", "end_to_end_ops_s"]:
        pairs = [(one("base", policy, n, key), one("new", policy, n, key)) for n in rounds]
        pairs = [(b, x) for b, x in pairs if b and x]
        if not pairs:
            print(f"| {policy} | {key} | - | - | never flushed | - |")
            continue
        ratios = [x / b for b, x in pairs]
        print(f"| {policy} | {key} | {statistics.median(b for b, _ in pairs):,.0f} | "
              f"{statistics.median(x for _, x in pairs):,.0f} | "
              f"{', '.join(f'{q:.2f}' for q in ratios)} | {statistics.median(ratios):.2f} |")
errors = sum(r["errors"] for r in runs if r["side"] == "new")
lost = sum(r["lost_after_restart"] for r in runs if r["side"] == "new")
print(f"\nnew build: {errors} errors, {lost} acknowledged writes lost after restart over all runs")
PY

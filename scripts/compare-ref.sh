#!/usr/bin/env bash
# Runs `experiment-run --scenario mixed` with the binary of this tree and a
# reference binary (default: commit 821fe1d built in a git worktree), interleaved,
# ROUNDS times each, under book.toml, coalesce.toml and coalesce.toml with every
# write acknowledged durable (each binary with its own tree's policy files), and
# the new binary on the `files` backend as well. Prints one
# JSON line per run and then medians and ratios (new / reference).
#
#   git worktree add --detach /work/ref-821 821fe1d
#   (cd /work/ref-821 && cargo build --release)
#   cargo build --release
#   scripts/compare-ref.sh /work/ref-821 3 > compare.txt
set -euo pipefail
REF=${1:?usage: compare-ref.sh REF_TREE [ROUNDS]}
ROUNDS=${2:-3}
NEW=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for side in new ref; do
    tree=$NEW
    [ "$side" = ref ] && tree=$REF
    mkdir -p "$TMP/$side"
    cp "$tree/policies/book.toml" "$tree/policies/coalesce.toml" "$TMP/$side/"
    sed 's/default_ack = "applied"/default_ack = "durable"/' "$tree/policies/coalesce.toml" > "$TMP/$side/coalesce-durable.toml"
done
# The new binary on the book's store too (one file per list), for the storage choice.
sed 's/^backend = "sqlite"/backend = "files"/' "$TMP/new/coalesce-durable.toml" > "$TMP/new/coalesce-durable-files.toml"
sed 's/^backend = "sqlite"/backend = "files"/' "$TMP/new/book.toml" > "$TMP/new/book-files.toml"
sed 's/^backend = "sqlite"/backend = "files"/' "$TMP/new/coalesce.toml" > "$TMP/new/coalesce-files.toml"
run() { # side policy round
    local bin=$NEW/target/release/sluicegate
    [ "$1" = ref ] && bin=$REF/target/release/sluicegate
    "$bin" experiment-run --scenario mixed --policy "$TMP/$1/$2.toml" 2>/dev/null |
        python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
print(json.dumps({"side": sys.argv[1], "policy": sys.argv[2], "round": int(sys.argv[3]),
    "client_ops_s": r["completed"] / r["seconds"], "seconds": r["seconds"],
    "flush_s": (r["durable_after_ms"] or float("nan")) / 1000,
    "end_to_end_ops_s": r["completed"] / (r["seconds"] + (r["durable_after_ms"] or float("nan")) / 1000),
    "p99_ms": r["p99_ms"], "errors": sum(r["errors"].values()),
    "lost_after_restart": r["lost_after_restart"], "peak_rss_mib": r["peak_rss_kib"] / 1024}))
' "$1" "$2" "$3"
}
for round in $(seq 1 "$ROUNDS"); do
    for policy in book coalesce coalesce-durable; do
        run ref "$policy" "$round" | tee -a "$TMP/runs.jsonl"
        run new "$policy" "$round" | tee -a "$TMP/runs.jsonl"
    done
    for policy in book-files coalesce-files coalesce-durable-files; do
        run new "$policy" "$round" | tee -a "$TMP/runs.jsonl"
    done
done
echo
python3 - "$TMP/runs.jsonl" <<'PY'
import json, statistics, sys, math
runs = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
def vals(side, policy, key):
    return [r[key] for r in runs if r["side"] == side and r["policy"] == policy]
def med(side, policy, key):
    v = [x for x in vals(side, policy, key) if not math.isnan(x)]
    return statistics.median(v) if v else float("nan")
def never(side, policy):
    return sum(1 for x in vals(side, policy, "flush_s") if math.isnan(x))
print("| policy | runs | ref client ops/s | new client ops/s | x ref | ref end-to-end ops/s | new end-to-end ops/s | x ref | ref flush s | new flush s | ref peak MiB | new peak MiB | new lost after restart |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for p in ["book", "coalesce", "coalesce-durable", "book-files", "coalesce-files", "coalesce-durable-files"]:
    q = p.replace("-files", "")
    n = len(vals("new", p, "client_ops_s"))
    if n == 0: continue
    rc, nc = med("ref", q, "client_ops_s"), med("new", p, "client_ops_s")
    re, ne = med("ref", q, "end_to_end_ops_s"), med("new", p, "end_to_end_ops_s")
    lost = sum(vals("new", p, "lost_after_restart"))
    def fl(side, pol):
        k = never(side, pol)
        m = med(side, pol, "flush_s")
        return f"{m:.2f}" + (f" ({k} never)" if k else "")
    def e2e(side, pol, v):
        k = never(side, pol)
        return "< 2,000 (flush > 60 s)" if math.isnan(v) else f"{v:,.0f}" + (f" ({k} never)" if k else "")
    ratio_e = "-" if math.isnan(re) or math.isnan(ne) else f"{ne/re:.1f}"
    print(f"| {p} | {n} | {rc:,.0f} | {nc:,.0f} | {nc/rc:.1f} | {e2e('ref', q, re)} | {e2e('new', p, ne)} | {ratio_e} | {fl('ref', q)} | {fl('new', p)} | {med('ref', q, 'peak_rss_mib'):.0f} | {med('new', p, 'peak_rss_mib'):.0f} | {lost} |")
# per-round paired ratios
print()
for p in ["book", "coalesce", "coalesce-durable"]:
    rs = []
    for rnd in sorted({r["round"] for r in runs}):
        a = [r for r in runs if r["side"] == "ref" and r["policy"] == p and r["round"] == rnd]
        b = [r for r in runs if r["side"] == "new" and r["policy"] == p and r["round"] == rnd]
        if a and b: rs.append(b[0]["client_ops_s"] / a[0]["client_ops_s"])
    print(p, "paired client ratios per round:", ", ".join(f"{x:.1f}" for x in rs))
PY

#!/usr/bin/env bash
# The framework's benches, this tree against another checkout (a git worktree of an
# earlier commit), interleaved: ROUNDS times, base then this tree, the mailbox bench
# (one round per process, every variant beside kanal and tokio in the same process)
# and the runtime bench's call round trips (criterion, raw mpsc + oneshot beside
# `ServerRef::call` in the same process). Prints, per variant, the median over the
# rounds of each build's rate or time and of the new/base ratio of the two.
#
#   git worktree add --detach /tmp/base c7f7c4e
#   scripts/bench-ab.sh /tmp/base 3
#
# The base checkout's benches are built in its own target dir (the first run builds
# them). Each round takes about 3 minutes on 2 cores. Raw outputs stay in $OUT
# (default: target/bench-ab).
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: scripts/bench-ab.sh BASE_CHECKOUT [ROUNDS]}
rounds=${2:-3}
out=${OUT:-target/bench-ab}
mkdir -p "$out"
here=$PWD

run() { # SIDE DIR ROUND
    local side=$1 dir=$2 r=$3
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" MAILBOX_BENCH_ROUNDS=1 \
        cargo bench --quiet --bench mailbox) >"$out/$side-mailbox-$r.txt" 2>"$out/$side-mailbox-$r.err"
    (cd "$dir" && CARGO_TARGET_DIR="$dir/target" \
        cargo bench --quiet --bench runtime -- call_round_trip --noplot) >"$out/$side-runtime-$r.txt" 2>"$out/$side-runtime-$r.err"
}

for r in $(seq "$rounds"); do
    echo "round $r/$rounds: base ($base)" >&2
    run base "$base" "$r"
    echo "round $r/$rounds: this tree" >&2
    run new "$here" "$r"
done

python3 - "$out" "$rounds" <<'EOF'
import re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])

def mailbox(path):
    """variant -> (rate M/s, x kanal) from one mailbox bench output."""
    rows, group = {}, None
    for line in open(path):
        m = re.match(r"## (\w+)", line)
        if m:
            group = m.group(1)
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if group and len(cells) == 8 and cells[0] not in ("variant", "---"):
            name = cells[0].replace(" (rated offered)", "")
            lossy = "(rated offered)" in cells[0]
            rate = float(cells[2] if lossy else cells[1])
            kanal = float(cells[5]) if cells[5] != "-" else None
            rows[f"{group}/{name}"] = (rate, kanal)
    return rows

def runtime(path):
    """bench id -> median time in ns from criterion's `time: [lo mid hi]` lines."""
    rows, name = {}, None
    unit = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
    for line in open(path):
        m = re.match(r"^(call_round_trip\S+)", line)
        if m:
            name = m.group(1)
        m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if m and name:
            rows[name] = float(m.group(1)) * unit[m.group(2)]
            name = None
    return rows

med = statistics.median
print(f"## mailbox: rate (M msg/s; lossy variants offered) and x kanal, median of {rounds} interleaved rounds")
print("| variant | base M/s | new M/s | new/base | base x kanal | new x kanal |")
print("|---|---|---|---|---|---|")
runs = {s: [mailbox(f"{out}/{s}-mailbox-{r}.txt") for r in range(1, rounds + 1)] for s in ("base", "new")}
for v in runs["new"][0]:
    if not v.split("/", 1)[1].startswith("sluicegate") and "kanal" not in v:
        continue
    try:
        b = [runs["base"][r][v] for r in range(rounds)]
        n = [runs["new"][r][v] for r in range(rounds)]
    except KeyError:
        continue
    ratio = med([n[r][0] / b[r][0] for r in range(rounds)])
    fk = lambda xs: "-" if xs[0][1] is None else f"{med([x[1] for x in xs]):.2f}"
    print(f"| {v} | {med([x[0] for x in b]):.1f} | {med([x[0] for x in n]):.1f} | {ratio:.2f} | {fk(b)} | {fk(n)} |")
print()
print(f"## call round trip: time per call (ns), median of {rounds} interleaved rounds")
print("| bench | base ns | new ns | new/base | base x raw | new x raw |")
print("|---|---|---|---|---|---|")
rt = {s: [runtime(f"{out}/{s}-runtime-{r}.txt") for r in range(1, rounds + 1)] for s in ("base", "new")}
for name in rt["new"][0]:
    try:
        b = [rt["base"][r][name] for r in range(rounds)]
        n = [rt["new"][r][name] for r in range(rounds)]
    except KeyError:
        continue
    raw = name.split("/")[0] + "/raw_mpsc_oneshot"
    xr = lambda s, xs: med([xs[r] / rt[s][r][raw] for r in range(rounds)]) if raw in rt[s][0] else float("nan")
    print(f"| {name} | {med(b):.0f} | {med(n):.0f} | {med([n[r] / b[r] for r in range(rounds)]):.2f} | {xr('base', b):.2f} | {xr('new', n):.2f} |")
EOF

#!/usr/bin/env bash
# Instructions per message of one mailbox bench variant, on one thread (tokio's
# current-thread runtime), under callgrind: the difference between a 300,000- and a
# 100,000-message run divided by 200,000, with quanta's clock calibration (which runs
# for a span of time, not a count, when the bench installs its Prometheus recorder)
# taken out of both totals.
#
#   scripts/mailbox-instructions.sh BENCH_BINARY VARIANT...
#   e.g. scripts/mailbox-instructions.sh target/release/deps/mailbox-<hash> =spsc/sluicegate_drop_newest =spsc/kanal_bounded_async
#
# The bench binary comes from `cargo bench -p sluicegate --bench mailbox --no-run`.
# Needs valgrind (Debian's package).
set -euo pipefail
[ "$#" -ge 2 ] || { echo "usage: $0 BENCH_BINARY VARIANT..." >&2; exit 2; }
command -v valgrind >/dev/null || { echo "$0: valgrind not found; install Debian's package valgrind" >&2; exit 1; }
bin=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
count() { # count N VARIANT: total instructions minus the calibration's
    MAILBOX_BENCH_RUNTIME=current_thread MAILBOX_BENCH_ROUNDS=1 MAILBOX_BENCH_MESSAGES=$1 \
        valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$2" >/dev/null 2>&1
    local total cal
    total=$(callgrind_annotate "$tmp/out" | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
    cal=$(callgrind_annotate --inclusive=yes "$tmp/out" | awk '/Calibration::calibrate/ {gsub(",", "", $1); print $1; exit}')
    echo $((total - ${cal:-0}))
}
for v in "$@"; do
    small=$(count 100000 "$v")
    large=$(count 300000 "$v")
    echo "$v $(( (large - small) / 200000 )) instructions/message"
done

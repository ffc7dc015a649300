#!/usr/bin/env bash
# Runs the tests that stand for each numbered problem of issue 14 against this tree's
# binary and against a reference binary (SLUICEGATE_BIN, see todo/tests/support/serve.rs), and
# prints a Markdown table: which fail with the reference and pass here.
#
#   scripts/against-ref.sh /path/to/reference/sluicegate
#
# Build the reference first, e.g.
#   git worktree add /work/ref-821 821fe1d
#   (cd /work/ref-821 && cargo build --release --bin sluicegate)
#   scripts/against-ref.sh /work/ref-821/target/release/sluicegate
# Problem 2 (the README's test command) is about the tree, not the binary: 821fe1d has
# no scripts/test, which todo/tests/repo/scripts.rs checks; it is not run here.
set -u
ref=${1:?usage: scripts/against-ref.sh REFERENCE_BINARY}
[ -x "$ref" ] || { echo "error: $ref is not an executable" >&2; exit 2; }
cd "$(dirname "$0")/.."

# problem|test binary|test name
rows=(
  "1 two serves on one data dir|serve|data_dir_lock::a_second_serve_on_the_same_data_dir_exits_at_once_and_the_first_is_unaffected"
  "3 the to-do API|http|http::lists_entries_by_id_location_date_ranges_and_pages"
  "3 the to-do API|http|http::done_flag_and_deleting_a_whole_list"
  "4 strict input|http|bad_input::every_hostile_request_gets_its_documented_status_and_a_json_error"
  "5 logs|system|logs::refused_requests_log_at_most_one_line_per_second_per_route_and_reason_with_counts"
  "5 logs|system|logs::a_damaged_list_answers_500_without_retry_after_and_logs_at_error_once"
  "5 logs|system|logs::startup_logs_one_summary_line_of_the_effective_settings"
  "5 logs|system|logs::log_format_json_writes_one_json_object_per_line"
  "6 SIGHUP|serve|cli::sighup_applies_default_ack_names_restart_settings_and_drops_stale_series"
  "7 config|serve|cli::check_config_takes_a_file_of_one_change_and_names_a_typo_in_it"
  "7 config|serve|cli::serve_listens_on_a_host_name"
  "8 load|serve|cli::load_exits_non_zero_when_requests_fail_and_counts_the_reasons"
  "8 load|serve|cli::load_refuses_arguments_that_make_no_run"
  "8 load|serve|cli::load_help_says_it_writes_prefixed_lists_into_the_target"
  "8 load|serve|cli::load_writes_only_lists_with_its_prefix"
)

tests=$(printf '%s\n' "${rows[@]}" | cut -d'|' -f2 | sort -u | sed 's/^/--test /' | tr '\n' ' ')
# shellcheck disable=SC2086
cargo test --no-run $tests >/dev/null 2>&1 || { echo "error: the tests do not build" >&2; exit 2; }

one() { # bin-or-empty test name -> pass/FAIL
  if SLUICEGATE_BIN="$1" cargo test -q --test "$2" -- --exact "$3" >/dev/null 2>&1; then
    echo pass
  else
    echo FAIL
  fi
}

echo "| problem | test | reference | this tree |"
echo "|---|---|---|---|"
status=0
for row in "${rows[@]}"; do
  IFS='|' read -r problem bin name <<<"$row"
  theirs=$(one "$ref" "$bin" "$name")
  ours=$(one "" "$bin" "$name")
  [ "$ours" = pass ] || status=1
  echo "| $problem | \`$bin::$name\` | $theirs | $ours |"
done
exit $status

#!/usr/bin/env bash
# kcat -G: the balanced consumer (librdkafka's high-level consumer: FindCoordinator, JoinGroup,
# SyncGroup, Heartbeat, OffsetFetch, OffsetCommit, LeaveGroup). A first run consumes everything
# and commits on the way out; a second run in the same group resumes after the last commit and
# sees only what was produced since. ListGroups/DescribeGroups through kcat -L are not covered
# (kcat does not list groups); the group APIs' unit tests cover them.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/kcat_lib.sh"

start_broker num.partitions=3 group.initial.rebalance.delay.ms=0

topic=kgroup
seq 1 300 | kc -P -t "$topic" || fail "kcat -P failed"

# -e ends the run once every assigned partition is at its end; kcat commits (enable.auto.commit
# with a final commit on close) before it leaves the group.
# kcat's own log of each run is kept, and shown if an expectation fails.
group_run() {
  local log="$WORK/kcat-$1.log"
  shift
  kc "$@" 2>"$log" | sort -n
}
show_logs() {
  local f
  for f in "$WORK"/kcat-*.log; do
    echo "---- $f ----" >&2
    cat "$f" >&2
  done
}
group_fail() {
  show_logs
  fail "$@"
}

first="$(group_run first -G g1 -o beginning -e -f '%s\n' "$topic")" || group_fail "first group run failed"
[[ "$first" == "$(seq 1 300)" ]] || { group_fail "first run: got $(wc -l <<<"$first") lines"; }

seq 301 350 | kc -P -t "$topic" || fail "second kcat -P failed"
second="$(group_run second -G g1 -e -f '%s\n' "$topic")" || group_fail "second group run failed"
[[ "$second" == "$(seq 301 350)" ]] || {
  group_fail "second run should resume after the commit: got $(tr '\n' ' ' <<<"$second")"
}

# Another group starts from the beginning, independently.
other="$(group_run other -G g2 -o beginning -e -f '%s\n' "$topic" | wc -l)" ||
  group_fail "other group failed"
expect_eq "independent group" "350" "$other"

stop_broker
echo "kcat_group: all checks passed"

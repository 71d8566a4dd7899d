#!/usr/bin/env bash
# kcat -G: the balanced consumer (librdkafka's high-level consumer: FindCoordinator, JoinGroup,
# SyncGroup, Heartbeat, OffsetFetch, OffsetCommit, LeaveGroup). A first run consumes everything
# and commits on the way out; a second run in the same group resumes after the last commit and
# sees only what was produced since, also after a clean restart and after kill -9 (commits
# are replayed from __consumer_offsets). ListGroups/DescribeGroups through kcat -L are not covered
# (kcat does not list groups); the group APIs' unit tests cover them.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/kcat_lib.sh"

start_broker num.partitions=3 group.initial.rebalance.delay.ms=0

topic=kgroup
# Keyed, so the hash partitioner spreads every range over all three partitions: a partition the
# first run consumed nothing from would have no commit, and a later run would start it at the
# end (auto.offset.reset=latest), as Kafka does. Keyless batches may all land in one partition
# (librdkafka's sticky partitioner).
produce_range() {
  seq "$1" "$2" | sed 's/.*/&:&/' | kc -P -t "$topic" -K:
}
produce_range 1 300 || fail "kcat -P failed"

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

produce_range 301 350 || fail "second kcat -P failed"
second="$(group_run second -G g1 -e -f '%s\n' "$topic")" || group_fail "second group run failed"
[[ "$second" == "$(seq 301 350)" ]] || {
  group_fail "second run should resume after the commit: got $(tr '\n' ' ' <<<"$second")"
}

# Another group starts from the beginning, independently.
other="$(group_run other -G g2 -o beginning -e -f '%s\n' "$topic" | wc -l)" ||
  group_fail "other group failed"
expect_eq "independent group" "350" "$other"

# Commits live in __consumer_offsets: a clean restart, then a kill -9, lose none of them.
stop_broker
start_broker num.partitions=3 group.initial.rebalance.delay.ms=0
produce_range 351 360 || fail "kcat -P after restart failed"
third="$(group_run third -G g1 -e -f '%s\n' "$topic")" || group_fail "run after restart failed"
[[ "$third" == "$(seq 351 360)" ]] || group_fail "after a clean restart: got $(tr '\n' ' ' <<<"$third")"

kill -9 "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
BROKER_PID=""
start_broker num.partitions=3 group.initial.rebalance.delay.ms=0
produce_range 361 370 || fail "kcat -P after kill -9 failed"
fourth="$(group_run fourth -G g1 -e -f '%s\n' "$topic")" || group_fail "run after kill -9 failed"
[[ "$fourth" == "$(seq 361 370)" ]] || group_fail "after kill -9: got $(tr '\n' ' ' <<<"$fourth")"

stop_broker
echo "kcat_group: all checks passed"

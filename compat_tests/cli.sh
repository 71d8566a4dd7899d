#!/usr/bin/env bash
# The command line as an operator meets it: --help and --version, exit code 2 with one message
# for a bad value, an unknown option or an unusable data directory, a warning (not a failure)
# for an unknown key, and exit code 0 after SIGTERM and after SIGINT.
set -euo pipefail
: "${SLUICE_BIN:?SLUICE_BIN must point at the sluice binary}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-cli-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# Runs the binary, expecting exit code $1; stderr lands in $WORK/err.
expect_exit() {
  local want=$1; shift
  local got=0
  "$SLUICE_BIN" "$@" >"$WORK/out" 2>"$WORK/err" || got=$?
  [[ $got == "$want" ]] || fail "sluice $* exited $got, want $want: $(cat "$WORK/err")"
}

expect_exit 0 --help
grep -q 'log.segment.bytes' "$WORK/out" || fail "--help does not list the keys"
expect_exit 0 --version
grep -qE '^sluice [0-9]+\.[0-9]+' "$WORK/out" || fail "--version printed: $(cat "$WORK/out")"

expect_exit 2 --override num.partitions=zero
[[ $(wc -l <"$WORK/err") == 1 ]] || fail "a bad value should give one line, got: $(cat "$WORK/err")"
grep -q 'num.partitions' "$WORK/err" || fail "the message does not name the key"
expect_exit 2 --no-such-option
expect_exit 2 /nonexistent/server.properties

printf 'x' >"$WORK/not-a-dir"
expect_exit 2 --override listeners=PLAINTEXT://127.0.0.1:0 --override "log.dirs=$WORK/not-a-dir"
[[ $(wc -l <"$WORK/err") == 1 ]] || fail "an unusable data dir should give one line: $(cat "$WORK/err")"

# A properties file with an unknown key: the broker warns and serves. Then each signal stops it
# cleanly with exit code 0 and a clean-shutdown marker.
for signal in TERM INT; do
  data="$WORK/data-$signal"
  printf 'log.dirs=%s\nlisteners=PLAINTEXT://127.0.0.1:0\nsome.unknown.key=1\n' "$data" \
    >"$WORK/server.properties"
  "$SLUICE_BIN" "$WORK/server.properties" 2>"$WORK/broker.err" &
  pid=$!
  for _ in $(seq 100); do
    grep -q 'listening on' "$WORK/broker.err" && break
    sleep 0.05
  done
  grep -q 'listening on' "$WORK/broker.err" || fail "broker did not start: $(cat "$WORK/broker.err")"
  grep -q "unknown configuration key 'some.unknown.key'" "$WORK/broker.err" ||
    fail "no warning for the unknown key"
  kill -"$signal" "$pid"
  status=0
  wait "$pid" || status=$?
  [[ $status == 0 ]] || fail "SIG$signal: exit $status"
  [[ -e "$data/.kafka_cleanshutdown" ]] || fail "SIG$signal: no clean-shutdown marker"
done
echo "cli: all checks passed"

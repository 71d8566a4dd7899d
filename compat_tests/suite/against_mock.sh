#!/usr/bin/env bash
# The broker-neutral suite against a second implementation, librdkafka's mock cluster
# (bench/mockbroker.cc): a scenario that encodes a Sluice quirk instead of Kafka's behaviour fails
# there. What the mock cannot serve is listed, with the reason, in mock-allowlist.txt; anything
# else that fails is a finding.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
: "${SLUICE_MOCKBROKER:?SLUICE_MOCKBROKER must point at sluice-mockbroker}"
: "${SLUICE_COMPAT_SUITE:?SLUICE_COMPAT_SUITE must point at sluice-compat-suite}"
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-suite-mock-XXXXXX")"
mock_pid=""
cleanup() {
  [[ -n "$mock_pid" ]] && kill "$mock_pid" 2>/dev/null && wait "$mock_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

"$SLUICE_MOCKBROKER" --brokers 1 >"$work/mock.out" 2>"$work/mock.err" &
mock_pid=$!
for _ in $(seq 1 100); do
  [[ -s "$work/mock.out" ]] && break
  sleep 0.05
done
bootstrap="$(head -n 1 "$work/mock.out")"
[[ "$bootstrap" =~ ^127\.0\.0\.1:[0-9]+$ ]] || { echo "the mock cluster did not start" >&2; exit 1; }

set +e
"$here/../../scripts/compat.sh" --bootstrap "$bootstrap" --allowlist "$here/mock-allowlist.txt" \
  --timeout-ms 10000 >"$work/out" 2>"$work/err"
status=$?
set -e
cat "$work/out"
if [[ $status -ne 0 ]]; then
  tail -n 60 "$work/err" >&2
  echo "FAIL: the suite against the mock cluster exited with $status" >&2
  exit 1
fi
summary="$(tail -n 1 "$work/out")"
[[ "$summary" =~ ^([0-9]+)\ passed,\ 0\ failed ]] && (( BASH_REMATCH[1] >= 10 )) ||
  { echo "FAIL: summary line: $summary" >&2; exit 1; }

#!/usr/bin/env bash
# CI's run of the broker-neutral suite against one Sluice broker with its default settings
# (auto-creation on, as the suite must not need it off). Sluice advertises every API the suite
# uses, so nothing may be skipped for a missing API, nothing may fail, and the run must leave no
# topic of its prefix behind.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/../kcat_lib.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
: "${SLUICE_COMPAT_SUITE:?SLUICE_COMPAT_SUITE must point at sluice-compat-suite}"

start_broker
prefix="ci-suite-$$-"
set +e
"$root/scripts/compat.sh" --bootstrap "$BOOTSTRAP" --prefix "$prefix" >"$WORK/out" 2>"$WORK/err"
status=$?
set -e
cat "$WORK/out"
if [[ $status -ne 0 ]]; then
  tail -n 60 "$WORK/err" >&2
  fail "scripts/compat.sh exited with $status"
fi
summary="$(tail -n 1 "$WORK/out")"
[[ "$summary" =~ ^([0-9]+)\ passed,\ 0\ failed,\ ([0-9]+)\ skipped$ ]] || fail "summary line: $summary"
# Every librdkafka, raw and kcat scenario passes on Sluice (platformatic ones may be skipped where
# Node is missing or too old).
expected="$( { "$SLUICE_COMPAT_SUITE" --list; bash "$root/compat_tests/suite/kcat.sh" --list; } | wc -l)"
passed="$(grep -cE '^PASS (rdkafka|raw|kcat)/' "$WORK/out" || true)"
[[ "$passed" -eq "$expected" ]] || fail "$passed of the $expected librdkafka, raw and kcat scenarios passed"
if grep -E '^SKIP .*(does not advertise|advertises .* only up to)' "$WORK/out"; then
  fail "Sluice does not advertise an API the suite uses"
fi
left="$(kc -L 2>/dev/null | grep -c "topic \"$prefix" || true)"
[[ "$left" -eq 0 ]] || fail "$left topics of the run were left behind"
stop_broker

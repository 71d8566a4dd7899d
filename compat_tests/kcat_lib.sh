# shellcheck shell=bash
# Shared helpers for the kcat compat scripts. Source it; do not run it.
#
#   start_broker [key=value ...]   starts $SLUICE_BIN on 127.0.0.1:0 with a fresh data dir and
#                                  sets BROKER_PID, BOOTSTRAP, BROKER_PORT, DATA_DIR, WORK
#   stop_broker                    SIGTERM, waits, fails unless the exit status is 0
#   fail MESSAGE                   prints MESSAGE (and the broker's stderr) and exits 1
#   expect_eq NAME EXPECTED ACTUAL
#
# Everything is cleaned up on exit; set SLUICE_COMPAT_KEEP=1 to keep the work directory.

set -euo pipefail

: "${SLUICE_BIN:?SLUICE_BIN must point at the sluice binary}"
KCAT="${KCAT:-kcat}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/sluice-kcat-XXXXXX")"
BROKER_PID=""

cleanup() {
  if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -9 "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  if [[ -n "${SLUICE_COMPAT_KEEP:-}" ]]; then
    echo "keeping $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  if [[ -f "$WORK/broker.stderr" ]]; then
    echo "---- sluice stderr ----" >&2
    tail -n 50 "$WORK/broker.stderr" >&2
    echo "---- end ----" >&2
  fi
  exit 1
}

expect_eq() {
  local name="$1" expected="$2" actual="$3"
  if [[ "$expected" != "$actual" ]]; then
    echo "---- expected ($name) ----" >&2
    printf '%s\n' "$expected" >&2
    echo "---- actual ($name) ----" >&2
    printf '%s\n' "$actual" >&2
    fail "$name differs"
  fi
}

# shellcheck disable=SC2120  # the overrides are optional
start_broker() {
  DATA_DIR="$WORK/data"
  mkdir -p "$DATA_DIR"
  local args=(--override node.id=1 --override listeners=PLAINTEXT://127.0.0.1:0
              --override "log.dirs=$DATA_DIR" --override num.partitions=1
              --override auto.create.topics.enable=true)
  local kv
  for kv in "$@"; do args+=(--override "$kv"); done
  : >"$WORK/broker.stderr"
  "$SLUICE_BIN" "${args[@]}" 2>>"$WORK/broker.stderr" >/dev/null </dev/null &
  BROKER_PID=$!
  local i line=""
  for ((i = 0; i < 300; i++)); do  # up to 15 s
    line="$(grep -o 'listening on PLAINTEXT://[^[:space:]]*' "$WORK/broker.stderr" | head -n1 || true)"
    [[ -n "$line" ]] && break
    kill -0 "$BROKER_PID" 2>/dev/null || fail "sluice exited before listening"
    sleep 0.05
  done
  [[ -n "$line" ]] || fail "sluice did not print 'listening on' within 15 s"
  BOOTSTRAP="${line#listening on PLAINTEXT://}"
  BROKER_PORT="${BOOTSTRAP##*:}"  # used by the scripts that source this file
  export BROKER_PORT
}

stop_broker() {
  kill -TERM "$BROKER_PID"
  local rc=0
  wait "$BROKER_PID" || rc=$?
  BROKER_PID=""
  [[ $rc -eq 0 ]] || fail "sluice exited with status $rc after SIGTERM (expected 0)"
}

# kcat with the bootstrap address and a bounded runtime.
kc() {
  timeout 30 "$KCAT" -b "$BOOTSTRAP" "$@"
}

#!/usr/bin/env bash
# Runs the broker-neutral compatibility suite (compat_tests/suite/README.md) against any
# Kafka-compatible broker: Sluice, a Sluice cluster, Apache Kafka, Redpanda.
#
#   scripts/compat.sh --bootstrap HOST:PORT[,HOST:PORT...] [options]
#
#   --only REGEX         run only the scenarios whose name (client/scenario) matches
#   --clients LIST       comma-separated subset of rdkafka,raw,kcat,platformatic (default: all)
#   --allowlist FILE     scenarios this broker is known not to serve: a FAIL of a listed scenario
#                        is reported as SKIP with the file's reason (lines: NAME REASON...)
#   --prefix PREFIX      topic and group prefix (default: sluice-compat-<time>-<random>-)
#   --timeout-ms N       deadline of each wait inside a scenario (default 30000)
#   --keep               do not delete the run's topics and groups at the end
#   --list               print the scenario names and exit
#
# Prints one PASS/FAIL/SKIP line per scenario, then "N passed, M failed, K skipped". Exit code:
# 0 when nothing failed, 1 when something did, 2 on a usage error or an unreachable broker.
#
# Where the runner comes from: $SLUICE_COMPAT_SUITE, else build/compat_tests/suite/ of this
# checkout (built on first use, after installing the Debian packages it needs), else
# sluice-compat-suite on PATH (the container image).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
suite_dir="${SLUICE_COMPAT_DIR:-$root/compat_tests/suite}"
node_dir="${SLUICE_COMPAT_NODE_DIR:-$root/compat_tests/node}"

usage() {
  sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

bootstrap="" only="" clients="rdkafka,raw,kcat,platformatic" allowlist="" keep=0 list=0
prefix="sluice-compat-$(date +%s)-$RANDOM-"
timeout_ms=30000
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap) bootstrap="${2:?}"; shift 2 ;;
    --only) only="${2:?}"; shift 2 ;;
    --clients) clients="${2:?}"; shift 2 ;;
    --allowlist) allowlist="${2:?}"; shift 2 ;;
    --prefix) prefix="${2:?}"; shift 2 ;;
    --timeout-ms) timeout_ms="${2:?}"; shift 2 ;;
    --keep) keep=1; shift ;;
    --list) list=1; shift ;;
    -h|--help) usage ;;
    *) echo "compat.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$list" = 1 ] || [ -n "$bootstrap" ] || { echo "compat.sh: --bootstrap is required" >&2; usage; }
if [ -n "$allowlist" ] && [ ! -r "$allowlist" ]; then
  echo "compat.sh: cannot read allowlist $allowlist" >&2
  exit 2
fi
wants() { [[ ",$clients," == *",$1,"* ]]; }

# ---- the C++ runner ---------------------------------------------------------------------------

runner="${SLUICE_COMPAT_SUITE:-}"
if [ -z "$runner" ]; then
  if [ -f "$root/CMakeLists.txt" ] && [ -d "$root/compat_tests/suite/runner" ]; then
    runner="$root/build/compat_tests/suite/sluice-compat-suite"
    if [ ! -x "$runner" ]; then
      echo "compat.sh: building sluice-compat-suite in $root/build" >&2
      "$root/scripts/install-deps.sh" test >&2 || exit 2
      if [ ! -f "$root/build/build.ninja" ]; then
        cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
          -DSLUICE_BUILD_TESTS=ON >&2 || exit 2
      fi
      cmake --build "$root/build" --target sluice-compat-suite >&2 || exit 2
    fi
  else
    runner="$(command -v sluice-compat-suite || true)"
  fi
fi
if [ ! -x "$runner" ]; then
  echo "compat.sh: sluice-compat-suite not found (set SLUICE_COMPAT_SUITE)" >&2
  exit 2
fi

export SLUICE_COMPAT_SUITE="$runner"  # kcat.sh creates its topics with it

work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-compat-XXXXXX")"
trap 'rm -rf "$work"' EXIT
results="$work/results"
: >"$results"

if [ "$list" = 1 ]; then
  "$runner" --list
  bash "$suite_dir/kcat.sh" --list
  echo "platformatic/* (see compat_tests/node/suite.mjs)"
  exit 0
fi

if ! "$runner" --bootstrap "$bootstrap" --print-api-versions --timeout-ms "$timeout_ms" \
    >"$work/api-versions"; then
  echo "compat.sh: cannot reach a broker at $bootstrap (ApiVersions failed)" >&2
  exit 2
fi

# ---- reporting --------------------------------------------------------------------------------

# Allowlisted name -> reason.
declare -A allowed=()
if [ -n "$allowlist" ]; then
  while read -r name reason; do
    [[ -z "$name" || "$name" == \#* ]] && continue
    allowed["$name"]="$reason"
  done <"$allowlist"
fi

# Reads a runner's stdout, turns an allowlisted FAIL into a SKIP, and records every result line
# (the runner's own in $work/raw, the reported one in $results). Anything else the runner prints
# on stdout is passed through to stderr.
report() {
  local line status name rest
  while IFS= read -r line; do
    case "$line" in
      PASS\ *|FAIL\ *|SKIP\ *) ;;
      *) printf '%s\n' "$line" >&2; continue ;;
    esac
    printf '%s\n' "$line" >>"$work/raw"
    status="${line%% *}"
    rest="${line#* }"
    name="${rest%%:*}"
    if [ "$status" = FAIL ] && [ -n "${allowed[$name]+set}" ]; then
      line="SKIP $name: allowlisted: ${allowed[$name]} (it failed with: ${rest#*: })"
    fi
    printf '%s\n' "$line" | tee -a "$results"
  done
}

# Runs one runner. Exit status 1 means "a scenario failed", which it has reported; anything else
# non-zero (a crash, a usage error), or 1 without a FAIL line, is a failure of the runner itself.
run_runner() {
  local client="$1"; shift
  local before status
  touch "$work/raw"
  before=$(grep -c '^FAIL ' "$work/raw")
  "$@" 2> >(sed -u "s/^/[$client] /" >&2) | report
  status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ] && { [ "$status" -ne 1 ] || [ "$(grep -c '^FAIL ' "$work/raw")" -eq "$before" ]; }; then
    echo "FAIL $client/runner: exited with status $status" | report
  fi
}

common=(--bootstrap "$bootstrap" --prefix "$prefix" --api-versions "$work/api-versions"
        --timeout-ms "$timeout_ms")
[ -n "$only" ] && common+=(--only "$only")

# ---- the runners ------------------------------------------------------------------------------

cxx_filter=""
if wants rdkafka && wants raw; then cxx_filter=""
elif wants rdkafka; then cxx_filter="^rdkafka/"
elif wants raw; then cxx_filter="^raw/"
fi
if wants rdkafka || wants raw; then
  args=("${common[@]}")
  if [ -n "$cxx_filter" ] && [ -z "$only" ]; then args+=(--only "$cxx_filter"); fi
  run_runner cxx "$runner" "${args[@]}"
fi

if wants kcat; then
  if command -v "${KCAT:-kcat}" >/dev/null 2>&1; then
    run_runner kcat bash "$suite_dir/kcat.sh" "${common[@]}"
  else
    echo "SKIP kcat/*: kcat is not installed (Debian package kcat)" | report
  fi
fi

if wants platformatic; then
  # The pinned client, installed once per lock file into the user's cache.
  app="$(SLUICE_COMPAT_NODE_DIR="$node_dir" "$here/node-clients.sh" 2>"$work/npm.log")"
  status=$?
  if [ "$status" -eq 77 ]; then
    echo "SKIP platformatic/*: $(tail -n 1 "$work/npm.log")" | report
  elif [ "$status" -ne 0 ]; then
    cat "$work/npm.log" >&2
    echo "FAIL platformatic/install: npm ci of @platformatic/kafka failed (see above)" | report
  else
    cp "$node_dir/suite.mjs" "$app/"
    run_runner platformatic "${NODE:-node}" "$app/suite.mjs" "${common[@]}"
  fi
fi

# ---- cleanup and summary ----------------------------------------------------------------------

if [ "$keep" = 0 ]; then
  if ! "$runner" --bootstrap "$bootstrap" --prefix "$prefix" --cleanup 2>&1 | sed 's/^/[cleanup] /' >&2; then
    echo "compat.sh: some topics or groups with prefix $prefix were left on the broker" >&2
  fi
fi

passed=$(grep -c '^PASS ' "$results")
failed=$(grep -c '^FAIL ' "$results")
skipped=$(grep -c '^SKIP ' "$results")
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]

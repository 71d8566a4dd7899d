#!/usr/bin/env bash
# Builds the broker and the benchmark tools (Release, in build-bench/) and runs the standard
# scenario against Sluice and librdkafka's mock cluster; see bench/README.md and
# docs/PERFORMANCE.md.
#
#   bench/run.sh [--quick] [--reps N] [--skip-scale] [--phases LIST] [--out DIR] [--work-dir DIR]
#                [--sluice-override KEY=VALUE]...
#
# --quick: one repetition of a smaller scenario (about a minute). --phases: a comma-separated
# subset of zerocopy,brokers,startup,scale (default: all; scale is skipped by --quick).
# Results go to build-bench/bench-results/<time>/ (summary.md, results.jsonl, logs/); the summary
# is also printed. --sluice-override passes a setting to the Sluice of the brokers phase (e.g.
# log.flush.on.ack=never, to price the sync before acks=all acknowledgements).
# The data directories live under --work-dir (default: a fresh directory in $TMPDIR or /tmp):
# put it on the disk you want to measure.
#
# On a machine shared with other builds, serialise the whole run with them, e.g.
#   flock /tmp/sluice-build.lock bench/run.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${SLUICE_BENCH_BUILD_DIR:-$root/build-bench}"

args=()
out=""
work=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick | --skip-scale) args+=("$1") ;;
    --reps | --phases | --sluice-override) args+=("$1" "$2"); shift ;;
    --out) out="$2"; shift ;;
    --work-dir) work="$2"; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_run run.sh scenario.py bench-results sluice-bench sluice sluice-load sluice-mockbroker sluice-rawfetch sluice-zerocopy sluice-probe -- "${args[@]}"

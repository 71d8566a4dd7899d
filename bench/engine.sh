#!/usr/bin/env bash
# Builds the broker and the benchmark tools (Release, in build-bench/) and runs the engine
# benchmarks of bench/engine.py: stalls, the cost of durability, bounded memory, restart after
# kill -9 and index memory; see bench/README.md and docs/PERFORMANCE.md.
#
#   bench/engine.sh [--quick] [--phases LIST] [--baseline-bin PATH] [--out DIR] [--work-dir DIR]
#
# --quick: smaller data (128 MiB instead of 1 GiB) and one repetition, a few minutes in all.
# --phases: a comma-separated subset of stalls,durability,memory,recovery,index (default all).
# --baseline-bin: another sluice binary (an older build, say) whose stall phase runs too, in the
# same run, for a side-by-side table.
# Results go to build-bench/engine-results/<time>/ (summary.md, results.jsonl, logs/). The data
# directories live under --work-dir (default: a fresh directory in $TMPDIR or /tmp): put it on the
# disk you want to measure; the full run needs about 4 GB there.
#
# On a machine shared with other builds, serialise the whole run with them, e.g.
#   flock /tmp/sluice-build.lock bench/engine.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${SLUICE_BENCH_BUILD_DIR:-$root/build-bench}"

args=()
out=""
work=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) args+=("$1") ;;
    --phases | --baseline-bin) args+=("$1" "$2"); shift ;;
    --out) out="$2"; shift ;;
    --work-dir) work="$2"; shift ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "engine.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_run engine.sh engine.py engine-results sluice-engine sluice sluice-load sluice-flood -- "${args[@]}"

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

missing() {
  echo "engine.sh: $1 is missing (scripts/install-deps.sh test installs it)" >&2
  exit 2
}
for tool in cmake ninja pkg-config python3; do
  command -v "$tool" >/dev/null || missing "$tool"
done
pkg-config --exists rdkafka || missing librdkafka-dev

echo "building in $build" >&2
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target sluice sluice-load sluice-flood >/dev/null

out="${out:-$build/engine-results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
own_work=0
if [[ -z "$work" ]]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-engine.XXXXXX")"
  own_work=1
fi
cleanup() { if [[ $own_work == 1 ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
{
  echo "machine: $(nproc) cores, $cpu, kernel $(uname -r)"
  echo "sluice: $commit, librdkafka $(pkg-config --modversion rdkafka)"
} | tee "$out/machine.txt" >&2

python3 "$root/bench/engine.py" --build-dir "$build" --out "$out" --work-dir "$work" "${args[@]}"
echo "results in $out" >&2

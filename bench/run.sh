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

missing() {
  echo "run.sh: $1 is missing (scripts/install-deps.sh test installs it)" >&2
  exit 2
}
for tool in cmake ninja pkg-config python3; do
  command -v "$tool" >/dev/null || missing "$tool"
done
pkg-config --exists rdkafka || missing librdkafka-dev

echo "building in $build" >&2
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target sluice sluice-load sluice-mockbroker sluice-rawfetch \
  sluice-zerocopy sluice-probe >/dev/null

out="${out:-$build/bench-results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
own_work=0
if [[ -z "$work" ]]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")"
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

python3 "$root/bench/scenario.py" --build-dir "$build" --out "$out" --work-dir "$work" "${args[@]}"
echo "results in $out" >&2

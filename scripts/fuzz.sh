#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with clang (in build-fuzz) and runs each for the given
# number of seconds (default 600) on a scratch copy of its seed corpus. Stops and fails at the
# first crash, leak, timeout or out-of-memory, keeping the input under build-fuzz/artifacts/.
# See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [seconds-per-target]" >&2; exit 2; }

scripts/install-deps.sh test
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DSLUICE_FUZZ=ON -DSLUICE_BUILD_TESTS=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target sluice_fuzz

# Scratch space on tmpfs when there is one: the segment target writes and fsyncs a log per input.
scratch_parent=${TMPDIR:-/tmp}
[ -d /dev/shm ] && [ -w /dev/shm ] && scratch_parent=/dev/shm
scratch=$(mktemp -d "$scratch_parent/sluice-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
artifacts=build-fuzz/artifacts
mkdir -p "$artifacts"

# target, -max_len (room for a request with nested arrays, a few batches, a segment long enough
# for several index entries at one per 4096 bytes), dictionary in fuzz/ or -.
targets=(
  "request_decode 4096 -"
  "record_batch 4096 batch.dict"
  "segment_recovery 16384 batch.dict"
)
for entry in "${targets[@]}"; do
  read -r name max_len dict <<<"$entry"
  binary=build-fuzz/fuzz/fuzz_$name
  corpus=$scratch/corpus/$name
  mkdir -p "$corpus" "$scratch/tmp" "$scratch/artifacts"
  cp fuzz/corpus/"$name"/* "$corpus"/
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len"
           -artifact_prefix="$scratch/artifacts/fuzz_$name-")
  [ "$dict" = - ] || options+=(-dict=fuzz/"$dict")
  log=$scratch/fuzz_$name.log
  echo "fuzz_$name: ${seconds}s on $(ls "$corpus" | wc -l) seeds"
  # libFuzzer stops at max_total_time; the outer timeout only guards against a hang outside it.
  status=0
  TMPDIR=$scratch/tmp timeout -k 10 $((seconds + 120)) "$binary" "${options[@]}" "$corpus" \
    >"$log" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    # The recommended-dictionary dump (lines starting with a quote) is noise here.
    grep -v '^"' "$log" | tail -n 60 >&2
    for f in "$scratch"/artifacts/*; do
      [ -e "$f" ] || continue
      cp "$f" "$artifacts"/
      echo "kept $artifacts/$(basename "$f"); reproduce with: $binary $artifacts/$(basename "$f")" >&2
    done
    echo "fuzz_$name failed (exit $status)" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs' "$log" | sed "s/^/fuzz_$name: /" || true
done

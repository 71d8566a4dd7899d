# Shared by bench/run.sh and bench/engine.sh (sourced, not run): checks the tools, builds the
# given targets in $build, and runs a driver script with an output and a work directory.
#
#   bench_run <script name> <driver.py> <results subdir> <work prefix> <targets...> -- <args...>
# Uses $root, $build, $out and $work from the caller; $out and $work may be empty.

bench_run() {
  local me="$1" driver="$2" results="$3" prefix="$4"
  shift 4
  local targets=()
  while [[ $# -gt 0 && "$1" != "--" ]]; do targets+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift

  local tool
  for tool in cmake ninja pkg-config python3; do
    command -v "$tool" >/dev/null ||
      { echo "$me: $tool is missing (scripts/install-deps.sh test installs it)" >&2; exit 2; }
  done
  pkg-config --exists rdkafka ||
    { echo "$me: librdkafka-dev is missing (scripts/install-deps.sh test installs it)" >&2; exit 2; }

  echo "building in $build" >&2
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_BENCH=ON >/dev/null
  cmake --build "$build" --target "${targets[@]}" >/dev/null

  out="${out:-$build/$results/$(date +%Y%m%d-%H%M%S)}"
  mkdir -p "$out"
  bench_own_work=0
  if [[ -z "$work" ]]; then
    work="$(mktemp -d "${TMPDIR:-/tmp}/$prefix.XXXXXX")"
    bench_own_work=1
  fi
  trap 'if [[ $bench_own_work == 1 ]]; then rm -rf "$work"; fi' EXIT

  local cpu commit
  cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  commit="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  git -C "$root" diff --quiet HEAD 2>/dev/null || commit="$commit (with uncommitted changes)"
  {
    echo "machine: $(nproc) cores, $cpu, kernel $(uname -r)"
    echo "sluice: $commit, librdkafka $(pkg-config --modversion rdkafka)"
  } | tee "$out/machine.txt" >&2

  python3 "$root/bench/$driver" --build-dir "$build" --out "$out" --work-dir "$work" "$@"
  echo "results in $out" >&2
}

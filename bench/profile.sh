#!/usr/bin/env bash
# Profiles the broker on a short produce run and a short fetch run (docs/PERFORMANCE.md):
#
#   1. callgrind: the broker under `valgrind --tool=callgrind` while sluice-load produces
#      (300k x 100 B acks=1, then 100k x 1 KiB acks=all), then, on data written beforehand by a
#      normal broker, while sluice-load consumes both topics and sluice-rawfetch reads 1 GiB.
#      Instruction counts of user space only: the kernel's share (copies, TCP, page cache) is
#      invisible to valgrind.
#   2. perf, when `perf record` works here: the normal broker sampled with call graphs over the
#      same loads, produce four times larger, user space and kernel together.
#
#   bench/profile.sh [--out DIR]     (wrap in flock /tmp/sluice-build.lock on a shared machine)
#
# Writes callgrind.{produce,fetch}.out and .txt (top functions, exclusive and inclusive) and
# perf.{produce,fetch}.txt under build-bench/bench-results/profile-<time>/.
# No pipefail: the reports are cut with head, which closes their pipes early.
set -eu
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${SLUICE_BENCH_BUILD_DIR:-$root/build-bench}"
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift ;;
    -h | --help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "profile.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v valgrind >/dev/null; then
  echo "profile.sh: valgrind is missing (apt-get install valgrind)" >&2
  exit 2
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_BENCH=ON >/dev/null
cmake --build "$build" --target sluice sluice-load sluice-rawfetch >/dev/null
out="${out:-$build/bench-results/profile-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-profile.XXXXXX")"
tools="$build/bench"

broker_pid=""
stop_broker() {
  if [[ -n "$broker_pid" ]] && kill -0 "$broker_pid" 2>/dev/null; then
    kill -TERM "$broker_pid"
    # callgrind writes its profile at exit; give the slowed-down broker time to get there.
    for _ in $(seq 600); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$broker_pid" 2>/dev/null || true
    wait "$broker_pid" 2>/dev/null || true
  fi
  broker_pid=""
}
trap 'stop_broker; rm -rf "$work"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_broker DATA_DIR [PREFIX...]: build/sluice on a free port, under PREFIX (e.g. valgrind).
start_broker() {
  local data="$1"
  shift
  port="$(free_port)"
  "$@" "$build/sluice" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$data" --override num.partitions=4 >>"$out/broker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "profile.sh: the broker did not start (see $out/broker.log)" >&2
  exit 1
}

# produce_load [FACTOR]: 300k x 100 B acks=1 and 100k x 1 KiB acks=all, times FACTOR.
produce_load() {
  local factor="${1:-1}"
  "$tools/sluice-load" produce --brokers "127.0.0.1:$port" --broker-pid "$broker_pid" \
    --topic p100 --messages $((300000 * factor)) --size 100 --partitions 4 --acks 1 \
    --timeout-s 600
  "$tools/sluice-load" produce --brokers "127.0.0.1:$port" --broker-pid "$broker_pid" \
    --topic p1k --messages $((100000 * factor)) --size 1024 --partitions 4 --acks all \
    --timeout-s 600
}
fetch_load() {  # ignores its argument: it reads what produce_load wrote
  "$tools/sluice-load" consume --brokers "127.0.0.1:$port" --broker-pid "$broker_pid" \
    --topic p100 --timeout-s 600
  "$tools/sluice-load" consume --brokers "127.0.0.1:$port" --broker-pid "$broker_pid" \
    --topic p1k --timeout-s 600
  "$tools/sluice-rawfetch" --brokers "127.0.0.1:$port" --broker-pid "$broker_pid" \
    --topic p100:4 --topic p1k:4 --bytes 1GiB --timeout-s 600
}

annotate() {
  {
    echo "== exclusive (self) instruction counts"
    callgrind_annotate --inclusive=no "$1" 2>/dev/null | head -45
    echo
    echo "== inclusive instruction counts"
    callgrind_annotate --inclusive=yes "$1" 2>/dev/null | head -60
  } >"$2"
}

callgrind=(valgrind --tool=callgrind --dump-instr=no --collect-jumps=no)

echo "callgrind: produce" >&2
start_broker "$work/cg-produce" "${callgrind[@]}" "--callgrind-out-file=$out/callgrind.produce.out"
produce_load >"$out/load.produce.callgrind.jsonl"
cat "$out/load.produce.callgrind.jsonl"
stop_broker
annotate "$out/callgrind.produce.out" "$out/callgrind.produce.txt"

echo "callgrind: fetch (data written by a normal broker first)" >&2
start_broker "$work/fetch"
produce_load >/dev/null
stop_broker
start_broker "$work/fetch" "${callgrind[@]}" "--callgrind-out-file=$out/callgrind.fetch.out"
fetch_load >"$out/load.fetch.callgrind.jsonl"
cat "$out/load.fetch.callgrind.jsonl"
stop_broker
annotate "$out/callgrind.fetch.out" "$out/callgrind.fetch.txt"

if perf record -o /dev/null -- true >/dev/null 2>&1; then
  for phase in produce fetch; do
    echo "perf: $phase" >&2
    rm -rf "$work/perf"
    if [[ $phase == fetch ]]; then
      start_broker "$work/perf"
      produce_load 4 >/dev/null
      stop_broker
    fi
    start_broker "$work/perf"
    perf record -F 1999 -g -p "$broker_pid" -o "$out/perf.$phase.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.2
    # perf samples at a fixed rate: a larger load than under callgrind, for enough samples.
    "${phase}_load" 4 >"$out/load.$phase.perf.jsonl"
    cat "$out/load.$phase.perf.jsonl"
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    stop_broker
    {
      echo "== by object (user space vs kernel)"
      perf report -i "$out/perf.$phase.data" --no-children --sort dso --stdio -g none 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -8
      echo
      echo "== by symbol"
      perf report -i "$out/perf.$phase.data" --no-children --sort dso,sym --stdio -g none \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
      echo
      echo "== by caller chain (children included)"
      perf report -i "$out/perf.$phase.data" --children --sort sym --stdio -g none \
        2>/dev/null | grep -v '^#' | grep -v '^$' | head -50
    } >"$out/perf.$phase.txt"
  done
else
  echo "perf record does not work here: callgrind only" >&2
fi
echo "profiles in $out" >&2

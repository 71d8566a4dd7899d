#!/usr/bin/env bash
# Builds the broker and the benchmark tools (Release, in build-bench/) and runs the replication
# benchmarks of bench/cluster.py: etcd and a three-broker cluster beside a standalone broker, all
# on 127.0.0.1, in one run: replicated produce (acks=all, replication factor 3) against the
# standalone broker (acks=1), the leader's CPU per GB served to a follower against a consumer,
# a follower's catch-up of 1 GiB, and how long a topic creation takes to reach the other brokers'
# Metadata; see bench/README.md and docs/PERFORMANCE.md.
#
#   bench/cluster.sh [--quick] [--reps N] [--messages M] [--follower-bytes B] [--phases LIST]
#                    [--out DIR] [--work-dir DIR]
#
# --quick: one repetition, 50,000 messages per produce case and 128 MiB for the follower phase
# (about a minute). Default: 3 repetitions of 500,000 x 1 KiB per produce case and 1 GiB for the
# follower phase (a few minutes; about 17 GB written, scaled down if the disk has less than twice
# that free). --messages: messages per produce case instead. --phases: a comma-separated subset
# of propagation,produce,follower.
# Needs Debian's etcd (package etcd-server). Every process it starts (etcd, four brokers) it stops
# by PID at the end, also on failure or Ctrl-C.
# Results go to build-bench/cluster-results/<time>/ (summary.md, results.jsonl, logs/).
#
# On a machine shared with other builds, serialise the whole run with them, e.g.
#   flock /tmp/sluice-build.lock bench/cluster.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${SLUICE_BENCH_BUILD_DIR:-$root/build-bench}"

args=()
out=""
work=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) args+=("$1") ;;
    --reps | --messages | --phases | --follower-bytes) args+=("$1" "$2"); shift ;;
    --out) out="$2"; shift ;;
    --work-dir) work="$2"; shift ;;
    -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

command -v etcd >/dev/null ||
  { echo "cluster.sh: etcd is missing (Debian: apt-get install etcd-server)" >&2; exit 2; }

# shellcheck source=bench/lib.sh
source "$root/bench/lib.sh"
bench_run cluster.sh cluster.py cluster-results sluice-cluster sluice sluice-load sluice-rawfetch sluice-clusterprobe -- "${args[@]}"

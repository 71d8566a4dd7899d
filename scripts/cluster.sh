#!/usr/bin/env bash
# Builds Sluice (Release) and runs a three-broker cluster on this machine, in the foreground:
#   one etcd on 127.0.0.1:23790 (peer port 23800), its data under ./data-cluster/etcd;
#   brokers 1, 2, 3 on 127.0.0.1:9092, 9093, 9094, their data under ./data-cluster/broker-N,
#   default.replication.factor=3; every log in ./data-cluster/*.log.
# Ctrl-C stops exactly what it started (brokers first, then etcd), by PID.
#
#   scripts/cluster.sh [broker args]   start; extra arguments go to every broker,
#                                      e.g. --override num.partitions=6
#   scripts/cluster.sh stop            stop a cluster this script started (from another shell)
#   scripts/cluster.sh restart N       restart broker N (1-3) of that cluster: a controlled
#                                      shutdown (SIGTERM), the same command again, then wait
#                                      until it is back in the ISR of every partition it has;
#                                      one broker after the other is a rolling restart
#
# Safe to run again: packages are installed only when missing, the build is incremental, and the
# data directories are reused. For a second cluster beside the first (or beside something else on
# these ports), in the environment: SLUICE_BIN=/path/to/sluice uses that binary instead of
# building; SLUICE_CLUSTER_DATA (./data-cluster), SLUICE_CLUSTER_ETCD_PORTS ("23790 23800": client, peer)
# and SLUICE_CLUSTER_BROKER_PORTS ("9092 9093 9094") move the data and the ports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
data=$(realpath -m "${SLUICE_CLUSTER_DATA:-$root/data-cluster}")
pid_file="$data/cluster.pids"
stopping="$data/cluster.stopping"
read -r etcd_client etcd_peer <<<"${SLUICE_CLUSTER_ETCD_PORTS:-23790 23800}"
read -r -a broker_ports <<<"${SLUICE_CLUSTER_BROKER_PORTS:-9092 9093 9094}"
if [ -z "${etcd_peer:-}" ] || [ ${#broker_ports[@]} -ne 3 ]; then
  echo "SLUICE_CLUSTER_ETCD_PORTS needs two ports, SLUICE_CLUSTER_BROKER_PORTS three" >&2
  exit 2
fi
bootstrap="127.0.0.1:${broker_ports[0]},127.0.0.1:${broker_ports[1]},127.0.0.1:${broker_ports[2]}"

# "role pid" lines from the pid file, only for processes that are still the ones this script
# started: the PID is alive and its command line names the data directory it was given.
live_processes() {
  [ -f "$pid_file" ] || return 0
  local role pid
  while read -r role pid; do
    if [ -z "$pid" ] || [ ! -r "/proc/$pid/cmdline" ]; then continue; fi
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$data/$role" && echo "$role $pid"
  done <"$pid_file"
  return 0
}

# SIGTERM to one process, then up to 20 s for it to go; SIGKILL if it does not.
stop_process() {
  local role=$1 pid=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || { echo "stopped $role (pid $pid)"; return 0; }
    sleep 0.1
  done
  echo "$role (pid $pid) did not stop in 20 s: SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
}

# Brokers first, while etcd still runs: each revokes its lease as it leaves, so a restart does
# not wait for the old registrations to expire. Then etcd.
stop_all() {
  touch "$stopping"
  local role pid
  while read -r role pid; do
    [ "$role" = etcd ] || stop_process "$role" "$pid"
  done < <(live_processes)
  while read -r role pid; do
    [ "$role" = etcd ] && stop_process "$role" "$pid"
  done < <(live_processes)
  rm -f "$pid_file" "$stopping"
}

if [ "${1:-}" = stop ]; then
  if [ -z "$(live_processes)" ]; then
    echo "no cluster started by scripts/cluster.sh is running"
    rm -f "$pid_file" "$stopping"
    exit 0
  fi
  stop_all
  exit 0
fi

# Whether kcat's Metadata from broker N's port shows N in the ISR of every partition that has a
# replica on it.
back_in_every_isr() {
  local n=$1 port=${broker_ports[$(($1 - 1))]} listing
  listing=$(kcat -b "127.0.0.1:$port" -L -m 5 2>/dev/null) || return 1
  grep -q '^ *3 brokers:' <<<"$listing" || return 1
  ! grep -E '^ +partition [0-9]+, leader' <<<"$listing" |
    awk -v n="$n" '{
      split($0, parts, "replicas: "); split(parts[2], r, ", isrs: ");
      replicas = "," r[1] ","; isrs = "," r[2] ",";
      gsub(/ /, "", replicas); gsub(/ /, "", isrs);
      if (index(replicas, "," n ",") && !index(isrs, "," n ",")) print
    }' | grep -q .
}

if [ "${1:-}" = restart ]; then
  n=${2:-}
  if [[ ! "$n" =~ ^[123]$ ]]; then
    echo "usage: scripts/cluster.sh restart 1|2|3" >&2
    exit 2
  fi
  pid=$(live_processes | awk -v role="broker-$n" '$1 == role { print $2 }')
  if [ -z "$pid" ]; then
    echo "broker $n of a cluster started by scripts/cluster.sh is not running" >&2
    exit 1
  fi
  mapfile -d '' command </proc/"$pid"/cmdline
  # The foreground script would take the broker's exit for a crash and stop everything.
  touch "$data/broker-$n.restarting"
  trap 'rm -f "$data/broker-$n.restarting"' EXIT
  echo "broker $n: controlled shutdown (its leaderships move to the other in-sync replicas)"
  stop_process "broker-$n" "$pid"
  setsid "${command[@]}" </dev/null >>"$data/broker-$n.log" 2>&1 &
  new_pid=$!
  sed -i "s/^broker-$n .*/broker-$n $new_pid/" "$pid_file"
  rm -f "$data/broker-$n.restarting"
  echo "broker $n: started again (pid $new_pid); waiting until it is back in every ISR"
  for _ in $(seq 240); do
    if back_in_every_isr "$n"; then
      echo "broker $n: back in the ISR of every partition it has"
      exit 0
    fi
    if ! kill -0 "$new_pid" 2>/dev/null; then
      echo "broker $n exited; the end of $data/broker-$n.log:" >&2
      tail -n 20 "$data/broker-$n.log" >&2
      exit 1
    fi
    sleep 0.5
  done
  echo "broker $n is not back in every ISR after 120 s; see $data/broker-$n.log" >&2
  exit 1
fi

if [ -n "$(live_processes)" ]; then
  echo "a cluster started by scripts/cluster.sh is already running:" >&2
  live_processes | sed 's/^/  /' >&2
  echo "stop it with: scripts/cluster.sh stop" >&2
  exit 1
fi
rm -f "$pid_file" "$stopping"

# What the broker builds with, then etcd and kcat (Debian packages, only those missing).
scripts/install-deps.sh cluster
etcd_bin=$(command -v etcd || echo /usr/bin/etcd)

if [ -n "${SLUICE_BIN:-}" ]; then
  sluice=$SLUICE_BIN
else
  # An existing build directory keeps its configuration (tests on or off); a new one gets the
  # broker only, as scripts/run.sh builds it.
  if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_BUILD_TESTS=OFF >/dev/null
  fi
  cmake --build build --target sluice
  sluice=$root/build/sluice
fi

# Refuse ports someone else holds, rather than start half a cluster.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$etcd_client" "$etcd_peer" "${broker_ports[@]}"; do
  if port_busy "$port"; then
    echo "127.0.0.1:$port is already in use: stop what listens there first" >&2
    exit 1
  fi
done

mkdir -p "$data/etcd"
: >"$pid_file"
trap 'echo; stop_all; exit 0' INT TERM
# A failure from here on stops whatever was started.
on_exit() {
  local status=$?
  if [ "$status" -ne 0 ]; then stop_all; fi
}
trap on_exit EXIT

# Each child runs in a session of its own (setsid): Ctrl-C reaches only this script, which stops
# the brokers before etcd.
setsid "$etcd_bin" --name sluice-cluster --data-dir "$data/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_client" \
  --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "sluice-cluster=http://127.0.0.1:$etcd_peer" \
  --initial-cluster-state new \
  </dev/null >"$data/etcd.log" 2>&1 &
echo "etcd $!" >>"$pid_file"
etcd_pid=$!

etcd_healthy() {
  local answer
  answer=$({
    exec 3<>"/dev/tcp/127.0.0.1/$etcd_client" &&
      printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
      timeout 2 cat <&3
  } 2>/dev/null) || return 1
  grep -q '"health":"true"' <<<"$answer"
}
for _ in $(seq 150); do
  etcd_healthy && break
  kill -0 "$etcd_pid" 2>/dev/null || break
  sleep 0.1
done
if ! etcd_healthy; then
  echo "etcd did not start; the end of $data/etcd.log:" >&2
  tail -n 20 "$data/etcd.log" >&2
  exit 1
fi

for n in 1 2 3; do
  port=${broker_ports[$((n - 1))]}
  mkdir -p "$data/broker-$n"
  setsid "$sluice" \
    --override "node.id=$n" \
    --override "listeners=PLAINTEXT://127.0.0.1:$port" \
    --override "log.dirs=$data/broker-$n" \
    --override "metadata.etcd.endpoints=http://127.0.0.1:$etcd_client" \
    --override "default.replication.factor=3" \
    "$@" </dev/null >"$data/broker-$n.log" 2>&1 &
  echo "broker-$n $!" >>"$pid_file"
done

# Up once each broker answers Metadata listing all three (kcat -L asks the bootstrap broker).
listed_by() { kcat -b "$1" -L -m 3 2>/dev/null | grep -q '^ *3 brokers:'; }
all_up() {
  for port in "${broker_ports[@]}"; do
    listed_by "127.0.0.1:$port" || return 1
  done
}
for _ in $(seq 60); do
  all_up && break
  while read -r role pid; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$role exited; the end of $data/$role.log:" >&2
      tail -n 20 "$data/$role.log" >&2
      exit 1
    fi
  done <"$pid_file"
  sleep 0.5
done
if ! all_up; then
  echo "the brokers did not all list three brokers within 30 s; see $data/broker-*.log" >&2
  exit 1
fi

cat <<EOF
Sluice cluster up: brokers 1, 2, 3 on ${bootstrap//,/, },
coordinated by etcd on 127.0.0.1:$etcd_client (data in $data, logs in $data/*.log).

Clients connect with bootstrap servers $bootstrap, for example:
  kcat -b $bootstrap -L
  printf 'k1:hello\n' | kcat -b $bootstrap -P -t greetings -K:
  kcat -b $bootstrap -C -t greetings -e

Ctrl-C (or scripts/cluster.sh stop from another shell) stops the cluster.
EOF

# Until Ctrl-C, a stop from another shell, or a process that exits on its own.
while sleep 1; do
  if [ -f "$stopping" ]; then
    # scripts/cluster.sh stop is at work: wait for it, then leave.
    while [ -f "$stopping" ]; do sleep 0.2; done
    trap - EXIT
    exit 0
  fi
  while read -r role pid; do
    # scripts/cluster.sh restart is at work on it.
    [ -f "$data/$role.restarting" ] && continue
    if ! kill -0 "$pid" 2>/dev/null; then
      # Restarted meanwhile: the pid file names the new process.
      grep -q "^$role $pid\$" "$pid_file" || continue
      echo "$role (pid $pid) exited; the end of $data/$role.log:" >&2
      tail -n 20 "$data/$role.log" >&2
      exit 1
    fi
  done <"$pid_file"
done

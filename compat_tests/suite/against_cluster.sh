#!/usr/bin/env bash
# The broker-neutral suite against a three-broker Sluice cluster (scripts/cluster.sh, with etcd),
# bootstrapped from all three, as a user checks a cluster; then the README's rolling restart
# (scripts/cluster.sh restart N for each broker) with a topic's records read back after it, and
# the README's reassignment with KafkaJS. What the cluster does not serve yet is
# listed, with the reason, in cluster-allowlist.txt; anything else that fails is a finding, and
# the run must leave no topic of its prefix behind.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${SLUICE_BIN:?SLUICE_BIN must point at the sluice binary}"
: "${SLUICE_COMPAT_SUITE:?SLUICE_COMPAT_SUITE must point at sluice-compat-suite}"
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-suite-cluster-XXXXXX")"
cluster_pid=""

# Five loopback ports nobody listens on now (etcd client and peer, three brokers), taken below
# the kernel's ephemeral range: a port inside it can be handed to any outgoing connection (a
# broker's to etcd, another test's client) between this check and the broker's bind, which then
# fails with "Address already in use".
read -r ephemeral_low _ </proc/sys/net/ipv4/ip_local_port_range
ports=()
while [[ ${#ports[@]} -lt 5 ]]; do
  p=$((10000 + RANDOM % (ephemeral_low - 10000)))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && [[ ! " ${ports[*]} " =~ \ $p\  ]]; then
    ports+=("$p")
  fi
done
export SLUICE_CLUSTER_DATA="$work/data"
export SLUICE_CLUSTER_ETCD_PORTS="${ports[0]} ${ports[1]}"
export SLUICE_CLUSTER_BROKER_PORTS="${ports[2]} ${ports[3]} ${ports[4]}"
bootstrap="127.0.0.1:${ports[2]},127.0.0.1:${ports[3]},127.0.0.1:${ports[4]}"

cleanup() {
  if [[ -n "$cluster_pid" ]]; then
    "$root/scripts/cluster.sh" stop >/dev/null 2>&1 || true
    wait "$cluster_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

"$root/scripts/cluster.sh" >"$work/cluster.out" 2>&1 &
cluster_pid=$!
for _ in $(seq 1 300); do
  grep -q "Sluice cluster up" "$work/cluster.out" && break
  kill -0 "$cluster_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "Sluice cluster up" "$work/cluster.out"; then
  cat "$work/cluster.out" >&2
  echo "FAIL: the cluster did not start" >&2
  exit 1
fi

prefix="ci-cluster-$$-"
set +e
"$root/scripts/compat.sh" --bootstrap "$bootstrap" --prefix "$prefix" \
  --allowlist "$here/cluster-allowlist.txt" >"$work/out" 2>"$work/err"
status=$?
set -e
cat "$work/out"
if [[ $status -ne 0 ]]; then
  tail -n 60 "$work/err" >&2
  for log in "$work"/data/broker-*.log; do
    echo "---- $log" >&2
    grep -E "WARN|ERROR" "$log" | tail -n 20 >&2 || true
  done
  echo "FAIL: the suite against the cluster exited with $status" >&2
  exit 1
fi
summary="$(tail -n 1 "$work/out")"
[[ "$summary" =~ ^([0-9]+)\ passed,\ 0\ failed ]] && (( BASH_REMATCH[1] >= 20 )) ||
  { echo "FAIL: summary line: $summary" >&2; exit 1; }
left="$(timeout 20 kcat -b "$bootstrap" -L 2>/dev/null | grep -c "topic \"$prefix" || true)"
[[ "$left" -eq 0 ]] || { echo "FAIL: $left topics of the run were left behind" >&2; exit 1; }

# The rolling restart the README shows: each broker in turn, a record written before still read
# after, and every broker back in every ISR (scripts/cluster.sh restart waits for that).
topic="${prefix}rolling"
printf 'before\n' | timeout 30 kcat -b "$bootstrap" -P -t "$topic" -X acks=all 2>/dev/null ||
  { echo "FAIL: could not write to $topic" >&2; exit 1; }
for n in 1 2 3; do
  "$root/scripts/cluster.sh" restart "$n" >>"$work/restart.out" 2>&1 ||
    { cat "$work/restart.out" >&2; echo "FAIL: scripts/cluster.sh restart $n" >&2; exit 1; }
done
read_back="$(timeout 30 kcat -b "$bootstrap" -C -t "$topic" -o beginning -e -q 2>/dev/null || true)"
[[ "$read_back" == "before" ]] ||
  { echo "FAIL: after the rolling restart $topic holds: $read_back" >&2; exit 1; }
echo "rolling restart: PASS"

# The reassignment the README shows with KafkaJS's admin client: a topic on brokers [1,2] moves
# to [2,3] and keeps its records.
set +e
app="$("$root/scripts/node-clients.sh" 2>"$work/npm.log")"
status=$?
set -e
if [[ $status -eq 77 ]]; then
  echo "kafkajs reassignment: SKIP ($(tail -n 1 "$work/npm.log"))"
elif [[ $status -ne 0 ]]; then
  cat "$work/npm.log" >&2
  echo "FAIL: npm ci of compat_tests/node failed" >&2
  exit 1
else
  cp "$root/compat_tests/node/kafkajs_reassign.mjs" "$app/"
  timeout 90 node "$app/kafkajs_reassign.mjs" "$bootstrap" "${prefix}moved" ||
    { echo "FAIL: the KafkaJS reassignment (compat_tests/node/kafkajs_reassign.mjs)" >&2; exit 1; }
  moved="$(timeout 30 kcat -b "$bootstrap" -C -t "${prefix}moved" -o beginning -e -q 2>/dev/null | wc -l)"
  [[ "$moved" -eq 200 ]] || { echo "FAIL: after the move ${prefix}moved holds $moved records" >&2; exit 1; }
  echo "kafkajs reassignment: PASS"
fi

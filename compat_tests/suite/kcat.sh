#!/usr/bin/env bash
# The kcat runner of the broker-neutral suite (README.md has the contract). kcat is librdkafka's
# command-line client, Debian's `kcat`; these scenarios check what its users do with it.
#
#   kcat.sh --bootstrap LIST --prefix P --api-versions FILE [--only REGEX] [--timeout-ms N]
#   kcat.sh --list
#
# Topics are created with `sluice-compat-suite --create-topic` ($SLUICE_COMPAT_SUITE): kcat has no
# admin commands, and the suite never relies on auto-creation.
set -uo pipefail

KCAT="${KCAT:-kcat}"
scenarios=(metadata.list produce.keys_headers consume.offsets compression.gzip compression.snappy
           compression.lz4 compression.zstd groups.balanced)

bootstrap="" prefix="" apis="" only="" timeout_ms=30000
while [ $# -gt 0 ]; do
  case "$1" in
    --bootstrap) bootstrap="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --api-versions) apis="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --timeout-ms) timeout_ms="$2"; shift 2 ;;
    --list) printf 'kcat/%s\n' "${scenarios[@]}"; exit 0 ;;
    *) echo "kcat.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$bootstrap" ] && [ -n "$prefix" ] && [ -r "$apis" ] || {
  echo "kcat.sh: --bootstrap, --prefix and --api-versions are required" >&2; exit 2; }
: "${SLUICE_COMPAT_SUITE:?kcat.sh needs SLUICE_COMPAT_SUITE (scripts/compat.sh sets it)}"
secs=$(( (timeout_ms + 999) / 1000 ))
work="$(mktemp -d "${TMPDIR:-/tmp}/sluice-compat-kcat-XXXXXX")"
trap 'rm -rf "$work"' EXIT

# ---- helpers: a scenario is a function that returns non-zero after setting $why -----------------

why=""
fail() { why="$*"; return 1; }
skip() { why="$*"; return 77; }

# max_version KEY: the highest version the broker advertises, or -1.
max_version() { awk -v k="$1" '$1 == k { print $3; found = 1 } END { if (!found) print -1 }' "$apis"; }
require() {  # require KEY MIN NAME
  local max; max="$(max_version "$1")"
  if [ "$max" -lt 0 ]; then skip "the broker does not advertise $3 (key $1)"; return; fi
  if [ "$max" -lt "$2" ]; then skip "the broker advertises $3 only up to v$max, this needs v$2"; return; fi
}

topic_name() { local n="${prefix}kcat-$1"; n="${n//./-}"; echo "${n//_/-}"; }

# create_topic NAME PARTITIONS: sets $partitions to the count the topic has (a broker that only
# auto-creates may give more than asked; the runner skips when it gives fewer).
partitions=0
create_topic() {
  local rc
  partitions="$("$SLUICE_COMPAT_SUITE" --bootstrap "$bootstrap" --prefix "$prefix" \
    --api-versions "$apis" --timeout-ms "$timeout_ms" --create-topic "$1:$2" 2>"$work/create.log")"
  rc=$?
  if [ "$rc" -eq 77 ]; then skip "$(sed -n 's/.*skipped: //p' "$work/create.log")"; return; fi
  [ "$rc" -eq 0 ] || fail "creating $1: $(tail -n 1 "$work/create.log")"
}

# kcat with the scenario's deadline; -q drops its informational lines.
kc() { timeout "$secs" "$KCAT" -q -b "$bootstrap" "$@"; }

# ---- scenarios --------------------------------------------------------------------------------

# `kcat -L` lists a topic with its partitions and their leaders (Metadata).
metadata.list() {
  local t; t="$(topic_name metadata.list)"
  create_topic "$t" 3 || return
  kc -L -t "$t" >"$work/md" 2>&1 || fail "kcat -L failed: $(tail -n 1 "$work/md")" || return
  grep -q "topic \"$t\" with $partitions partitions" "$work/md" ||
    fail "kcat -L does not show $partitions partitions" || return
  [ "$(grep -c 'partition [0-9]*, leader [0-9]' "$work/md")" -eq "$partitions" ] ||
    fail "kcat -L does not show a leader for each partition"
}

# Keys (-K) and headers (-H) round trip through produce and consume; record format v2 (KIP-82).
produce.keys_headers() {
  require 0 3 Produce || return
  local t; t="$(topic_name produce.keys_headers)"
  create_topic "$t" 1 || return
  for i in $(seq 1 20); do echo "key-$i|value $i"; done >"$work/in"
  kc -P -t "$t" -p 0 -K '|' -H "app=compat" -H "run=$prefix" <"$work/in" 2>"$work/err" ||
    fail "kcat -P failed: $(tail -n 1 "$work/err")" || return
  kc -C -t "$t" -p 0 -o beginning -c 20 -e -f '%k|%s|%h\n' >"$work/out" 2>"$work/err" ||
    fail "kcat -C failed: $(tail -n 1 "$work/err")" || return
  local expected; expected="$(for i in $(seq 1 20); do echo "key-$i|value $i|app=compat,run=$prefix"; done)"
  [ "$(cat "$work/out")" = "$expected" ] ||
    fail "read back differs from what was sent (first line read: $(head -n 1 "$work/out"))"
}

# Consuming from an absolute offset (-o N) and relative to the end (-o -N) maps to ListOffsets
# and Fetch positions (librdkafka's offset logic; Kafka's ListOffsets latest = high watermark).
consume.offsets() {
  require 2 1 ListOffsets || return
  local t; t="$(topic_name consume.offsets)"
  create_topic "$t" 1 || return
  seq 0 9 | kc -P -t "$t" -p 0 2>"$work/err" || fail "kcat -P failed: $(tail -n 1 "$work/err")" || return
  [ "$(kc -C -t "$t" -p 0 -o 6 -e -f '%o:%s\n' 2>/dev/null | tr '\n' ' ')" = "6:6 7:7 8:8 9:9 " ] ||
    fail "-o 6 did not read offsets 6-9" || return
  [ "$(kc -C -t "$t" -p 0 -o -3 -e -f '%o\n' 2>/dev/null | tr '\n' ' ')" = "7 8 9 " ] ||
    fail "-o -3 did not read the last three offsets"
}

# Each codec (-z), produced by kcat and read back (record batch attributes; zstd needs Produce
# v7 and Fetch v10, KIP-110).
compressed() {
  local codec="$1"
  if [ "$codec" = zstd ]; then require 0 7 Produce || return; require 1 10 Fetch || return
  else require 0 3 Produce || return; fi
  local t; t="$(topic_name "compression.$codec")"
  create_topic "$t" 1 || return
  for i in $(seq 1 300); do echo "compressible line $i $(printf 'x%.0s' {1..100})"; done >"$work/in"
  kc -P -t "$t" -p 0 -z "$codec" -X linger.ms=20 <"$work/in" 2>"$work/err" ||
    fail "kcat -P -z $codec failed: $(tail -n 1 "$work/err")" || return
  kc -C -t "$t" -p 0 -o beginning -c 300 -e >"$work/out" 2>"$work/err" ||
    fail "kcat -C failed: $(tail -n 1 "$work/err")" || return
  cmp -s "$work/in" "$work/out" || fail "the $codec records read back differ from those sent"
}
compression.gzip() { compressed gzip; }
compression.snappy() { compressed snappy; }
compression.lz4() { compressed lz4; }
compression.zstd() { compressed zstd; }

# The balanced consumer (-G) joins a group, is assigned every partition and reads each record
# once (the consumer group protocol; librdkafka's high-level consumer).
groups.balanced() {
  require 11 0 JoinGroup || return
  require 10 0 FindCoordinator || return
  local t; t="$(topic_name groups.balanced)"
  create_topic "$t" 2 || return
  for i in $(seq 1 10); do echo "$i"; done | kc -P -t "$t" -p 0 2>/dev/null &&
    for i in $(seq 11 20); do echo "$i"; done | kc -P -t "$t" -p 1 2>/dev/null ||
    fail "kcat -P failed" || return
  # -e: exit once every assigned partition has reached its end.
  kc -G "$(topic_name groups.balanced)" -X auto.offset.reset=earliest -e -f '%s\n' "$t" \
    >"$work/out" 2>"$work/err" || fail "kcat -G failed: $(tail -n 1 "$work/err")" || return
  [ "$(sort -n "$work/out" | tr '\n' ' ')" = "$(seq 1 20 | tr '\n' ' ')" ] ||
    fail "the group member read $(wc -l <"$work/out") records, not each of 20 once"
}

# ---- run --------------------------------------------------------------------------------------

failed=0
for s in "${scenarios[@]}"; do
  [ -n "$only" ] && ! [[ "kcat/$s" =~ $only ]] && continue
  why=""
  "$s"
  case $? in
    0) echo "PASS kcat/$s" ;;
    77) echo "SKIP kcat/$s: $why" ;;
    *) echo "FAIL kcat/$s: ${why:-failed}"; failed=1 ;;
  esac
done
exit "$failed"

#!/usr/bin/env bash
# kcat produce (keys via -K, headers via -H) and consume (-C -e, formatted output, -o -N).
# Client behaviour: kcat -C without -G is librdkafka's legacy consumer (kcat.c:1034): ListOffsets
# for "beginning" / relative offsets, then Fetch, and with -e it exits when every partition
# reports end-of-partition, i.e. when a fetch shows the offset has reached the high watermark.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/kcat_lib.sh"

start_broker

topic=kround
input="$WORK/input.txt"
expected="$WORK/expected.txt"
: >"$input"
: >"$expected"
for i in $(seq 0 499); do
  printf 'key-%d:value %d with spaces and = signs, %s\n' "$i" "$i" "$(printf 'x%.0s' $(seq 1 $((i % 40))))" >>"$input"
  printf 'key-%d value %d with spaces and = signs, %s %d\n' "$i" "$i" "$(printf 'x%.0s' $(seq 1 $((i % 40))))" "$i" >>"$expected"
done

kc -P -t "$topic" -p 0 -K: -H "h1=v1" -H "h2=second header" <"$input" || fail "kcat -P failed"

actual="$(kc -C -q -t "$topic" -p 0 -o beginning -e -f '%k %s %o\n')" || fail "kcat -C failed"
expect_eq "consumed messages" "$(cat "$expected")" "$actual"

# Headers, in order, on every message.
headers="$(kc -C -q -t "$topic" -p 0 -o beginning -e -f '%h\n' | sort | uniq -c | sed 's/^ *//')"
expect_eq "headers" "500 h1=v1,h2=second header" "$headers"

# -o -1: only the last message; -o -3: the last three.
last="$(kc -C -q -t "$topic" -p 0 -o -1 -e -f '%k %s %o\n')" || fail "kcat -o -1 failed"
expect_eq "kcat -o -1" "$(tail -n 1 "$expected")" "$last"
last3="$(kc -C -q -t "$topic" -p 0 -o -3 -e -f '%k %s %o\n')" || fail "kcat -o -3 failed"
expect_eq "kcat -o -3" "$(tail -n 3 "$expected")" "$last3"

# An absolute offset in the middle.
mid="$(kc -C -q -t "$topic" -p 0 -o 250 -c 2 -f '%k %o\n')" || fail "kcat -o 250 failed"
expect_eq "kcat -o 250 -c 2" "$(printf 'key-250 250\nkey-251 251')" "$mid"

# A second produce appends at offset 500, and the data survives a clean restart.
printf 'late:after\n' | kc -P -t "$topic" -p 0 -K: || fail "second kcat -P failed"
stop_broker
start_broker  # same data dir; a new port is fine: kcat bootstraps from the new address
tail_line="$(kc -C -q -t "$topic" -p 0 -o -2 -e -f '%k %s %o\n')" || fail "kcat after restart failed"
expect_eq "after restart" "$(tail -n 1 "$expected")
late after 500" "$tail_line"

stop_broker
echo PASS

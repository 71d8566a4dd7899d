#!/usr/bin/env bash
# kcat -L: the broker lists itself, an auto-created topic with its partitions, and the internal
# __consumer_offsets, as `kcat -L` shows it on Kafka.
# Client behaviour: kcat -L sends ApiVersions v3 then Metadata for all topics (librdkafka 2.0.2,
# Metadata v4) and prints what the broker returned; -J prints it as JSON.
# shellcheck source=compat_tests/kcat_lib.sh
source "$(dirname "$0")/kcat_lib.sh"

start_broker node.id=3 num.partitions=2

# Producing creates the topic (librdkafka producers ask for auto-creation).
printf 'hello\n' | kc -P -t kmeta || fail "kcat -P failed"

json="$(kc -L -J)" || fail "kcat -L failed"
python3 - "$json" "$BROKER_PORT" <<'EOF' || fail "metadata does not match"
import json, sys
md = json.loads(sys.argv[1])
port = int(sys.argv[2])
brokers = md["brokers"]
assert len(brokers) == 1, brokers
assert brokers[0]["id"] == 3, brokers
assert brokers[0]["name"] == f"127.0.0.1:{port}", brokers
topics = {t["topic"]: t for t in md["topics"]}
assert "kmeta" in topics, topics.keys()
t = topics["kmeta"]
assert "error" not in t, t
parts = sorted(t["partitions"], key=lambda p: p["partition"])
assert [p["partition"] for p in parts] == [0, 1], parts
for p in parts:
    assert p["leader"] == 3, p
    assert [r["id"] for r in p["replicas"]] == [3], p
    assert [r["id"] for r in p["isrs"]] == [3], p
assert "__consumer_offsets" in topics, topics.keys()
assert "error" not in topics["__consumer_offsets"], topics["__consumer_offsets"]
print("metadata ok")
EOF

# The plain-text listing shows the same broker line.
kc -L -t kmeta | grep -q "broker 3 at 127.0.0.1:$BROKER_PORT" || fail "kcat -L text output lacks the broker"

stop_broker
echo PASS

// 10,000 messages through librdkafka, byte-exact, with per-partition order and contiguous offsets.
//
// Client behaviours relied on:
// - librdkafka pipelines Produce requests on one connection (max.in.flight defaults to 1000000)
//   and matches responses to the oldest in-flight request (README 1.3, 6.5), so answers must come
//   back in request order; with explicit partitions and no retries, delivery-report offsets of one
//   partition must then increase by exactly one per message in produce order.
// - A null key/value is sent as length -1 and an empty one as length 0 (rd_kafka_msg_new00 keeps
//   a non-NULL pointer for empty payloads); the consumer hands back NULL vs non-NULL likewise, so
//   the broker must keep that distinction. Headers keep order, duplicates and null values.
// - A record batch larger than the consumer's per-partition fetch size is still returned whole
//   (Fetch v3+ "at least one batch", README 6.8); librdkafka relies on it for the 1 MiB value.
// - The legacy consumer (rd_kafka_consume_start_queue) uses ListOffsets for BEGINNING and Fetch
//   v11 (2.0.2's max) with read_committed isolation (README 6.9).

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

struct expected_message {
  int32_t partition;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
};

std::string binary_value(size_t i, size_t len) {
  std::mt19937 rng(static_cast<uint32_t>(i));
  std::string s = "value-" + std::to_string(i) + "-";
  while (s.size() < len)
    s.push_back(static_cast<char>(rng() & 0xff));  // includes NULs
  return s;
}

expected_message make_message(size_t i, int32_t partitions) {
  expected_message m;
  m.partition = static_cast<int32_t>(i % partitions);
  if (i % 7 == 0) {
    m.key = std::nullopt;
  } else if (i % 11 == 0) {
    m.key = std::string();
  } else {
    m.key = "key-" + std::to_string(i);
  }
  if (i == 5000) {
    m.value = std::string(1 << 20, '\0');
    for (size_t k = 0; k < m.value->size(); ++k)
      (*m.value)[k] = static_cast<char>((k * 31 + 7) & 0xff);
  } else if (i % 13 == 0) {
    m.value = std::nullopt;
  } else if (i % 17 == 0) {
    m.value = std::string();
  } else {
    m.value = binary_value(i, i % 300);
  }
  if (i % 5 != 0) m.headers.push_back({"h1", "hv-" + std::to_string(i)});
  if (i % 10 == 1) m.headers.push_back({"null-header", std::nullopt});
  if (i % 4 == 2) {
    m.headers.push_back({"dup", "first"});
    m.headers.push_back({"dup", ""});
  }
  return m;
}

std::string describe(const std::optional<std::string>& s) {
  if (!s) return "null";
  if (s->size() > 40) return std::string("<") + std::to_string(s->size()) + " bytes>";
  return "\"" + *s + "\"";
}

TEST(RoundTrip, TenThousandMessagesByteExactInOrder) {
  constexpr size_t kMessages = 10000;
  constexpr int32_t kPartitions = 3;
  const std::string topic = "roundtrip";
  broker b(config_map{{"num.partitions", std::to_string(kPartitions)},
                      {"message.max.bytes", "2097152"}});

  std::vector<expected_message> expected;
  expected.reserve(kMessages);
  for (size_t i = 0; i < kMessages; ++i)
    expected.push_back(make_message(i, kPartitions));

  producer p(b.bootstrap(), {{"message.max.bytes", "2097152"}, {"acks", "all"}});
  for (size_t i = 0; i < kMessages; ++i) {
    const auto& m = expected[i];
    ASSERT_EQ(p.produce(topic, m.partition, m.key, m.value, m.headers), i);
  }
  ASSERT_TRUE(p.flush(90s)) << "not every message got a delivery report";

  // Every message acknowledged; per partition, offsets follow produce order with no gaps.
  auto deliveries = p.deliveries();
  std::map<int32_t, int64_t> next_offset;
  std::map<std::pair<int32_t, int64_t>, size_t> by_offset;
  for (size_t i = 0; i < kMessages; ++i) {
    const auto& d = deliveries[i];
    ASSERT_TRUE(d.done) << i;
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR)
        << "message " << i << ": " << rd_kafka_err2str(d.err);
    ASSERT_EQ(d.partition, expected[i].partition);
    ASSERT_EQ(d.offset, next_offset[d.partition]++)
        << "message " << i << " on partition " << d.partition << " got a non-contiguous offset";
    by_offset[{d.partition, d.offset}] = i;
  }

  simple_consumer c(b.bootstrap(), topic,
                    {{"fetch.message.max.bytes", "65536"}});  // smaller than the 1 MiB batch
  for (int32_t part = 0; part < kPartitions; ++part)
    c.start(part, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> got = c.consume(kMessages, 90s);
  EXPECT_TRUE(c.errors().empty()) << c.errors().front();
  ASSERT_EQ(got.size(), kMessages) << "consumed fewer messages than were acknowledged";

  std::map<int32_t, int64_t> expect_next;
  for (const message& m : got) {
    ASSERT_EQ(m.topic, topic);
    ASSERT_EQ(m.offset, expect_next[m.partition]++)
        << "partition " << m.partition << " delivered out of order or with a gap";
    auto it = by_offset.find({m.partition, m.offset});
    ASSERT_NE(it, by_offset.end());
    const expected_message& e = expected[it->second];
    ASSERT_EQ(m.key, e.key) << "message " << it->second << ": key " << describe(m.key)
                            << " != " << describe(e.key);
    ASSERT_EQ(m.value, e.value) << "message " << it->second << ": value " << describe(m.value)
                                << " != " << describe(e.value);
    ASSERT_EQ(m.headers, e.headers) << "message " << it->second << ": headers differ";
  }
  for (int32_t part = 0; part < kPartitions; ++part) {
    EXPECT_EQ(expect_next[part], next_offset[part]) << "partition " << part;
    auto [lo, hi] = watermarks(c.get(), topic, part);
    EXPECT_EQ(lo, 0);
    EXPECT_EQ(hi, next_offset[part]);
  }
}

TEST(RoundTrip, OversizedMessageIsRejectedWithMessageTooLarge) {
  // The broker enforces message.max.bytes per batch with MESSAGE_TOO_LARGE (10), which librdkafka
  // reports per message. The client's own limit is raised so the request does reach the broker.
  broker b(config_map{{"message.max.bytes", "100000"}});
  producer p(b.bootstrap(), {{"message.max.bytes", "2097152"}, {"retries", "0"}});
  size_t small = p.produce("too-large", 0, "k", std::string(1000, 'a'));
  ASSERT_TRUE(p.flush(30s));
  size_t big = p.produce("too-large", 0, "k", std::string(200000, 'b'));
  ASSERT_TRUE(p.flush(30s));
  EXPECT_EQ(p.delivery_of(small).err, RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(p.delivery_of(big).err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
      << rd_kafka_err2str(p.delivery_of(big).err);
  auto [lo, hi] = watermarks(p.get(), "too-large", 0);
  EXPECT_EQ(hi, 1) << "the rejected batch must not be stored";
}

}  // namespace
}  // namespace sluice::compat

// DescribeTopicPartitions (key 75, v0, KIP-966) over raw protocol: what current admin clients
// (Java 3.8+) send for describeTopics. librdkafka 2.0.2 never sends it, so the request and the
// response are encoded here by hand from DescribeTopicPartitionsRequest/Response.json, and the
// response must be consumed exactly.

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"

namespace sluice::compat {
namespace {

struct cursor {
  std::string topic;
  int32_t partition = 0;
};

struct described_partition {
  int16_t error_code = 0;
  int32_t index = -1;
  int32_t leader = -1;
  int32_t leader_epoch = -1;
  std::vector<int32_t> replicas;
  std::vector<int32_t> isr;
};

struct described_topic {
  int16_t error_code = 0;
  std::string name;
  bool is_internal = false;
  std::vector<described_partition> partitions;
  int32_t authorized_operations = 0;
};

struct page {
  std::vector<described_topic> topics;
  std::optional<cursor> next;
};

bytes describe_request(int32_t correlation, const std::vector<std::string>& topics, int32_t limit,
                       const std::optional<cursor>& from) {
  byte_writer body;
  body.array_length(static_cast<int32_t>(topics.size()), true);
  for (const auto& t : topics) {
    body.string(t, true);
    body.empty_tags();
  }
  body.i32(limit);
  if (from) {
    body.i8(1);
    body.string(from->topic, true);
    body.i32(from->partition);
    body.empty_tags();
  } else {
    body.i8(-1);
  }
  body.empty_tags();
  return frame_request(75, 0, correlation, true, body.data());
}

std::vector<int32_t> int32s(byte_reader& r) {
  std::vector<int32_t> out;
  int32_t n = r.array_length(true);
  for (int32_t i = 0; i < n; ++i)
    out.push_back(r.i32());
  return out;
}

page parse_page(std::span<const uint8_t> body) {
  byte_reader r(body);
  page out;
  EXPECT_EQ(r.i32(), 0);  // throttle_time_ms
  int32_t topics = r.array_length(true);
  for (int32_t t = 0; t < topics; ++t) {
    described_topic dt;
    dt.error_code = r.i16();
    dt.name = r.string(true).value_or("<null>");
    r.take(16);  // topic_id
    dt.is_internal = r.i8() != 0;
    int32_t partitions = r.array_length(true);
    for (int32_t p = 0; p < partitions; ++p) {
      described_partition dp;
      dp.error_code = r.i16();
      dp.index = r.i32();
      dp.leader = r.i32();
      dp.leader_epoch = r.i32();
      dp.replicas = int32s(r);
      dp.isr = int32s(r);
      EXPECT_EQ(r.array_length(true), 0) << "eligible leader replicas";
      EXPECT_EQ(r.array_length(true), 0) << "last known ELR";
      EXPECT_TRUE(int32s(r).empty()) << "offline replicas";
      r.skip_tags();
      dt.partitions.push_back(std::move(dp));
    }
    dt.authorized_operations = r.i32();
    r.skip_tags();
    out.topics.push_back(std::move(dt));
  }
  if (r.i8() >= 0) {
    cursor c;
    c.topic = r.string(true).value_or("");
    c.partition = r.i32();
    r.skip_tags();
    out.next = c;
  }
  r.skip_tags();
  EXPECT_EQ(r.remaining(), 0u) << "trailing bytes in the response";
  return out;
}

TEST(DescribeTopicPartitions, PagesThroughEveryTopicInNameOrder) {
  broker b(config_map{{"node.id", "4"}, {"num.partitions", "3"}});
  raw_connection conn(b.host(), b.port());
  int32_t id = 1;
  for (const char* topic : {"dtp-b", "dtp-a"}) {
    ASSERT_TRUE(wait_until([&] {
      auto md = parse_metadata_v12(
          split_response(round_trip(conn, metadata_v12_request(id++, {topic}, true)), true).body);
      return md.topics.size() == 1 && md.topics[0].error_code == 0;
    })) << topic;
  }
  auto describe = [&](const std::vector<std::string>& topics, int32_t limit,
                      const std::optional<cursor>& from) {
    int32_t cid = id++;
    bytes payload = round_trip(conn, describe_request(cid, topics, limit, from));
    response r = split_response(payload, true);  // r.body points into payload
    EXPECT_EQ(r.correlation_id, cid);
    return parse_page(r.body);
  };

  // Every topic, the internal one included, 3 partitions a page.
  page first = describe({}, 3, std::nullopt);
  ASSERT_EQ(first.topics.size(), 2u);
  EXPECT_EQ(first.topics[0].name, "__consumer_offsets");
  EXPECT_TRUE(first.topics[0].is_internal);
  EXPECT_EQ(first.topics[1].name, "dtp-a");
  ASSERT_EQ(first.topics[1].partitions.size(), 2u);
  for (const auto& p : first.topics[1].partitions) {
    EXPECT_EQ(p.error_code, 0);
    EXPECT_EQ(p.leader, 4);
    EXPECT_EQ(p.leader_epoch, 0);
    EXPECT_EQ(p.replicas, std::vector<int32_t>{4});
    EXPECT_EQ(p.isr, std::vector<int32_t>{4});
  }
  EXPECT_EQ(first.topics[1].authorized_operations, 3576) << "every topic operation";
  ASSERT_TRUE(first.next.has_value());
  EXPECT_EQ(first.next->topic, "dtp-a");
  EXPECT_EQ(first.next->partition, 2);

  page second = describe({}, 3, first.next);
  ASSERT_EQ(second.topics.size(), 2u);
  EXPECT_EQ(second.topics[0].name, "dtp-a");
  ASSERT_EQ(second.topics[0].partitions.size(), 1u);
  EXPECT_EQ(second.topics[0].partitions[0].index, 2);
  EXPECT_EQ(second.topics[1].name, "dtp-b");
  ASSERT_EQ(second.topics[1].partitions.size(), 2u);
  ASSERT_TRUE(second.next.has_value());
  EXPECT_EQ(second.next->topic, "dtp-b");

  // Named topics: an unknown one is UNKNOWN_TOPIC_OR_PARTITION and nothing is created.
  page named = describe({"dtp-b", "nope"}, 2000, std::nullopt);
  ASSERT_EQ(named.topics.size(), 2u);
  EXPECT_EQ(named.topics[0].partitions.size(), 3u);
  EXPECT_EQ(named.topics[1].name, "nope");
  EXPECT_EQ(named.topics[1].error_code, 3);
  EXPECT_FALSE(named.next.has_value());
  EXPECT_EQ(describe({"nope"}, 2000, std::nullopt).topics[0].error_code, 3);
}

}  // namespace
}  // namespace sluice::compat

// ListOffsets: earliest, latest and by timestamp.
//
// Client behaviours relied on:
// - rd_kafka_query_watermark_offsets sends ListOffsets for -2 (earliest) and -1 (latest) and
//   returns (low, high); rd_kafka_offsets_for_times sends the given timestamps (ListOffsets v1+,
//   v2 in 2.0.2) and returns, per partition, the offset the broker answered, with -1
//   (RD_KAFKA_OFFSET_END) when no record has a timestamp >= the target.
// - Kafka's answer for a timestamp is the *record* offset, not the batch's: the first record,
//   in offset order, whose timestamp >= target (LogSegment.findOffsetByTimestamp scans the
//   records of the first batch whose max timestamp >= target). Producers set record timestamps
//   with RD_KAFKA_V_TIMESTAMP (CreateTime).
// - ListOffsets v7 with timestamp -3 (MAX_TIMESTAMP, KIP-734) returns the offset and timestamp
//   of the record with the largest timestamp; the Java admin client uses it. Sent raw here since
//   librdkafka 2.0.2 stops at v2.

#include <gtest/gtest.h>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

constexpr int64_t T = 1700000000000;  // ms

// Timestamps of the 30 messages: T + i s, except offset 20 which is the maximum.
int64_t timestamp_of(int i) {
  return i == 20 ? T + 100000 : T + i * 1000;
}

int64_t offset_for_time(rd_kafka_t* rk, const std::string& topic, int64_t ts) {
  rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic.c_str(), 0)->offset = ts;
  rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, 10000);
  int64_t off = l->elems[0].offset;
  rd_kafka_resp_err_t perr = l->elems[0].err;
  rd_kafka_topic_partition_list_destroy(l);
  EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
  EXPECT_EQ(perr, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(perr);
  return off;
}

TEST(ListOffsets, EarliestLatestAndByTimestamp) {
  const std::string topic = "times";
  broker b;
  producer p(b.bootstrap());

  // Three separately flushed groups: three batches of ten records each.
  for (int i = 0; i < 30; ++i) {
    p.produce(topic, 0, std::string("k") + std::to_string(i), std::string("v") + std::to_string(i),
              {}, timestamp_of(i));
    if (i % 10 == 9) {
      ASSERT_TRUE(p.flush(30s));
    }
  }
  auto ds = p.deliveries();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(ds[i].err, RD_KAFKA_RESP_ERR_NO_ERROR) << i;
    ASSERT_EQ(ds[i].offset, i);
  }

  auto [lo, hi] = watermarks(p.get(), topic, 0);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 30);

  EXPECT_EQ(offset_for_time(p.get(), topic, -2), 0) << "earliest";
  EXPECT_EQ(offset_for_time(p.get(), topic, -1), 30) << "latest";

  EXPECT_EQ(offset_for_time(p.get(), topic, T - 5000), 0) << "before the first record";
  EXPECT_EQ(offset_for_time(p.get(), topic, T), 0) << "exactly the first record";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 1), 1) << "inside the first batch";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 4500), 5) << "inside the first batch";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 10000), 10) << "first record of batch 2";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 15000), 15) << "inside batch 2";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 19000), 19) << "last record of batch 2";
  // Offsets 20..29: timestamps T+100s, then T+21s..T+29s. The first record with ts >= T+19.5s is
  // offset 20 (T+100s), even though offset 21 has a closer timestamp.
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 19500), 20) << "first record with ts >= target";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 25000), 20) << "first record with ts >= target";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 100000), 20) << "the max timestamp itself";
  EXPECT_EQ(offset_for_time(p.get(), topic, T + 100001), -1) << "after every record";

  // Consumers see the producer's timestamps (CreateTime).
  simple_consumer c(b.bootstrap(), topic);
  c.start(0, RD_KAFKA_OFFSET_BEGINNING);
  auto got = c.consume(30, 20s);
  ASSERT_EQ(got.size(), 30u);
  for (int i = 0; i < 30; ++i)
    EXPECT_EQ(got[i].timestamp, timestamp_of(i)) << i;

  // ListOffsets v7 (flexible) through a raw socket, including MAX_TIMESTAMP (-3).
  raw_connection conn(b.host(), b.port());
  struct probe {
    int64_t ts;
    int64_t offset;
    int64_t timestamp;
  };
  const probe probes[] = {{-2, 0, -1}, {-1, 30, -1}, {-3, 20, T + 100000}, {T + 4500, 5, T + 5000}};
  int32_t corr = 100;
  for (const probe& pr : probes) {
    bytes resp = round_trip(conn, list_offsets_v7_request(corr, topic, 0, pr.ts));
    response r = split_response(resp, /*flexible=*/true);
    EXPECT_EQ(r.correlation_id, corr);
    auto parts = parse_list_offsets_v7(r.body);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].topic, topic);
    EXPECT_EQ(parts[0].partition, 0);
    EXPECT_EQ(parts[0].error_code, 0) << "timestamp " << pr.ts;
    EXPECT_EQ(parts[0].offset, pr.offset) << "timestamp " << pr.ts;
    EXPECT_EQ(parts[0].timestamp, pr.timestamp) << "timestamp " << pr.ts;
    ++corr;
  }
}

TEST(ListOffsets, EmptyPartitionReportsZeroZero) {
  // A topic created by a Metadata request (allow_auto_topic_creation, as librdkafka producers
  // send it) has an empty partition 0 whose watermarks are (0, 0). Kafka may answer the creating
  // request with LEADER_NOT_AVAILABLE, so only the later state is asserted.
  broker b;
  raw_connection conn(b.host(), b.port());
  bytes md = round_trip(conn, metadata_v4_request(1, {"empty"}, true));
  auto topics = parse_metadata_v4_topics(split_response(md, false).body);
  ASSERT_EQ(topics.size(), 1u);
  EXPECT_EQ(topics[0].name, "empty");
  producer p(b.bootstrap());
  int64_t lo = -1, hi = -1;
  ASSERT_TRUE(wait_until([&] {
    return rd_kafka_query_watermark_offsets(p.get(), "empty", 0, &lo, &hi, 2000) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
  }));
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 0);
}

TEST(ListOffsets, UnknownTopicIsAnErrorNotAHang) {
  broker b(config_map{{"auto.create.topics.enable", "false"}});
  producer p(b.bootstrap());
  int64_t lo = -1, hi = -1;
  rd_kafka_resp_err_t err =
      rd_kafka_query_watermark_offsets(p.get(), "no-such-topic", 0, &lo, &hi, 5000);
  EXPECT_NE(err, RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("no-such-topic", 0)));
}

}  // namespace
}  // namespace sluice::compat

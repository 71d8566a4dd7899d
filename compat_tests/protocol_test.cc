// Connection semantics every client depends on, checked with raw frames.
//
// Client behaviours relied on (README 1.3, 6.5):
// - Clients pipeline: librdkafka keeps up to max.in.flight requests per connection, kafka-python
//   2.0.2 sends ApiVersions v0 and Metadata v0 back to back. Responses must come back strictly in
//   request order; Java throws on a correlation-id mismatch (AbstractResponse.java:103-104) and
//   librdkafka matches each response to the oldest in-flight request.
// - Ordering holds even when an earlier request is a long-polling Fetch: a later, instantly
//   answerable request waits behind it.
// - Produce with acks=0 gets no response at all, but is still applied; the next response on the
//   connection belongs to the next request.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

// Asks for the topic with auto-creation until it has a leader, as a client does: the first answer
// is LEADER_NOT_AVAILABLE while the broker creates its files (Kafka answers the same).
void create_topic(raw_connection& conn, const std::string& topic) {
  ASSERT_TRUE(wait_until([&] {
    bytes md = round_trip(conn, metadata_v4_request(1000, {topic}, true));
    auto topics = parse_metadata_v4_topics(split_response(md, false).body);
    return topics.size() == 1 && topics[0].error_code == 0 && topics[0].partition_count > 0;
  }));
}

int32_t next_correlation_id(raw_connection& conn) {
  bytes payload;
  auto st = conn.read_frame(payload, 10s);
  if (st != raw_connection::status::ok) throw std::runtime_error("no response");
  return split_response(payload, false).correlation_id;
}

TEST(Protocol, PipelinedRequestsAreAnsweredInOrder) {
  broker b;
  raw_connection conn(b.host(), b.port());
  create_topic(conn, "pipe");

  // 60 requests of four kinds, written in one go before reading anything.
  bytes all;
  bytes batch = build_record_batch({{"k", "v", 0}}, 1700000000000);
  for (int32_t i = 0; i < 60; ++i) {
    bytes req;
    switch (i % 4) {
      case 0:
        req = api_versions_request(0, i);
        break;
      case 1:
        req = metadata_v4_request(i, {"pipe"}, false);
        break;
      case 2:
        req = produce_request(7, i, "pipe", 0, batch);
        break;
      case 3:
        req = fetch_request(4, i, "pipe", 0, 0, /*max_wait_ms=*/0, /*min_bytes=*/0);
        break;
    }
    all.insert(all.end(), req.begin(), req.end());
  }
  ASSERT_TRUE(conn.send(all));
  for (int32_t i = 0; i < 60; ++i) {
    ASSERT_EQ(next_correlation_id(conn), i) << "responses out of request order";
  }
}

// With queued.max.requests=2 the broker stops reading after two unanswered requests and resumes
// as responses go out: `count` pipelined produces of one `value_size`-byte record must all land,
// once each, answered in order. Returns the bytes pipelined.
size_t pipeline_under_back_pressure(const std::string& topic, size_t value_size) {
  broker b(config_map{{"queued.max.requests", "2"}});
  raw_connection conn(b.host(), b.port());
  create_topic(conn, topic);
  bytes all;
  bytes batch = build_record_batch({{"k", std::string(value_size, 'v'), 0}}, 1700000000000);
  constexpr int32_t count = 200;
  for (int32_t i = 0; i < count; ++i) {
    bytes req = produce_request(7, i, topic, 0, batch);
    all.insert(all.end(), req.begin(), req.end());
  }
  EXPECT_TRUE(conn.send(all));
  for (int32_t i = 0; i < count; ++i) {
    int32_t id = next_correlation_id(conn);
    EXPECT_EQ(id, i) << "responses out of request order";
    if (id != i) return all.size();
  }
  bytes lo = round_trip(conn, list_offsets_v7_request(count, topic, 0, -1));
  auto latest = parse_list_offsets_v7(split_response(lo, true).body);
  EXPECT_EQ(latest.size(), 1u);
  if (!latest.empty()) {
    EXPECT_EQ(latest[0].offset, count);
  }
  return all.size();
}

TEST(Protocol, FullPipelinePausesReadingWithoutLosingRequests) {
  pipeline_under_back_pressure("pressure", 1);
}

// Far more pipelined bytes than the broker's read buffer holds, so reading pauses while the
// socket still has data queued, and must resume reading rather than give up.
TEST(Protocol, FullPipelineWithMoreThanABufferOfRequestsQueued) {
  EXPECT_GT(pipeline_under_back_pressure("pressure-big", 2000), 256u * 1024u);
}

// connections.max.idle.ms: a connection that moves no bytes for that long is closed; one that
// keeps sending requests is not.
TEST(Protocol, IdleConnectionsAreClosedAfterConnectionsMaxIdleMs) {
  broker b(config_map{{"connections.max.idle.ms", "400"}});
  raw_connection idle(b.host(), b.port());
  raw_connection busy(b.host(), b.port());
  bytes av = api_versions_request(1, 2);
  round_trip(idle, av);
  EXPECT_FALSE(idle.wait_closed(std::chrono::milliseconds(150))) << "closed before its time";
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    round_trip(busy, av);
  }
  EXPECT_TRUE(idle.wait_closed(std::chrono::seconds(5))) << "the idle connection stayed open";
  round_trip(busy, av);  // still served
  EXPECT_NE(b.log().find("connections.max.idle.ms"), std::string::npos);
}

TEST(Protocol, LongPollDoesNotLetLaterResponsesOvertake) {
  broker b;
  raw_connection conn(b.host(), b.port());
  create_topic(conn, "slow");
  bytes fetch = fetch_request(4, 1, "slow", 0, 0, /*max_wait_ms=*/300, /*min_bytes=*/1);
  bytes av = api_versions_request(0, 2);
  bytes both = fetch;
  both.insert(both.end(), av.begin(), av.end());
  ASSERT_TRUE(conn.send(both));
  EXPECT_EQ(next_correlation_id(conn), 1) << "ApiVersions overtook the parked Fetch";
  EXPECT_EQ(next_correlation_id(conn), 2);
}

TEST(Protocol, AcksZeroProduceGetsNoResponseButIsApplied) {
  broker b;
  raw_connection conn(b.host(), b.port());
  create_topic(conn, "fire");
  bytes batch = build_record_batch({{"k", "fire-and-forget", 0}}, 1700000000000);
  bytes req = produce_request(7, 1, "fire", 0, batch, /*acks=*/0);
  bytes av = api_versions_request(0, 2);
  req.insert(req.end(), av.begin(), av.end());
  ASSERT_TRUE(conn.send(req));
  EXPECT_EQ(next_correlation_id(conn), 2) << "acks=0 Produce must not be answered";

  // The record was appended: a fetch sees it at offset 0.
  ASSERT_TRUE(wait_until([&] {
    bytes resp = round_trip(conn, fetch_request(4, 3, "fire", 0, 0, 0, 0));
    auto parts = parse_fetch_v4(split_response(resp, false).body);
    return parts.size() == 1 && parts[0].high_watermark == 1;
  }));
}

}  // namespace
}  // namespace sluice::compat

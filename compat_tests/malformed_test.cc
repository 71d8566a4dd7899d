// Malformed and unsupported input over a raw socket, with a healthy librdkafka producer running
// alongside the whole time.
//
// What Kafka does, which these tests assert:
// - Bad framing (negative size, size > socket.request.max.bytes): the broker closes the
//   connection without answering (Kafka's NetworkReceive throws InvalidReceiveException and the
//   selector closes the channel).
// - Unknown api key, or a version the broker does not support for any API but ApiVersions: the
//   request cannot be parsed, so the broker closes the connection without answering
//   (SocketServer.processCompletedReceives -> RequestContext.parseRequest throws ->
//   processChannelException). Kafka 4.x still *advertises* Produce from v0 for librdkafka's sake
//   (KAFKA-18659, README 5.5) but rejects v0-2 the same way, and no longer knows Fetch v0-3.
// - ApiVersions at an unsupported version (README 1.3, 6.1; KIP-511): no close; a response with
//   header v0 and a *v0 body*: error_code 35 (UNSUPPORTED_VERSION) and one entry, ApiVersions'
//   own range, so the client can retry with a version the broker knows. librdkafka 2.0.2 relies
//   on this to fall back (rdkafka_broker.c:2446-2466); franz-go expects exactly that one entry.
// - A batch whose CRC-32C does not verify: per-partition CORRUPT_MESSAGE (2), nothing appended
//   (LogValidator / ProduceRequest validation, README 2.5).
// After every case the broker must still serve fresh connections and the concurrent producer.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

constexpr int32_t kMaxRequest = 1 << 20;

class Malformed : public ::testing::Test {
 protected:
  void SetUp() override {
    b_ = std::make_unique<broker>(
        config_map{{"socket.request.max.bytes", std::to_string(kMaxRequest)}});
    // The healthy client: produces steadily on its own connection for the whole test.
    background_ = std::thread([this] {
      producer p(b_->bootstrap(), {{"linger.ms", "1"}, {"acks", "1"}});
      while (!stop_) {
        size_t id = p.produce("healthy", 0, "k", "v");
        if (!p.flush(10s)) {
          healthy_failures_++;
          continue;
        }
        if (p.delivery_of(id).err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          healthy_failures_++;
        } else {
          healthy_acks_++;
        }
        std::this_thread::sleep_for(5ms);  // pacing, not synchronisation
      }
    });
    ASSERT_TRUE(wait_until([this] { return healthy_acks_ > 0; }, 30s))
        << "the background producer never got an ack";
  }

  void TearDown() override {
    if (!b_) return;  // SetUp failed before the broker started
    // The healthy producer must keep getting acks after the malformed input.
    size_t before = healthy_acks_;
    EXPECT_TRUE(wait_until([&] { return healthy_acks_ > before + 3; }, 10s))
        << "the concurrent librdkafka producer stalled";
    stop_ = true;
    if (background_.joinable()) background_.join();
    EXPECT_EQ(healthy_failures_, 0u) << "the concurrent librdkafka producer saw errors";
    ExpectBrokerHealthy();
  }

  // A fresh connection gets a normal ApiVersions v0 answer that lists ApiVersions itself.
  void ExpectBrokerHealthy() {
    raw_connection conn(b_->host(), b_->port());
    bytes resp = round_trip(conn, api_versions_request(0, 4242));
    response r = split_response(resp, false);
    EXPECT_EQ(r.correlation_id, 4242);
    auto body = parse_api_versions_v0(r.body);
    EXPECT_EQ(body.error_code, 0);
    bool has_api_versions = false;
    for (const auto& a : body.api_keys)
      has_api_versions |= a.api_key == 18;
    EXPECT_TRUE(has_api_versions);
  }

  // Sends `data` on a fresh connection and expects the broker to close it without a response.
  void ExpectClosedWithoutResponse(std::span<const uint8_t> data, const char* what) {
    raw_connection conn(b_->host(), b_->port());
    conn.send(data);  // may fail part-way if the broker closes early: that is fine
    size_t received = 0;
    EXPECT_TRUE(conn.wait_closed(5s, &received)) << what << ": connection left open";
    EXPECT_EQ(received, 0u) << what << ": broker answered instead of closing";
    ExpectBrokerHealthy();
  }

  std::unique_ptr<broker> b_;
  std::thread background_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> healthy_acks_{0};
  std::atomic<size_t> healthy_failures_{0};
};

TEST_F(Malformed, NegativeSizeClosesConnection) {
  const uint8_t frame[] = {0xff, 0xff, 0xff, 0xfe, 0, 18, 0, 0};
  ExpectClosedWithoutResponse(frame, "size -2");
}

TEST_F(Malformed, OversizedFrameClosesConnection) {
  byte_writer w;
  w.i32(kMaxRequest + 1);
  w.i16(18);
  w.i16(0);
  w.i32(1);
  ExpectClosedWithoutResponse(w.data(), "size > socket.request.max.bytes");

  byte_writer huge;
  huge.i32(0x7fffffff);
  ExpectClosedWithoutResponse(huge.data(), "size INT32_MAX");
}

TEST_F(Malformed, TruncatedFrameThenCloseIsHarmless) {
  bytes req = api_versions_request(3, 7);
  {
    raw_connection conn(b_->host(), b_->port());
    ASSERT_TRUE(conn.send(std::span<const uint8_t>(req).first(req.size() / 2)));
    conn.shutdown_write();
    size_t received = 0;
    EXPECT_TRUE(conn.wait_closed(5s, &received)) << "broker kept a half-closed connection open";
    EXPECT_EQ(received, 0u);
  }
  {
    // Size prefix only, then an abrupt close.
    raw_connection conn(b_->host(), b_->port());
    ASSERT_TRUE(conn.send(std::span<const uint8_t>(req).first(4)));
  }
  ExpectBrokerHealthy();
}

TEST_F(Malformed, UnknownApiKeyClosesConnection) {
  const uint8_t body[] = {0, 0, 0, 0};
  bytes req = frame_request(/*api_key=*/999, 0, 1, false, body);
  ExpectClosedWithoutResponse(req, "api key 999");
  bytes neg = frame_request(/*api_key=*/-5, 0, 1, false, body);
  ExpectClosedWithoutResponse(neg, "api key -5");
}

TEST_F(Malformed, FrameTooShortForAHeaderClosesConnection) {
  // Size 4: api_key and api_version, then nothing (no correlation id, no client id).
  const uint8_t frame[] = {0, 0, 0, 4, 0, 18, 0, 0};
  ExpectClosedWithoutResponse(frame, "4-byte request");
}

TEST_F(Malformed, UndecodableBodyClosesConnection) {
  // Metadata v4 claiming a million topics in a 5-byte body: Kafka fails to parse and closes.
  byte_writer body;
  body.i32(1000000);
  body.i8(1);
  ExpectClosedWithoutResponse(frame_request(3, 4, 1, false, body.data()),
                              "Metadata v4 with an impossible array count");
  // Produce v7 whose records field claims more bytes than the frame holds.
  byte_writer p;
  p.null_string(false);
  p.i16(1);
  p.i32(5000);
  p.array_length(1, false);
  p.string("healthy", false);
  p.array_length(1, false);
  p.i32(0);
  p.i32(1 << 20);  // records length
  p.raw(std::string_view("short"));
  ExpectClosedWithoutResponse(frame_request(0, 7, 2, false, p.data()),
                              "Produce v7 with a records length past the end of the frame");
}

TEST_F(Malformed, UnsupportedProduceV1ClosesConnection) {
  bytes set = build_legacy_message_set_v1("k", "v", 1700000000000);
  ExpectClosedWithoutResponse(produce_v1_request(1, "legacy", 0, set), "Produce v1");
  // Nothing may have been stored for the refused request.
  EXPECT_FALSE(std::filesystem::exists(b_->partition_dir("legacy", 0)) &&
               !read_partition_log(b_->partition_dir("legacy", 0)).empty());
}

TEST_F(Malformed, UnsupportedFetchV0ClosesConnection) {
  ExpectClosedWithoutResponse(fetch_request(0, 1, "healthy", 0, 0, 100, 1), "Fetch v0");
}

TEST_F(Malformed, UnsupportedApiVersionsAnswersWithV0BodyAndError35) {
  raw_connection conn(b_->host(), b_->port());
  bytes resp = round_trip(conn, api_versions_request(99, 555));
  // Response header v0 (no tag section) whatever the request version.
  response r = split_response(resp, /*flexible=*/false);
  EXPECT_EQ(r.correlation_id, 555);
  api_versions_v0_body body = parse_api_versions_v0(r.body);  // exact v0 layout, no extras
  EXPECT_EQ(body.error_code, 35);
  ASSERT_EQ(body.api_keys.size(), 1u) << "the v0 error body lists only ApiVersions";
  EXPECT_EQ(body.api_keys[0].api_key, 18);
  EXPECT_EQ(body.api_keys[0].min_version, 0);
  EXPECT_EQ(body.api_keys[0].max_version, 4);

  // The connection stays usable: the client retries with the advertised max.
  bytes again = round_trip(conn, api_versions_request(3, 556));
  response r3 = split_response(again, false);
  EXPECT_EQ(r3.correlation_id, 556);
  byte_reader rd(r3.body);
  EXPECT_EQ(rd.i16(), 0) << "ApiVersions v3 error code";
}

TEST_F(Malformed, CorruptCrcIsRejectedAndNothingStored) {
  const std::string topic = "crc";
  raw_connection conn(b_->host(), b_->port());
  round_trip(conn, metadata_v4_request(1, {topic}, true));
  producer probe(b_->bootstrap());
  int64_t lo = -1, hi = -1;
  ASSERT_TRUE(wait_until([&] {
    return rd_kafka_query_watermark_offsets(probe.get(), topic.c_str(), 0, &lo, &hi, 2000) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
  }));
  ASSERT_EQ(hi, 0);

  bytes good = build_record_batch({{"k1", "v1", 0}, {"k2", std::nullopt, 1}}, 1700000000000);
  bytes bad = good;
  bad[17] ^= 0x01;  // a CRC byte

  bytes resp = round_trip(conn, produce_request(7, 2, topic, 0, bad));
  auto parts = parse_produce_response(7, split_response(resp, false).body);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].topic, topic);
  EXPECT_EQ(parts[0].error_code, 2) << "CORRUPT_MESSAGE";

  // Also corrupt the payload instead of the CRC field.
  bytes bad2 = good;
  bad2.back() ^= 0x40;
  resp = round_trip(conn, produce_request(7, 3, topic, 0, bad2));
  parts = parse_produce_response(7, split_response(resp, false).body);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].error_code, 2) << "CORRUPT_MESSAGE for a flipped payload bit";

  ASSERT_EQ(rd_kafka_query_watermark_offsets(probe.get(), topic.c_str(), 0, &lo, &hi, 5000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(hi, 0) << "a corrupt batch was appended";
  EXPECT_TRUE(read_partition_log(b_->partition_dir(topic, 0)).empty())
      << "corrupt bytes reached the log file";

  // The same batch with its CRC intact is accepted on the same connection at offset 0.
  resp = round_trip(conn, produce_request(7, 4, topic, 0, good));
  parts = parse_produce_response(7, split_response(resp, false).body);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].error_code, 0);
  EXPECT_EQ(parts[0].offset, 0);
  ASSERT_EQ(rd_kafka_query_watermark_offsets(probe.get(), topic.c_str(), 0, &lo, &hi, 5000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(hi, 2);

  // The rejection is logged with the client id, which is the client's to choose: one with a
  // newline must not forge a line of the broker's log.
  const std::string forged = "2026-01-01T00:00:00.000Z INFO  forged";
  resp = round_trip(conn, produce_request(7, 5, topic, 0, bad, -1, 5000, "evil\n" + forged));
  parts = parse_produce_response(7, split_response(resp, false).body);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].error_code, 2);
  std::string log = b_->log();
  EXPECT_NE(log.find("(client evil\\x0a" + forged + ")"), std::string::npos) << log;
  EXPECT_EQ(log.find("\n" + forged), std::string::npos) << "a client forged a log line";
}

}  // namespace
}  // namespace sluice::compat

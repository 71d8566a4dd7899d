// Flexible versions and the advertised ranges, with raw frames.
//
// Client behaviours relied on:
// - librdkafka 2.0.2 (kcat, confluent-kafka-python on Debian bookworm) needs version-0 minimums:
//   it compresses only if Produce v0 is advertised, needs Produce 3 / Fetch 4 inside the ranges
//   for record format v2, Produce 7 / Fetch 10 for zstd (README 5.5, rdkafka_feature.c) and
//   FindCoordinator 0 for lz4 (RD_KAFKA_FEATURE_LZ4's "broker >= 0.8.2" probe);
//   kafka-python 2.0.2 sends Metadata v0 and infers the broker version from the ranges (README
//   5.2, 6.11). The ApiVersions answer must therefore keep those versions inside its ranges.
// - Every current client (Java, franz-go, librdkafka >= 2.x for Metadata, Sarama >= 1.46) uses the
//   highest advertised version, which here means the flexible encodings: request header v2,
//   compact strings/arrays/bytes and a tag section after every struct (README 6.4). librdkafka
//   2.0.2 stops below them (Produce 7, Fetch 11, Metadata 4), so only these raw tests cover
//   Produce v9, Fetch v12 and Metadata v12.

#include <gtest/gtest.h>
#include <algorithm>

#include <map>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

std::map<int16_t, api_range> advertised(raw_connection& conn) {
  bytes resp = round_trip(conn, api_versions_request(3, 1));
  response r = split_response(resp, /*flexible=*/false);  // ApiVersions: header v0 always
  EXPECT_EQ(r.correlation_id, 1);
  api_versions_v0_body body = parse_api_versions_v3(r.body);
  EXPECT_EQ(body.error_code, 0);
  std::map<int16_t, api_range> out;
  for (const api_range& a : body.api_keys) {
    EXPECT_TRUE(out.emplace(a.api_key, a).second) << "api key " << a.api_key << " listed twice";
    EXPECT_LE(a.min_version, a.max_version) << "api key " << a.api_key;
  }
  return out;
}

TEST(Flexible, ApiVersionsV3KeepsTheVersionsOldClientsNeed) {
  broker b;
  raw_connection conn(b.host(), b.port());
  auto apis = advertised(conn);
  auto contains = [&](int16_t key, int16_t v) {
    auto it = apis.find(key);
    return it != apis.end() && it->second.min_version <= v && v <= it->second.max_version;
  };
  EXPECT_TRUE(contains(0, 0)) << "Produce v0 must be advertised or librdkafka < 2.11.1 never "
                                 "compresses (KAFKA-18659)";
  EXPECT_TRUE(contains(0, 3)) << "Produce 3: record format v2";
  EXPECT_TRUE(contains(0, 7)) << "Produce 7: zstd";
  EXPECT_TRUE(contains(1, 4)) << "Fetch 4: record format v2";
  EXPECT_TRUE(contains(1, 10)) << "Fetch 10: zstd";
  EXPECT_TRUE(contains(2, 1)) << "ListOffsets 1: offsets by time (librdkafka OffsetTime feature)";
  EXPECT_TRUE(contains(3, 0)) << "Metadata 0: kafka-python 2.0.2 bootstrap";
  EXPECT_TRUE(contains(3, 4)) << "Metadata 4: kafka-python infers >= 0.11, librdkafka 2.0.2 max";
  EXPECT_TRUE(contains(10, 0)) << "FindCoordinator 0: librdkafka < 2.11.1 enables LZ4 only then "
                                  "(RD_KAFKA_FEATURE_LZ4 in rdkafka_feature.c)";
  EXPECT_TRUE(contains(18, 0));
  EXPECT_TRUE(contains(18, 3)) << "ApiVersions 3: what librdkafka sends first";
}

TEST(Flexible, ProduceV9AndFetchV12RoundTrip) {
  broker b;
  raw_connection conn(b.host(), b.port());
  auto apis = advertised(conn);
  ASSERT_GE(apis[0].max_version, 9) << "Produce v9 not advertised";
  ASSERT_GE(apis[1].max_version, 12) << "Fetch v12 not advertised";

  bytes md = round_trip(conn, metadata_v12_request(2, {"flex"}, true));
  parse_metadata_v12(split_response(md, true).body);  // decodes exactly, or throws

  bytes batch = build_record_batch({{"k", "flexible", 0}, {std::nullopt, "two", 1}}, 1700000000000);
  partition_result pr;
  // Kafka may answer the first produce to a just-created topic with a retriable error.
  ASSERT_TRUE(wait_until([&] {
    bytes resp = round_trip(conn, produce_v9_request(3, "flex", 0, batch));
    response r = split_response(resp, true);
    EXPECT_EQ(r.correlation_id, 3);
    auto parts = parse_produce_v9(r.body);
    if (parts.size() != 1) return false;
    pr = parts[0];
    return pr.error_code == 0;
  })) << "Produce v9 error "
      << pr.error_code;
  EXPECT_EQ(pr.topic, "flex");
  EXPECT_EQ(pr.partition, 0);
  EXPECT_EQ(pr.offset, 0);

  bytes resp = round_trip(conn, fetch_v12_request(4, "flex", 0, 0, 500, 1));
  response r = split_response(resp, true);
  EXPECT_EQ(r.correlation_id, 4);
  int16_t top_error = -1;
  auto parts = parse_fetch_v12(r.body, &top_error);
  EXPECT_EQ(top_error, 0);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].error_code, 0);
  EXPECT_EQ(parts[0].high_watermark, 2);
  auto batches = split_batches(parts[0].records);
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_EQ(batches[0].size(), batch.size());
  EXPECT_EQ(byte_reader(batches[0].subspan(0, 8)).i64(), 0);
  EXPECT_TRUE(std::equal(batches[0].begin() + 16, batches[0].end(), batch.begin() + 16))
      << "fetched batch differs from the produced one beyond offset/epoch";

  // A second batch continues the offsets.
  resp = round_trip(conn, produce_v9_request(5, "flex", 0, batch));
  auto parts2 = parse_produce_v9(split_response(resp, true).body);
  ASSERT_EQ(parts2.size(), 1u);
  EXPECT_EQ(parts2[0].error_code, 0);
  EXPECT_EQ(parts2[0].offset, 2);
}

TEST(Flexible, MetadataV12IsSelfConsistent) {
  broker b(config_map{{"node.id", "5"}, {"num.partitions", "2"}});
  raw_connection conn(b.host(), b.port());
  round_trip(conn, metadata_v12_request(1, {"mdv12"}, true));
  metadata_v12 md;
  ASSERT_TRUE(wait_until([&] {
    md = parse_metadata_v12(
        split_response(round_trip(conn, metadata_v12_request(2, {}, false, true)), true).body);
    return md.topics.size() == 2 && md.topics[0].error_code == 0 && md.topics[1].error_code == 0;
  })) << "topic not listed by an all-topics Metadata v12";
  // All topics include the internal one, marked so, as Kafka lists it.
  std::sort(md.topics.begin(), md.topics.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  EXPECT_EQ(md.topics[0].name, "__consumer_offsets");
  EXPECT_TRUE(md.topics[0].is_internal);
  EXPECT_FALSE(md.topics[1].is_internal);
  md.topics.erase(md.topics.begin());
  ASSERT_EQ(md.brokers.size(), 1u);
  EXPECT_EQ(md.brokers[0].node_id, 5);
  EXPECT_EQ(md.brokers[0].host, b.host());
  EXPECT_EQ(md.brokers[0].port, b.port());
  EXPECT_EQ(md.controller_id, 5) << "the controller must be a listed broker (admin clients send "
                                    "CreateTopics to it, README 6.10)";
  EXPECT_EQ(md.topics[0].name, "mdv12");
  ASSERT_EQ(md.topics[0].partitions.size(), 2u);
  for (const auto& p : md.topics[0].partitions) {
    EXPECT_EQ(p.error_code, 0);
    EXPECT_EQ(p.leader, 5);
  }

  // v1+ semantics: an empty (not null) topic list means no topics (README 6.10).
  auto none = parse_metadata_v12(
      split_response(round_trip(conn, metadata_v12_request(3, {}, false)), true).body);
  EXPECT_TRUE(none.topics.empty()) << "an empty topic list must return no topics";
  EXPECT_EQ(none.brokers.size(), 1u);
}

}  // namespace
}  // namespace sluice::compat

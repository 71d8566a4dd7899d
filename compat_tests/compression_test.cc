// Each compression codec round-trips, and the broker stores the producer's batches verbatim.
//
// Client behaviours relied on:
// - librdkafka 2.0.2 compresses only if the broker advertises Produce v0 ("Broker does not
//   support compression type ...: not compressing batch", rdkafka_msgset_writer.c:146-177);
//   zstd additionally needs Produce 7 and Fetch 10 (rdkafka_feature.c:192-199), and lz4 needs
//   FindCoordinator v0 to be advertised (RD_KAFKA_FEATURE_LZ4 depends on it as a proxy for
//   "broker >= 0.8.2"; debug log: "Feature LZ4: FindCoordinator (0..0) NOT supported by broker").
//   The test first checks that the captured batches really are compressed, so a broker that
//   advertises the wrong ranges fails here rather than silently testing uncompressed data.
// - librdkafka sends exactly one magic-2 batch per partition in a Produce v3+ request.
// - The broker may only rewrite baseOffset (bytes 0-7) and partitionLeaderEpoch (bytes 12-15):
//   the CRC covers bytes 21.. (README 2.5), so everything else must be the producer's bytes.
//
// The client talks to the broker through a capturing TCP proxy; advertised.listeners points at
// the proxy so the client never learns the broker's own port.

#include <gtest/gtest.h>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/tcp_proxy.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

struct codec_case {
  const char* name;
  int attribute;  // compression bits of the batch attributes
};

void PrintTo(const codec_case& c, std::ostream* os) {
  *os << c.name;
}

class Compression : public ::testing::TestWithParam<codec_case> {};

std::string compressible_value(size_t i) {
  std::string s;
  for (int k = 0; k < 20; ++k)
    s += "the quick brown fox " + std::to_string(i % 10) + " ";
  return s;
}

TEST_P(Compression, RoundTripsAndIsStoredVerbatim) {
  const codec_case codec = GetParam();
  const std::string topic = std::string("compressed-") + codec.name;
  constexpr size_t kMessages = 600;

  tcp_proxy proxy;
  broker b(config_map{
      {"advertised.listeners", "PLAINTEXT://127.0.0.1:" + std::to_string(proxy.port())}});
  proxy.set_upstream(b.host(), b.port());
  const std::string via_proxy = "127.0.0.1:" + std::to_string(proxy.port());

  producer p(
      via_proxy,
      {{"compression.codec", codec.name}, {"linger.ms", "20"}, {"batch.num.messages", "200"}});
  for (size_t i = 0; i < kMessages; ++i) {
    std::vector<header> hs = {{"codec", codec.name}};
    p.produce(topic, 0, "key-" + std::to_string(i), compressible_value(i), hs);
    // A few separate flushes give several produce requests (and batches) to compare.
    if (i % 200 == 199) {
      ASSERT_TRUE(p.flush(30s));
    }
  }
  ASSERT_TRUE(p.flush(30s));
  auto deliveries = p.deliveries();
  for (size_t i = 0; i < kMessages; ++i) {
    ASSERT_EQ(deliveries[i].err, RD_KAFKA_RESP_ERR_NO_ERROR) << i;
    ASSERT_EQ(deliveries[i].offset, static_cast<int64_t>(i));
  }

  // Round trip through a consumer (also via the proxy).
  simple_consumer c(via_proxy, topic);
  c.start(0, RD_KAFKA_OFFSET_BEGINNING);
  auto got = c.consume(kMessages, 30s);
  EXPECT_TRUE(c.errors().empty()) << c.errors().front();
  ASSERT_EQ(got.size(), kMessages);
  for (size_t i = 0; i < kMessages; ++i) {
    ASSERT_EQ(got[i].offset, static_cast<int64_t>(i));
    ASSERT_EQ(got[i].key, "key-" + std::to_string(i));
    ASSERT_EQ(got[i].value, compressible_value(i));
    ASSERT_EQ(got[i].headers, (std::vector<header>{{"codec", codec.name}}));
  }

  // What the producer sent, batch by batch.
  std::vector<captured_batch> sent;
  for (const auto& stream : proxy.client_streams()) {
    for (auto& cb : extract_produce_batches(stream)) {
      if (cb.topic == topic && cb.partition == 0) sent.push_back(std::move(cb));
    }
  }
  ASSERT_FALSE(sent.empty()) << "no Produce request seen by the proxy";
  for (const auto& cb : sent) {
    ASSERT_GE(cb.batch.size(), 61u);
    EXPECT_EQ(cb.batch[16], 2) << "magic";
    EXPECT_EQ(cb.batch[22] & 0x07, codec.attribute)
        << "librdkafka did not compress with " << codec.name << " (Produce v" << cb.api_version
        << "). librdkafka 2.0.2 compresses only if the broker advertises Produce v0; zstd also "
           "needs Produce 7 and Fetch 10; lz4 needs FindCoordinator v0 (RD_KAFKA_FEATURE_LZ4 in "
           "rdkafka_feature.c uses it as its 'broker >= 0.8.2' probe)";
  }

  // What the broker stored, batch by batch.
  std::string log = read_partition_log(b.partition_dir(topic, 0));
  auto stored = split_batches({reinterpret_cast<const uint8_t*>(log.data()), log.size()});
  ASSERT_EQ(stored.size(), sent.size()) << "stored batch count differs from produced batch count";

  int64_t expect_base = 0;
  for (size_t i = 0; i < sent.size(); ++i) {
    std::span<const uint8_t> s = stored[i];
    const bytes& c_b = sent[i].batch;
    ASSERT_EQ(s.size(), c_b.size()) << "batch " << i << " changed size";
    // bytes 0-7: base offset, assigned by the broker; must be contiguous.
    int64_t base = byte_reader(s.subspan(0, 8)).i64();
    EXPECT_EQ(base, expect_base) << "batch " << i;
    int32_t last_delta = byte_reader(s.subspan(23, 4)).i32();
    expect_base = base + last_delta + 1;
    // bytes 8-11 and 16.. are the producer's, unchanged.
    EXPECT_TRUE(std::equal(s.begin() + 8, s.begin() + 12, c_b.begin() + 8)) << "batch " << i;
    size_t first_diff = 0;
    bool same = true;
    for (size_t k = 16; k < s.size(); ++k) {
      if (s[k] != c_b[k]) {
        same = false;
        first_diff = k;
        break;
      }
    }
    EXPECT_TRUE(same) << "batch " << i << " was not stored verbatim: first difference at byte "
                      << first_diff;
  }
  EXPECT_EQ(expect_base, static_cast<int64_t>(kMessages));
}

INSTANTIATE_TEST_SUITE_P(Codecs, Compression,
                         ::testing::Values(codec_case{"gzip", 1}, codec_case{"snappy", 2},
                                           codec_case{"lz4", 3}, codec_case{"zstd", 4}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace sluice::compat

// Metadata as librdkafka sees it.
//
// Client behaviour relied on: librdkafka bootstraps with ApiVersions v3 and Metadata (v4 in
// 2.0.2), then connects to the brokers *listed in the metadata*, not to the bootstrap address
// (README 6.10: every leader must appear in `brokers` with a reachable host:port). A producer
// asks for metadata with allow_auto_topic_creation=true for a topic it does not know
// (`allow.auto.create.topics` defaults to true for producers), which is what creates the topic.

#include <gtest/gtest.h>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

struct metadata_deleter {
  void operator()(const rd_kafka_metadata_t* m) const { rd_kafka_metadata_destroy(m); }
};
using metadata_ptr = std::unique_ptr<const rd_kafka_metadata_t, metadata_deleter>;

metadata_ptr fetch_metadata(rd_kafka_t* rk, rd_kafka_topic_t* only = nullptr) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, only == nullptr, only, &md, 10000);
  EXPECT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
  return metadata_ptr(md);
}

const rd_kafka_metadata_topic_t* find_topic(const rd_kafka_metadata_t* md, const std::string& n) {
  for (int i = 0; i < md->topic_cnt; ++i) {
    if (n == md->topics[i].topic) return &md->topics[i];
  }
  return nullptr;
}

TEST(Metadata, ListsTheBrokerAndAutoCreatedTopics) {
  broker b(config_map{{"node.id", "7"}, {"num.partitions", "3"}});
  producer p(b.bootstrap());

  // Producing to unknown topics is what makes librdkafka request their auto-creation.
  for (const char* topic : {"meta-a", "meta-b"}) {
    size_t id = p.produce(topic, RD_KAFKA_PARTITION_UA, "k", "v");
    ASSERT_TRUE(p.flush(30s));
    auto d = p.delivery_of(id);
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << topic << ": " << rd_kafka_err2str(d.err);
  }

  metadata_ptr md = fetch_metadata(p.get());
  ASSERT_NE(md, nullptr);

  // The broker lists itself with the address clients must use.
  ASSERT_EQ(md->broker_cnt, 1);
  EXPECT_EQ(md->brokers[0].id, 7);
  EXPECT_EQ(std::string(md->brokers[0].host), b.host());
  EXPECT_EQ(md->brokers[0].port, b.port());

  for (const char* topic : {"meta-a", "meta-b"}) {
    const rd_kafka_metadata_topic_t* t = find_topic(md.get(), topic);
    ASSERT_NE(t, nullptr) << topic << " missing from the all-topics metadata";
    EXPECT_EQ(t->err, RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(t->partition_cnt, 3) << "auto-created topics must get num.partitions";
    for (int i = 0; i < t->partition_cnt; ++i) {
      const auto& part = t->partitions[i];
      EXPECT_EQ(part.err, RD_KAFKA_RESP_ERR_NO_ERROR);
      EXPECT_EQ(part.leader, 7) << topic << "/" << part.id;
      ASSERT_EQ(part.replica_cnt, 1);
      EXPECT_EQ(part.replicas[0], 7);
      ASSERT_EQ(part.isr_cnt, 1);
      EXPECT_EQ(part.isrs[0], 7);
    }
    // Partition ids 0..n-1, each exactly once.
    std::vector<bool> seen(t->partition_cnt, false);
    for (int i = 0; i < t->partition_cnt; ++i) {
      int32_t id = t->partitions[i].id;
      ASSERT_TRUE(id >= 0 && id < t->partition_cnt) << id;
      EXPECT_FALSE(seen[id]) << "partition " << id << " listed twice";
      seen[id] = true;
    }
  }

  // A single-topic request returns just that topic.
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(p.get(), "meta-a", nullptr);
  metadata_ptr one = fetch_metadata(p.get(), rkt);
  rd_kafka_topic_destroy(rkt);
  ASSERT_NE(one, nullptr);
  ASSERT_EQ(one->topic_cnt, 1);
  EXPECT_STREQ(one->topics[0].topic, "meta-a");
  EXPECT_EQ(one->topics[0].partition_cnt, 3);
}

TEST(Metadata, AutoCreateDisabledReportsUnknownTopic) {
  // With auto.create.topics.enable=false the producer's metadata request must not create the
  // topic; librdkafka then fails the message with UNKNOWN_TOPIC once message.timeout.ms passes
  // (or at once, from the metadata answer, with __UNKNOWN_TOPIC / UNKNOWN_TOPIC_OR_PART).
  broker b(config_map{{"auto.create.topics.enable", "false"}});
  producer p(b.bootstrap(), {{"message.timeout.ms", "3000"}});
  size_t id = p.produce("meta-none", RD_KAFKA_PARTITION_UA, "k", "v");
  ASSERT_TRUE(p.flush(20s));
  auto d = p.delivery_of(id);
  EXPECT_TRUE(d.err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
              d.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
              d.err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
      << rd_kafka_err2str(d.err);
  EXPECT_FALSE(std::filesystem::exists(b.partition_dir("meta-none", 0)));
}

}  // namespace
}  // namespace sluice::compat

// Retention: the broker's background task deletes whole old segments by time and by size, never
// the active one, and moves the log start offset; clients see it through ListOffsets (earliest)
// and through OFFSET_OUT_OF_RANGE when they fetch below it, which librdkafka answers by resetting
// to auto.offset.reset.
//
// Small segments (log.segment.bytes / segment.bytes) make a few hundred messages span many
// segment files; log.retention.check.interval.ms=200 runs the task often enough for a test.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

std::string value_of(size_t i) {
  std::string v = "retained-" + std::to_string(i) + "-";
  v.resize(200, 'x');
  return v;
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One message per batch (flush after each), so segments roll at predictable sizes.
void produce_one_by_one(const broker& b, const std::string& topic, size_t first, size_t n,
                        int64_t timestamp) {
  producer p(b.bootstrap(), {{"acks", "1"}, {"linger.ms", "0"}});
  for (size_t i = first; i < first + n; ++i) {
    size_t id = p.produce(topic, 0, std::nullopt, value_of(i), {}, timestamp);
    ASSERT_TRUE(p.flush(10s));
    ASSERT_EQ(p.delivery_of(id).err, RD_KAFKA_RESP_ERR_NO_ERROR);
  }
}

std::vector<int64_t> segment_bases(const std::filesystem::path& dir) {
  std::vector<int64_t> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log") out.push_back(std::stoll(e.path().stem().string()));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The broker's retention may delete a segment between the listing and the size: a file gone
// meanwhile counts as nothing (it was deleted, which is what the callers wait for).
int64_t log_bytes(const std::filesystem::path& dir) {
  int64_t total = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".log") continue;
    std::error_code ec;
    const auto size = std::filesystem::file_size(e.path(), ec);
    if (!ec) total += static_cast<int64_t>(size);
  }
  return total;
}

// Retention runs every 200 ms while a test produces, so the log start keeps moving until the
// producing is over and one more round has run: wait until it has moved (> 0) and then held
// still, with the segment files, over several rounds.
std::pair<int64_t, int64_t> settled_watermarks(rd_kafka_t* rk, const std::string& topic,
                                               const std::filesystem::path& dir) {
  auto sample = [&] { return std::make_tuple(watermarks(rk, topic, 0), segment_bases(dir)); };
  auto last = sample();
  int unchanged = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(250ms);
    auto now = sample();
    bool moved = std::get<0>(now).first > 0;
    unchanged = now == last && moved ? unchanged + 1 : 0;
    last = now;
    if (unchanged >= 4) return std::get<0>(now);
  }
  ADD_FAILURE() << "the log start did not settle";
  return std::get<0>(last);
}

// A consumer that starts below the log start offset is told OFFSET_OUT_OF_RANGE and, with
// auto.offset.reset=earliest, continues from the log start: it must receive [low, high) in order.
void expect_reset_to_log_start(const broker& b, const std::string& topic, int64_t low,
                               int64_t high) {
  simple_consumer c(b.bootstrap(), topic, {{"auto.offset.reset", "earliest"}});
  c.start(0, 0);
  std::vector<message> got = c.consume(static_cast<size_t>(high - low), 30s);
  ASSERT_EQ(static_cast<int64_t>(got.size()), high - low);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].offset, low + static_cast<int64_t>(i));
    ASSERT_EQ(got[i].value, value_of(static_cast<size_t>(got[i].offset)));
  }
}

TEST(Retention, OldSegmentsAreDeletedByTime) {
  broker b({{"log.segment.bytes", "2048"},
            {"log.retention.ms", "3600000"},
            {"log.retention.check.interval.ms", "200"}});
  const std::string topic = "by-time";
  // 40 messages two hours old, then 10 current ones.
  produce_one_by_one(b, topic, 0, 40, now_ms() - 2 * 3600 * 1000);
  produce_one_by_one(b, topic, 40, 10, 0);
  const auto dir = b.partition_dir(topic, 0);

  producer probe(b.bootstrap());
  auto [low, high] = settled_watermarks(probe.get(), topic, dir);
  ASSERT_GT(low, 0) << "nothing was deleted";
  EXPECT_EQ(high, 50);
  // Only segments holding nothing but old messages go: the log starts at a segment boundary at or
  // before the first current message, and every current message is still there.
  EXPECT_LE(low, 40);
  std::vector<int64_t> bases = segment_bases(dir);
  ASSERT_FALSE(bases.empty());
  EXPECT_EQ(bases.front(), low) << "the log start must be the first remaining segment's base";
  EXPECT_FALSE(std::filesystem::exists(dir / "00000000000000000000.log"));
  EXPECT_FALSE(std::filesystem::exists(dir / "00000000000000000000.index"));
  expect_reset_to_log_start(b, topic, low, high);

  // The log start offset survives a restart (log-start-offset-checkpoint).
  ASSERT_EQ(b.stop(), 0);
  b.restart();
  producer again(b.bootstrap());
  auto [low2, high2] = watermarks(again.get(), topic, 0);
  EXPECT_EQ(low2, low);
  EXPECT_EQ(high2, 50);
}

TEST(Retention, OldestSegmentsAreDeletedBySizeButNeverTheActiveOne) {
  broker b({{"log.segment.bytes", "2048"},
            {"log.retention.bytes", "6000"},
            {"log.retention.check.interval.ms", "200"}});
  const std::string topic = "by-size";
  produce_one_by_one(b, topic, 0, 80, 0);
  const auto dir = b.partition_dir(topic, 0);

  producer probe(b.bootstrap());
  auto [low, high] = settled_watermarks(probe.get(), topic, dir);
  ASSERT_GT(low, 0);
  EXPECT_EQ(high, 80);
  // Kafka's rule: the oldest segment goes while the log would still be at least retention.bytes
  // without it, so what remains is under retention.bytes plus one segment.
  EXPECT_LT(log_bytes(dir), 6000 + 2048);
  EXPECT_GE(log_bytes(dir) + 2048, 6000) << "deleted more than retention.bytes asks";
  EXPECT_EQ(segment_bases(dir).front(), low);
  expect_reset_to_log_start(b, topic, low, high);
}

TEST(Retention, TopicConfigOverridesTheBrokerDefault) {
  // Broker default: keep everything. The topic's own retention.bytes must apply.
  broker b({{"log.segment.bytes", "2048"}, {"log.retention.check.interval.ms", "200"}});
  const std::string topic = "topic-config";
  {
    producer admin(b.bootstrap());
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), 1, 1, nullptr, 0);
    ASSERT_EQ(rd_kafka_NewTopic_set_config(nt, "retention.bytes", "4000"),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_queue_t* q = rd_kafka_queue_new(admin.get());
    rd_kafka_CreateTopics(admin.get(), &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10000);
    ASSERT_NE(ev, nullptr);
    const rd_kafka_CreateTopics_result_t* res = rd_kafka_event_CreateTopics_result(ev);
    ASSERT_NE(res, nullptr);
    size_t n = 0;
    const rd_kafka_topic_result_t** results = rd_kafka_CreateTopics_result_topics(res, &n);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(rd_kafka_topic_result_error(results[0]), RD_KAFKA_RESP_ERR_NO_ERROR)
        << rd_kafka_topic_result_error_string(results[0]);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
  }
  produce_one_by_one(b, topic, 0, 60, 0);
  producer probe(b.bootstrap());
  ASSERT_TRUE(wait_until([&] { return watermarks(probe.get(), topic, 0).first > 0; }, 10s));
  ASSERT_TRUE(wait_until([&] { return log_bytes(b.partition_dir(topic, 0)) < 4000 + 2048; }, 5s));

  // An untouched topic on the same broker keeps everything. The proof that retention rounds ran
  // after it was written: topic-config, written after it, is cut back again (one log line per
  // deletion), while keep-all's start stays.
  produce_one_by_one(b, "keep-all", 0, 40, 0);
  auto deletions = [&] {
    std::string log = b.log();
    size_t n = 0;
    for (size_t at = 0; (at = log.find("topic-config-0: deleted", at)) != std::string::npos; ++at)
      ++n;
    return n;
  };
  const size_t before = deletions();
  produce_one_by_one(b, topic, 0, 30, 0);
  ASSERT_TRUE(wait_until([&] { return deletions() > before; }, 10s));
  EXPECT_EQ(watermarks(probe.get(), "keep-all", 0).first, 0);
}

// rd_kafka_DeleteRecords (DeleteRecords v0 in 2.0.2): the answer's low watermark is the new log
// start offset; segments wholly below it go from disk; an offset past the high watermark is
// OFFSET_OUT_OF_RANGE.
TEST(Retention, DeleteRecordsMovesTheLogStart) {
  broker b(config_map{{"log.segment.bytes", "2048"}});
  const std::string topic = "deleted-records";
  produce_one_by_one(b, topic, 0, 40, 0);
  const auto dir = b.partition_dir(topic, 0);
  producer admin(b.bootstrap());
  auto delete_before = [&](int64_t offset, int64_t& low) {
    return delete_records(admin.get(), topic, 0, offset, low);
  };
  int64_t low = -1;
  ASSERT_EQ(delete_before(25, low), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(low, 25);
  EXPECT_EQ(watermarks(admin.get(), topic, 0), (std::pair<int64_t, int64_t>(25, 40)));
  std::vector<int64_t> bases = segment_bases(dir);
  ASSERT_FALSE(bases.empty());
  EXPECT_LE(bases.front(), 25) << "the segment holding offset 25 must stay";
  EXPECT_GT(bases.front(), 0) << "segments wholly below 25 must be gone";
  expect_reset_to_log_start(b, topic, 25, 40);
  EXPECT_EQ(delete_before(41, low), RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE);
  EXPECT_EQ(delete_before(10, low), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(low, 25) << "the log start never moves back";
}

}  // namespace
}  // namespace sluice::compat

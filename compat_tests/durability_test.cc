// The durability contract against the real binary: an acks=all produce is answered only after
// its fdatasync (by default, since one broker is every partition's only in-sync replica), one
// fsync covers every producer that waited meanwhile (group commit), a failed fsync is never
// acknowledged, and the flush keys force syncs whatever the acks.
//
// The broker reports how its syncs went in one line at shutdown ("durability: <n> fsyncs released
// <w> durability waits; <b> acks=all batches"), which these tests read. A failing disk is
// simulated with compat_tests/fault_preload.c (LD_PRELOAD), which makes fdatasync fail with EIO
// for the files of one partition.
//
// Client behaviour relied on: librdkafka with acks=all reports a message delivered only when the
// broker answered NONE; with retries=0 it reports the broker's error (KAFKA_STORAGE_ERROR, 56)
// instead of retrying.

#include <gtest/gtest.h>

#include <atomic>
#include <regex>
#include <thread>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

struct durability_summary {
  int64_t fsyncs = -1;
  int64_t waits = -1;
  int64_t acks_all_batches = -1;
};

durability_summary summary_of(const std::string& log) {
  static const std::regex line(
      R"(durability: (\d+) fsyncs released (\d+) durability waits; (\d+) acks=all batches)");
  std::smatch m;
  durability_summary s;
  if (std::regex_search(log, m, line)) {
    s.fsyncs = std::stoll(m[1].str());
    s.waits = std::stoll(m[2].str());
    s.acks_all_batches = std::stoll(m[3].str());
  }
  return s;
}

// One producer per thread, each sending as fast as the broker answers (librdkafka keeps up to five
// requests in flight per connection), so that requests arrive while an fsync for another runs.
void produce_concurrently(const broker& b, const std::string& topic, int producers,
                          int messages_each, std::atomic<int>& acked, std::atomic<int>& failed) {
  std::vector<std::thread> threads;
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&, i] {
      producer p(b.bootstrap(),
                 {{"acks", "all"}, {"linger.ms", "0"}, {"batch.num.messages", "10"}});
      for (int n = 0; n < messages_each; ++n) {
        p.produce(topic, 0, "p" + std::to_string(i), "message " + std::to_string(n));
        p.poll(0);
      }
      if (!p.flush(60s)) return;
      for (const auto& d : p.deliveries()) {
        if (d.done && d.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          ++acked;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
}

TEST(Durability, ConcurrentAcksAllProducersShareFsyncs) {
  broker b;
  {
    // Creates the topic (a first delivery waits for its files).
    producer warmup(b.bootstrap(), {{"acks", "all"}});
    warmup.produce("shared", 0, "k", "first");
    ASSERT_TRUE(warmup.flush(30s));
    ASSERT_EQ(warmup.delivery_of(0).err, RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  std::atomic<int> acked = 0;
  std::atomic<int> failed = 0;
  produce_concurrently(b, "shared", 16, 400, acked, failed);
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(acked, 16 * 400);
  ASSERT_EQ(b.stop(), 0);
  durability_summary s = summary_of(b.log());
  ASSERT_GE(s.fsyncs, 1) << "no durability summary in the broker's log";
  // Every acknowledged batch waited for a sync: none was answered from the page cache. (The
  // waits are per partition of a request; each request here carries one batch.)
  EXPECT_EQ(s.waits, s.acks_all_batches);
  EXPECT_GE(s.acks_all_batches, 16 * 400 / 10);
  // Group commit: one fsync for at least four batches on average.
  EXPECT_GE(s.acks_all_batches, 4 * s.fsyncs)
      << s.fsyncs << " fsyncs for " << s.acks_all_batches << " batches";
}

TEST(Durability, AcksOneDoesNotWaitForFsyncButFlushMessagesMakesItSo) {
  {
    broker b;
    producer p(b.bootstrap(), {{"acks", "1"}, {"linger.ms", "0"}});
    for (int i = 0; i < 20; ++i)
      p.produce("plain", 0, "k", "v" + std::to_string(i));
    ASSERT_TRUE(p.flush(30s));
    ASSERT_EQ(p.acked_count(), 20u);
    ASSERT_EQ(b.stop(), 0);
    durability_summary s = summary_of(b.log());
    EXPECT_EQ(s.waits, 0) << "acks=1 waited for an fsync";
  }
  {
    // Kafka's log.flush.interval.messages=1: every append is synced before it is answered,
    // whatever the acks (KafkaConfig.LogFlushIntervalMessagesProp; UnifiedLog.append).
    broker b(config_map{{"log.flush.interval.messages", "1"}});
    producer p(b.bootstrap(), {{"acks", "1"}, {"linger.ms", "0"}});
    size_t batches = 0;
    for (int i = 0; i < 20; ++i) {
      p.produce("forced", 0, "k", "v" + std::to_string(i));
      ASSERT_TRUE(p.flush(30s));  // one batch per message
      ++batches;
    }
    ASSERT_EQ(p.acked_count(), batches);
    ASSERT_EQ(b.stop(), 0);
    durability_summary s = summary_of(b.log());
    EXPECT_GE(s.waits, static_cast<int64_t>(batches));
    EXPECT_EQ(s.acks_all_batches, 0);
  }
}

TEST(Durability, PageCacheSemanticsWhenSyncBeforeAckIsOff) {
  broker b(config_map{{"log.flush.on.ack", "never"}});
  producer p(b.bootstrap(), {{"acks", "all"}, {"linger.ms", "0"}});
  for (int i = 0; i < 10; ++i)
    p.produce("cached", 0, "k", "v" + std::to_string(i));
  ASSERT_TRUE(p.flush(30s));
  EXPECT_EQ(p.acked_count(), 10u);
  ASSERT_EQ(b.stop(), 0);
  EXPECT_EQ(summary_of(b.log()).waits, 0);
}

TEST(Durability, AFailedFsyncIsNeverAcknowledgedAndTakesThePartitionOffline) {
  const std::string preload = fault_preload_library();
  ASSERT_FALSE(preload.empty()) << "no fault_preload library beside " << std::getenv("SLUICE_BIN");
  broker b({},
           environment{{{"LD_PRELOAD", preload}, {"SLUICE_FAIL_FSYNC_PATH", "/failing-0/0000"}}});
  {
    // acks=1 never syncs: both topics are created and take data.
    producer p(b.bootstrap(), {{"acks", "1"}});
    p.produce("failing", 0, "k", "before");
    p.produce("healthy", 0, "k", "before");
    ASSERT_TRUE(p.flush(30s));
    ASSERT_EQ(p.acked_count(), 2u);
  }
  producer p(b.bootstrap(), {{"acks", "all"}, {"retries", "0"}, {"enable.idempotence", "false"}});
  size_t lost = p.produce("failing", 0, "k", "not durable");
  ASSERT_TRUE(p.flush(30s));
  EXPECT_EQ(p.delivery_of(lost).err, RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR);
  EXPECT_NE(b.log().find("failing-0: fsync failed"), std::string::npos);
  EXPECT_NE(b.log().find("offline until the broker restarts"), std::string::npos);

  // The partition stays offline: nothing more is taken, even with acks=1.
  producer after(b.bootstrap(), {{"acks", "1"}, {"retries", "0"}, {"message.timeout.ms", "5000"}});
  size_t refused = after.produce("failing", 0, "k", "after");
  ASSERT_TRUE(after.flush(30s));
  EXPECT_NE(after.delivery_of(refused).err, RD_KAFKA_RESP_ERR_NO_ERROR);

  // Every other partition is served as before.
  size_t fine = p.produce("healthy", 0, "k", "durable");
  ASSERT_TRUE(p.flush(30s));
  EXPECT_EQ(p.delivery_of(fine).err, RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_EQ(p.delivery_of(fine).offset, 1);
}

// kill -9 with acks=all producers in flight: everything acknowledged is there after the restart,
// and recovery reads only the tail after the recovery point (the periodic flush, every 200 ms
// here, wrote the index entries it starts from).
TEST(Durability, KillNineKeepsEveryAcknowledgedMessageAndRecoversOnlyTheTail) {
  // The checkpoint timer is out of the way: the periodic flush writes the checkpoint itself.
  broker b({{"log.flush.offset.checkpoint.interval.ms", "200"},
            {"replica.high.watermark.checkpoint.interval.ms", "3600000"}});
  auto value_of = [](size_t id) { return "value-" + std::to_string(id) + std::string(2000, 'x'); };
  std::atomic<bool> stop = false;
  std::atomic<size_t> acked_so_far = 0;
  std::vector<producer::delivery> deliveries;
  std::thread writer([&] {
    producer p(
        b.bootstrap(),
        {{"acks", "all"}, {"linger.ms", "1"}, {"retries", "0"}, {"message.timeout.ms", "3000"}});
    for (size_t id = 0; !stop; ++id) {
      p.produce("crash", 0, "k", value_of(id));
      if (id % 100 == 99) {
        p.flush(5s);
        acked_so_far = p.acked_count();
      }
    }
    p.flush(5s);
    deliveries = p.deliveries();
  });
  std::filesystem::path index = b.partition_dir("crash", 0) / "00000000000000000000.index";
  // The periodic flush has written index entries, and more was acknowledged after it.
  ASSERT_TRUE(wait_until(
      [&] {
        std::error_code ec;
        return std::filesystem::file_size(index, ec) > 0 && !ec;
      },
      30s));
  size_t acked_at_flush = acked_so_far;
  ASSERT_TRUE(wait_until([&] { return acked_so_far > acked_at_flush + 200; }, 30s));
  b.kill9();
  stop = true;
  writer.join();

  b.restart();
  std::map<int64_t, size_t> acknowledged;  // offset -> produce id
  for (size_t id = 0; id < deliveries.size(); ++id) {
    if (deliveries[id].done && deliveries[id].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      acknowledged[deliveries[id].offset] = id;
    }
  }
  ASSERT_GT(acknowledged.size(), 200u);
  simple_consumer c(b.bootstrap(), "crash");
  c.start(0, 0);
  const int64_t last = acknowledged.rbegin()->first;
  std::vector<message> got = c.consume(static_cast<size_t>(last + 1), 60s);
  std::map<int64_t, std::string> by_offset;
  for (const message& m : got)
    by_offset[m.offset] = m.value.value_or("");
  for (const auto& [offset, id] : acknowledged) {
    ASSERT_TRUE(by_offset.contains(offset)) << "acknowledged offset " << offset << " lost";
    EXPECT_EQ(by_offset[offset], value_of(id)) << "offset " << offset;
  }
  // The restart read the tail, not the whole segment: the check started at an index entry.
  static const std::regex recovered(
      R"(crash-0: recovered \d+\.log: checked (\d+) bytes from byte (\d+))");
  std::smatch m;
  std::string log = b.log();
  ASSERT_TRUE(std::regex_search(log, m, recovered)) << log;
  EXPECT_GT(std::stoll(m[2].str()), 0) << "recovery read the active segment from its first byte";
}

}  // namespace
}  // namespace sluice::compat

// Durability across a clean restart (SIGTERM) and a crash (kill -9 in the middle of producing).
//
// Client behaviours relied on:
// - A librdkafka delivery report with no error means the broker answered the Produce request
//   with NONE for that partition and gave the batch's base offset; with acks=1 that is the
//   broker's promise that the records are in its log. A process crash (unlike power loss) keeps
//   everything the broker wrote to the page cache, so every acknowledged message must survive
//   kill -9, at the offset it was acknowledged with.
// - librdkafka reconnects to the same host:port after the broker comes back (so the restarted
//   broker must reuse its port: SO_REUSEADDR) and continues producing at the new log end.
// - Unacknowledged messages may or may not be there; whatever is there must be whole records
//   at contiguous offsets (a torn tail batch must be truncated on recovery).

#include <gtest/gtest.h>

#include <atomic>
#include <iostream>
#include <map>
#include <thread>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

std::string key_of(size_t i) {
  std::string k = "k";
  k += std::to_string(i);
  return k;
}

std::string payload(size_t seq) {
  std::string s = std::string("seq=") + std::to_string(seq) + ";";
  while (s.size() < 120)
    s += static_cast<char>('a' + (seq + s.size()) % 26);
  return s;
}

// Reads partition 0 of `topic` from offset 0 to the high watermark; asserts contiguous offsets.
std::vector<message> read_all(const broker& b, const std::string& topic, int64_t* high) {
  simple_consumer c(b.bootstrap(), topic);
  auto [lo, hi] = watermarks(c.get(), topic, 0, 30s);
  EXPECT_EQ(lo, 0);
  *high = hi;
  c.start(0, RD_KAFKA_OFFSET_BEGINNING);
  auto got = c.consume(static_cast<size_t>(hi), 60s);
  EXPECT_EQ(static_cast<int64_t>(got.size()), hi) << "could not read back to the high watermark";
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].offset, static_cast<int64_t>(i)) << "gap or reorder in the recovered log";
    if (got[i].offset != static_cast<int64_t>(i)) break;
  }
  EXPECT_TRUE(c.errors().empty()) << c.errors().front();
  return got;
}

// Produces `n` new messages and checks that they land at hi, hi+1, ... in order.
void produce_more_contiguous(const broker& b, const std::string& topic, int64_t hi, size_t n) {
  producer p(b.bootstrap(), {{"acks", "1"}, {"batch.size", "4096"}});
  std::vector<size_t> ids;
  for (size_t i = 0; i < n; ++i)
    ids.push_back(p.produce(topic, 0, "after", payload(1000000 + i)));
  ASSERT_TRUE(p.flush(30s));
  for (size_t i = 0; i < n; ++i) {
    auto d = p.delivery_of(ids[i]);
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
    ASSERT_EQ(d.offset, hi + static_cast<int64_t>(i)) << "new writes after restart must continue "
                                                         "at the recovered log end";
  }
  simple_consumer c(b.bootstrap(), topic);
  c.start(0, hi);
  auto got = c.consume(n, 30s);
  ASSERT_EQ(got.size(), n);
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(got[i].value, payload(1000000 + i));
}

TEST(Restart, CleanShutdownKeepsEverything) {
  const std::string topic = "clean";
  // Small segments so the restart has several segments and indexes to reopen.
  broker b(config_map{{"log.segment.bytes", "16384"}, {"log.index.interval.bytes", "1024"}});
  constexpr size_t kMessages = 1000;
  {
    // Batches must fit in a segment: Kafka answers a batch larger than log.segment.bytes with
    // RECORD_LIST_TOO_LARGE (18), and librdkafka's default batch.size is ~1 MB.
    producer p(b.bootstrap(), {{"acks", "1"}, {"batch.size", "4096"}});
    for (size_t i = 0; i < kMessages; ++i)
      p.produce(topic, 0, key_of(i), payload(i));
    ASSERT_TRUE(p.flush(30s));
    auto ds = p.deliveries();
    for (size_t i = 0; i < kMessages; ++i) {
      ASSERT_EQ(ds[i].err, RD_KAFKA_RESP_ERR_NO_ERROR);
      ASSERT_EQ(ds[i].offset, static_cast<int64_t>(i));
    }
  }
  uint16_t port = b.port();
  {
    // Shut down with live clients: a consumer parked in a long poll and an idle producer.
    simple_consumer parked(b.bootstrap(), topic, {{"fetch.wait.max.ms", "5000"}});
    parked.start(0, static_cast<int64_t>(kMessages) - 1);
    ASSERT_EQ(parked.consume(1, 10s).size(), 1u);
    producer idle(b.bootstrap());
    ASSERT_EQ(watermarks(idle.get(), topic, 0).second, static_cast<int64_t>(kMessages));
    // Deliberate: give the consumer's next Fetch time to reach the broker and park there.
    std::this_thread::sleep_for(100ms);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(b.stop(), 0) << "SIGTERM must give a clean exit 0, also with clients connected";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << "shutdown took too long";
  }
  b.restart();
  ASSERT_EQ(b.port(), port);

  int64_t hi = -1;
  auto got = read_all(b, topic, &hi);
  ASSERT_EQ(hi, static_cast<int64_t>(kMessages));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].key, key_of(i));
    ASSERT_EQ(got[i].value, payload(i));
  }
  produce_more_contiguous(b, topic, hi, 100);

  // And once more, with the appended data.
  ASSERT_EQ(b.stop(), 0);
  b.restart();
  int64_t hi2 = -1;
  read_all(b, topic, &hi2);
  EXPECT_EQ(hi2, hi + 100);
}

TEST(Restart, KillNineMidProduceKeepsEveryAcknowledgedMessage) {
  const std::string topic = "crash";
  broker b(config_map{{"log.segment.bytes", "65536"}, {"log.index.interval.bytes", "4096"}});

  // A producer thread writes as fast as it can with acks=1 until told to stop.
  producer p(b.bootstrap(), {{"acks", "1"},
                             {"linger.ms", "1"},
                             {"batch.size", "16384"},  // below log.segment.bytes
                             {"message.timeout.ms", "5000"},
                             {"retries", "0"}});
  std::atomic<bool> stop{false};
  std::atomic<size_t> produced{0};
  std::thread writer([&] {
    for (size_t seq = 0; !stop; ++seq) {
      p.produce(topic, 0, std::to_string(seq), payload(seq));
      produced = seq + 1;
      p.poll(0);
    }
  });
  // Kill once a good amount is acknowledged and more is still in flight.
  bool enough = wait_until([&] { return p.acked_count() >= 5000; }, 60s);
  b.kill9();
  stop = true;
  writer.join();
  ASSERT_TRUE(enough) << "only " << p.acked_count() << " messages acknowledged in 60 s";
  // Let librdkafka notice the dead broker and fail what was in flight, then drop the rest: no
  // report may arrive after we take the snapshot below.
  rd_kafka_purge(p.get(), RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  p.poll(100);
  ASSERT_TRUE(p.flush(30s));
  auto ds = p.deliveries();
  size_t acked = 0;
  for (const auto& d : ds)
    acked += d.err == RD_KAFKA_RESP_ERR_NO_ERROR;
  EXPECT_GT(produced.load(), acked) << "nothing was in flight at the kill: not a mid-produce test";

  b.restart();
  int64_t hi = -1;
  auto got = read_all(b, topic, &hi);
  std::cout << "kill -9 with " << produced.load() << " produced, " << acked
            << " acknowledged; recovered log end " << hi << "\n";
  ASSERT_GE(hi, static_cast<int64_t>(acked));

  size_t missing = 0, wrong = 0;
  for (size_t seq = 0; seq < ds.size(); ++seq) {
    const auto& d = ds[seq];
    if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (d.offset < 0 || d.offset >= static_cast<int64_t>(got.size())) {
      if (missing++ < 5)
        ADD_FAILURE() << "acknowledged seq " << seq << " at offset " << d.offset
                      << " is gone after kill -9 (log end " << hi << ")";
      continue;
    }
    const message& m = got[static_cast<size_t>(d.offset)];
    if (m.key != std::to_string(seq) || m.value != payload(seq)) {
      if (wrong++ < 5) ADD_FAILURE() << "offset " << d.offset << " should hold seq " << seq;
    }
  }
  EXPECT_EQ(missing, 0u) << "acknowledged messages lost";
  EXPECT_EQ(wrong, 0u) << "acknowledged offsets hold other data";
  // Everything present is a whole message this producer sent.
  for (const message& m : got) {
    ASSERT_TRUE(m.key.has_value());
    ASSERT_EQ(m.value, payload(std::stoull(*m.key))) << "offset " << m.offset;
  }

  produce_more_contiguous(b, topic, hi, 100);
}

}  // namespace
}  // namespace sluice::compat

// The idempotent producer against duplicated requests: librdkafka with enable.idempotence=true
// talks to the broker through a proxy that cuts the connection just as the broker starts
// answering a Produce request. The broker has appended the batch; the client never learns it and
// sends the same batch again (same producer id, epoch and sequence). The broker must answer the
// retry with success and the original offsets and write nothing, so the partition ends with
// every message exactly once, in order.
//
// Client behaviours relied on:
// - librdkafka's idempotent producer treats a request lost with its connection as "possibly
//   persisted" and retries it with the same sequence numbers (rdkafka_idempotence.c), instead of
//   reordering or renumbering.
// - It gets its producer id from InitProducerId before producing.
// - The restart cases: the proxy refuses connections from the cut until the broker is back, so
//   the retry reaches the restarted broker, whose producer state comes from the .snapshot written
//   at a clean stop, or from replaying the log after kill -9.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/tcp_proxy.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

constexpr int16_t produce_api_key = 0;

std::string value_of(size_t i) {
  return "message-" + std::to_string(i);
}

std::map<std::string, std::string> idempotent_settings() {
  return {{"enable.idempotence", "true"},
          {"acks", "all"},
          {"linger.ms", "2"},
          {"batch.num.messages", "50"},
          {"retry.backoff.ms", "20"},
          {"reconnect.backoff.ms", "20"},
          {"reconnect.backoff.max.ms", "200"},
          {"message.timeout.ms", "60000"}};
}

// Reads partition 0 back (through the proxy, which the broker advertises; the proxy never cuts a
// Fetch) and checks that it holds exactly value_of(0 .. n-1), once each, in order.
void expect_exactly_once_in_order(const broker& b, const std::string& topic, size_t n) {
  simple_consumer c(b.bootstrap(), topic);
  auto [lo, hi] = watermarks(c.get(), topic, 0, 30s);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, static_cast<int64_t>(n)) << "duplicates were written, or messages lost";
  c.start(0, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> got = c.consume(static_cast<size_t>(std::max<int64_t>(hi, 0)), 30s);
  ASSERT_EQ(got.size(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(got[i].value, value_of(i)) << "at offset " << got[i].offset;
    ASSERT_EQ(got[i].offset, static_cast<int64_t>(i));
  }
}

struct proxied_broker {
  tcp_proxy proxy;
  broker b;
  proxied_broker()
      : b({{"advertised.listeners", "PLAINTEXT://127.0.0.1:" + std::to_string(proxy.port())}}) {
    proxy.set_upstream(b.host(), b.port());
  }
  std::string via_proxy() const { return "127.0.0.1:" + std::to_string(proxy.port()); }
};

// Produces value_of(first .. first+n-1) to partition 0 and waits for every delivery report; each
// must succeed, at its exact offset (offset == index: the retries got the original offsets).
void produce_range(producer& p, const std::string& topic, size_t first, size_t n) {
  std::vector<size_t> ids;
  for (size_t i = first; i < first + n; ++i)
    ids.push_back(p.produce(topic, 0, std::nullopt, value_of(i)));
  ASSERT_TRUE(p.flush(60s));
  for (size_t k = 0; k < n; ++k) {
    producer::delivery d = p.delivery_of(ids[k]);
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
    ASSERT_EQ(d.offset, static_cast<int64_t>(first + k));
  }
}

TEST(Idempotence, DuplicatedProduceRequestsAreWrittenOnce) {
  const std::string topic = "idem";
  proxied_broker pb;
  producer p(pb.via_proxy(), idempotent_settings());
  produce_range(p, topic, 0, 100);  // producer id obtained, connection established
  pb.proxy.cut_on_response_to(produce_api_key, 3);
  for (size_t round = 0; round < 3; ++round)
    produce_range(p, topic, 100 + round * 300, 300);
  EXPECT_EQ(pb.proxy.cuts(), 3) << "the fault was not injected";
  expect_exactly_once_in_order(pb.b, topic, 1000);
  EXPECT_NE(pb.b.log().find("duplicate"), std::string::npos)
      << "the broker did not report answering a duplicate";
}

void duplicate_across_restart(bool crash) {
  const std::string topic = crash ? "idem-crash" : "idem-clean";
  proxied_broker pb;
  producer p(pb.via_proxy(), idempotent_settings());
  produce_range(p, topic, 0, 100);
  pb.proxy.cut_on_response_to(produce_api_key, 1, /*then_refuse=*/true);
  std::vector<size_t> ids;
  for (size_t i = 100; i < 400; ++i)
    ids.push_back(p.produce(topic, 0, std::nullopt, value_of(i)));
  ASSERT_TRUE(wait_until([&] { return pb.proxy.cuts() == 1; }, 30s));
  // The broker appended the batch the client is about to retry; restart it underneath.
  if (crash) {
    pb.b.kill9();
    pb.b.restart();
  } else {
    ASSERT_EQ(pb.b.stop(), 0);
    pb.b.restart();
  }
  pb.proxy.set_upstream(pb.b.host(), pb.b.port());
  ASSERT_TRUE(p.flush(60s));
  EXPECT_NE(pb.b.log().find("duplicate"), std::string::npos)
      << "the restarted broker did not see the retried batch as a duplicate";
  for (size_t k = 0; k < ids.size(); ++k) {
    producer::delivery d = p.delivery_of(ids[k]);
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
    ASSERT_EQ(d.offset, static_cast<int64_t>(100 + k));
  }
  expect_exactly_once_in_order(pb.b, topic, 400);
}

TEST(Idempotence, DuplicateAfterCleanRestartIsWrittenOnce) {
  duplicate_across_restart(false);
}

TEST(Idempotence, DuplicateAfterCrashIsWrittenOnce) {
  duplicate_across_restart(true);
}

// Producer ids are never handed out twice, even across restarts.
TEST(Idempotence, ProducerIdsAreUniqueAcrossRestarts) {
  broker b;
  auto producer_id_of = [&] {
    producer p(b.bootstrap(), {{"enable.idempotence", "true"}});
    size_t id = p.produce("ids", 0, std::nullopt, std::string("x"));
    EXPECT_TRUE(p.flush(30s));
    EXPECT_EQ(p.delivery_of(id).err, RD_KAFKA_RESP_ERR_NO_ERROR);
    // librdkafka exposes its producer id only in debug logs; the broker's log carries none per
    // producer either. The batch header on disk has it: read the newest batch's producer id.
    std::string log = read_partition_log(b.partition_dir("ids", 0));
    if (log.size() < 61) {
      ADD_FAILURE() << "no batch on disk";
      return int64_t{-1};
    }
    // Walk to the last batch: base offset (8) | length (4) | ... producerId at byte 43.
    size_t at = 0;
    size_t last = 0;
    while (at + 12 <= log.size()) {
      last = at;
      uint32_t len = 0;
      for (int i = 8; i < 12; ++i)
        len = (len << 8) | static_cast<uint8_t>(log[at + static_cast<size_t>(i)]);
      at += 12 + len;
    }
    int64_t pid = 0;
    for (int i = 43; i < 51; ++i)
      pid = (pid << 8) | static_cast<uint8_t>(log[last + static_cast<size_t>(i)]);
    return pid;
  };
  int64_t first = producer_id_of();
  int64_t second = producer_id_of();
  EXPECT_GE(first, 0);
  EXPECT_NE(first, second);
  b.kill9();
  b.restart();
  int64_t third = producer_id_of();
  EXPECT_GT(third, std::max(first, second)) << "an id was reused after a crash";
  // Even with the reservation file lost, ids stay above those the partitions remember.
  ASSERT_EQ(b.stop(), 0);
  ASSERT_TRUE(std::filesystem::remove(b.data_dir() / "producer-id-block"));
  b.restart();
  EXPECT_GT(producer_id_of(), third) << "an id known to a partition was handed out again";
}

}  // namespace
}  // namespace sluice::compat

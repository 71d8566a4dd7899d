// Fetch long polling: waiting consumers are woken by new data, idle fetches wait max_wait_ms.
//
// Client behaviours relied on:
// - librdkafka keeps one Fetch outstanding per broker with MaxWaitTime = fetch.wait.max.ms and
//   MinBytes = fetch.min.bytes, and sends the next one as soon as the previous answer arrives
//   (no backoff after an empty answer), so at the end of a partition there is almost always a
//   Fetch parked at the broker. A broker that only answers at max_wait delays every message by up
//   to fetch.wait.max.ms; a broker that answers empty fetches at once makes every idle consumer
//   spin (README 6.8: "honour max_wait_ms/min_bytes instead of answering empty at once").
// - The legacy consumer starts at an explicit offset without ListOffsets.

#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/tcp_proxy.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

double ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Creates `topic` through a Metadata request and waits until its partition 0 is queryable.
void create_topic(const broker& b, producer& p, const std::string& topic) {
  raw_connection conn(b.host(), b.port());
  round_trip(conn, metadata_v4_request(1, {topic}, true));
  int64_t lo, hi;
  ASSERT_TRUE(wait_until([&] {
    return rd_kafka_query_watermark_offsets(p.get(), topic.c_str(), 0, &lo, &hi, 2000) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
  }));
}

TEST(LongPoll, WaitingConsumerIsWokenByProduce) {
  const std::string topic = "wakeup";
  broker b;
  producer p(b.bootstrap(), {{"linger.ms", "0"}, {"acks", "1"}});
  simple_consumer c(b.bootstrap(), topic,
                    {{"fetch.wait.max.ms", "5000"}, {"fetch.min.bytes", "1"}});
  create_topic(b, p, topic);
  c.start(0, 0);

  std::vector<double> latencies;
  for (int round = 0; round < 5; ++round) {
    // Deliberate idle period, not a wait for a condition: the consumer's next Fetch must be
    // parked at the broker when the message arrives. 300 ms is far above librdkafka's
    // fetch turnaround and far below fetch.wait.max.ms.
    std::this_thread::sleep_for(300ms);
    size_t id = p.produce(topic, 0, "k", "wake-" + std::to_string(round));
    ASSERT_TRUE(p.flush(10s));
    auto d = p.delivery_of(id);
    ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR);
    auto got = c.consume(1, 10s);
    ASSERT_EQ(got.size(), 1u) << "round " << round;
    EXPECT_EQ(got[0].value, "wake-" + std::to_string(round));
    EXPECT_EQ(got[0].offset, round);
    latencies.push_back(ms_between(d.at, got[0].received));
  }
  std::cout << "produce-ack -> consume latencies (ms):";
  for (double l : latencies)
    std::cout << " " << l;
  std::cout << "\n";
  // The bound tells a wake-up from the 5000 ms timeout with room for a loaded 2-core CI machine
  // (one round took over 100 ms while builds and benchmarks saturated both cores). The printed
  // figures, about 0.1 ms, and bench/ are where the speed itself is shown.
  for (size_t i = 0; i < latencies.size(); ++i) {
    EXPECT_LT(latencies[i], 1000.0)
        << "round " << i << ": produce-ack -> consume took " << latencies[i]
        << " ms with fetch.wait.max.ms=5000; a parked Fetch must be answered when data arrives";
  }
  EXPECT_TRUE(c.errors().empty()) << c.errors().front();
}

TEST(LongPoll, RawFetchWaitsMaxWaitOnEmptyPartitionAndWakesOnData) {
  const std::string topic = "idle";
  broker b;
  producer p(b.bootstrap(), {{"linger.ms", "0"}, {"acks", "1"}});
  create_topic(b, p, topic);

  raw_connection conn(b.host(), b.port());
  for (int i = 0; i < 3; ++i) {
    auto t0 = clock_type::now();
    bytes resp = round_trip(conn, fetch_request(4, 10 + i, topic, 0, 0, /*max_wait_ms=*/300,
                                                /*min_bytes=*/1));
    double took = ms_between(t0, clock_type::now());
    std::cout << "idle fetch (max_wait_ms=300) answered after " << took << " ms\n";
    response r = split_response(resp, false);
    EXPECT_EQ(r.correlation_id, 10 + i);
    auto parts = parse_fetch_v4(r.body);
    ASSERT_EQ(parts.size(), 1u) << "a fetch response lists every requested partition";
    EXPECT_EQ(parts[0].error_code, 0);
    EXPECT_EQ(parts[0].high_watermark, 0);
    EXPECT_TRUE(parts[0].records.empty());
    EXPECT_GE(took, 280.0) << "empty fetch answered before max_wait_ms (300)";
    EXPECT_LT(took, 2000.0) << "empty fetch held far beyond max_wait_ms (300)";
  }

  // A parked raw fetch (5 s) is answered as soon as a message is acknowledged.
  ASSERT_TRUE(conn.send(fetch_request(4, 20, topic, 0, 0, 5000, 1)));
  std::this_thread::sleep_for(100ms);  // let the fetch park; see WaitingConsumerIsWokenByProduce
  size_t id = p.produce(topic, 0, "k", "v");
  ASSERT_TRUE(p.flush(10s));
  auto d = p.delivery_of(id);
  ASSERT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR);
  bytes resp;
  ASSERT_EQ(conn.read_frame(resp, 10s), raw_connection::status::ok);
  double latency = ms_between(d.at, clock_type::now());
  std::cout << "parked fetch answered " << latency << " ms after the produce ack\n";
  EXPECT_LT(latency, 100.0) << "parked Fetch answered " << latency << " ms after the produce ack";
  auto parts = parse_fetch_v4(split_response(resp, false).body);
  ASSERT_EQ(parts.size(), 1u);
  EXPECT_EQ(parts[0].high_watermark, 1);
  auto batches = split_batches(parts[0].records);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(byte_reader(batches[0].subspan(0, 8)).i64(), 0) << "base offset";
}

TEST(LongPoll, IdleConsumerDoesNotSpin) {
  const std::string topic = "quiet";
  tcp_proxy proxy;
  broker b(config_map{
      {"advertised.listeners", "PLAINTEXT://127.0.0.1:" + std::to_string(proxy.port())}});
  proxy.set_upstream(b.host(), b.port());
  const std::string via_proxy = "127.0.0.1:" + std::to_string(proxy.port());

  producer p(via_proxy, {{"linger.ms", "0"}});
  p.produce(topic, 0, "k", "v");
  ASSERT_TRUE(p.flush(30s));

  simple_consumer c(via_proxy, topic, {{"fetch.wait.max.ms", "500"}});
  c.start(0, 1);  // at the end

  auto fetches = [&] {
    size_t n = 0;
    for (const auto& s : proxy.client_streams()) {
      for (int16_t k : request_api_keys(s))
        n += (k == 1);
    }
    return n;
  };
  ASSERT_TRUE(wait_until([&] { return fetches() >= 1; })) << "the consumer never fetched";

  double cpu0 = b.cpu_seconds();
  size_t f0 = fetches();
  std::this_thread::sleep_for(2s);  // the idle window being measured
  double cpu = b.cpu_seconds() - cpu0;
  size_t n = fetches() - f0;
  std::cout << "idle 2 s: " << n << " fetch requests, broker CPU " << cpu << " s\n";

  EXPECT_LE(n, 7u) << "fetch.wait.max.ms=500 allows ~4 fetches in 2 s; the broker answered idle "
                      "fetches early, so the client spun";
  EXPECT_GE(n, 2u) << "the consumer stopped fetching: idle fetches must be answered at max_wait_ms";
  EXPECT_LT(cpu, 0.25) << "broker used " << cpu << " s of CPU in a 2 s idle window";
  EXPECT_TRUE(c.errors().empty()) << c.errors().front();
}

}  // namespace
}  // namespace sluice::compat

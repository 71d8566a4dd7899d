#pragma once
// What the cluster tests write and check (compat_cluster_test): numbered values, an idempotent
// acks=all producer on a thread of its own, and the check that every acknowledged value is read
// exactly once.
//
// Threading: a paced_producer writes from its own thread; everything else is called from the
// test's main thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "compat_tests/cluster_fixture.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {

// The value producer `producer` sends as its message `seq`. Built by appending: GCC 12 warns
// falsely (-Wrestrict) on "literal" + std::string here.
std::string value_of(int producer, int seq);

// An idempotent acks=all producer writing value_of(0, seq) to the topic's partitions in turn,
// paced, from a thread of its own until stop() (or its destruction, after a failed ASSERT).
class paced_producer {
 public:
  paced_producer(cluster& c, std::string topic, int32_t partitions)
      : prod_(c.bootstrap(), {{"enable.idempotence", "true"},
                              {"acks", "all"},
                              {"linger.ms", "5"},
                              {"message.timeout.ms", "120000"}}),
        topic_(std::move(topic)),
        partitions_(partitions),
        writer_([this] { run(); }) {}
  ~paced_producer() { stop(); }
  paced_producer(const paced_producer&) = delete;
  paced_producer& operator=(const paced_producer&) = delete;

  int sent() const { return sent_.load(); }
  void stop() {
    stop_ = true;
    if (writer_.joinable()) writer_.join();
  }
  // After stop(): waits for every delivery report; the acknowledged values, with the failures
  // (failed deliveries, the writer's exception, a flush that timed out) counted in `failed` and
  // the first one named in `error`.
  std::set<std::string> acknowledged(size_t& failed, std::string& error) {
    error = thread_error_;
    failed = thread_error_.empty() ? 0 : 1;
    std::set<std::string> acked;
    if (!prod_.flush(std::chrono::seconds(120))) {
      ++failed;
      error += " (flush timed out)";
    }
    const auto deliveries = prod_.deliveries();
    for (size_t seq = 0; seq < deliveries.size(); ++seq) {
      if (!deliveries[seq].done || deliveries[seq].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (failed++ == 0 && error.empty()) error = rd_kafka_err2str(deliveries[seq].err);
        continue;
      }
      acked.insert(value_of(0, static_cast<int>(seq)));
    }
    return acked;
  }

 private:
  void run() {
    try {
      for (int seq = 0; !stop_.load(); ++seq) {
        prod_.produce(topic_, seq % partitions_, "k", value_of(0, seq));
        sent_ = seq + 1;
        if (seq % 20 == 19) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    } catch (const std::exception& e) {
      thread_error_ = e.what();
    }
  }

  producer prod_;
  std::string topic_;
  int32_t partitions_;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::string thread_error_;
  std::thread writer_;  // last: it starts once the rest is built
};

// Reads the topic's partitions from the beginning (at least `acked.size()` records, then what
// else arrives within a second) and checks that each acknowledged value is there exactly once.
// Returns how many records were read.
size_t expect_each_read_once(cluster& c, const std::string& topic, int32_t partitions,
                             const std::set<std::string>& acked, const std::string& bootstrap);

// Writes prefix0..prefix<n-1> to the topic's partition with acks=all through the brokers `via`;
// how many were acknowledged (0 if the flush timed out). A delivery error fails the test.
size_t produce_acks_all(cluster& c, const std::vector<int32_t>& via, const std::string& topic,
                        int32_t partition, const std::string& prefix, int n);

// Waits (20 s at most) until brokers a and b hold byte-identical .log files for the partition;
// the files as last read go to *log_a and *log_b.
bool replica_logs_match(cluster& c, int32_t a, int32_t b, const std::string& topic,
                        int32_t partition, std::string* log_a, std::string* log_b);

}  // namespace sluice::compat

#include "compat_tests/cluster_workload.h"

#include <gtest/gtest.h>

#include <map>
#include <vector>

namespace sluice::compat {

using namespace std::chrono_literals;

std::string value_of(int producer, int seq) {
  std::string v = "p";
  v += std::to_string(producer);
  v += '-';
  v += std::to_string(seq);
  return v;
}

// Reads the topic's partitions from the beginning (at least `acked.size()` records, then what
// else arrives within a second) and checks that each acknowledged value is there exactly once.
// Returns how many records were read.
size_t expect_each_read_once(cluster& c, const std::string& topic, int32_t partitions,
                             const std::set<std::string>& acked, const std::string& bootstrap) {
  simple_consumer consumer(bootstrap, topic, {{"fetch.wait.max.ms", "100"}});
  for (int32_t p = 0; p < partitions; ++p)
    consumer.start(p, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> read = consumer.consume(acked.size(), 60s);
  std::this_thread::sleep_for(500ms);
  std::vector<message> more = consumer.consume(1000000, 1s);
  read.insert(read.end(), more.begin(), more.end());
  std::map<std::string, int> times_read;
  for (const message& m : read)
    ++times_read[m.value.value_or("<null>")];
  size_t missing = 0;
  for (const std::string& v : acked)
    missing += times_read.contains(v) ? 0 : 1;
  size_t duplicated = 0;
  for (const auto& [v, n] : times_read)
    duplicated += n > 1 ? 1 : 0;
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged" << c.logs_tail();
  EXPECT_EQ(duplicated, 0u);
  return read.size();
}

size_t produce_acks_all(cluster& c, const std::vector<int32_t>& via, const std::string& topic,
                        int32_t partition, const std::string& prefix, int n) {
  producer p(c.bootstrap(via), {{"acks", "all"}});
  for (int i = 0; i < n; ++i)
    p.produce(topic, partition, "k", prefix + std::to_string(i));
  const bool flushed = p.flush(30s);
  for (const producer::delivery& d : p.deliveries()) {
    if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      ADD_FAILURE() << prefix << ": " << rd_kafka_err2str(d.err);
      break;
    }
  }
  return flushed ? p.acked_count() : 0;
}

bool replica_logs_match(cluster& c, int32_t a, int32_t b, const std::string& topic,
                        int32_t partition, std::string* log_a, std::string* log_b) {
  return wait_until(
      [&] {
        *log_a = read_partition_log(c.node(a).partition_dir(topic, partition));
        *log_b = read_partition_log(c.node(b).partition_dir(topic, partition));
        return *log_a == *log_b;
      },
      20s);
}

}  // namespace sluice::compat

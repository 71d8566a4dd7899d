#pragma once
// A Sluice cluster for the compat tests: one private etcd (etcd_process, on free loopback ports)
// and three `broker`s with node.id 1, 2 and 3, each on 127.0.0.1 port 0 with its own data dir,
// joined through metadata.etcd.endpoints under a prefix of their own
// (/sluice-test-<pid>-<n>-<random>), with timings small enough for tests
// (replica.lag.time.max.ms=3000; broker.session.timeout.ms=6000, so that a follower stopped for
// one lag time leaves the ISR well before its session expires, and a controlled shutdown that
// cannot move a leadership gives up within about a second).
//
// What it offers on top of the brokers: Metadata v12 and DescribeCluster v0 asked of one chosen
// broker over raw sockets (each broker's own view, with replicas and ISR, never a client's merged
// one), waits for the cluster to agree on its brokers and controller and on a topic's partitions,
// topics created and deleted with librdkafka's admin API, base64 for etcd's gateway, and a guard
// that SIGSTOPs a broker and always SIGCONTs it.
//
// Threading: like `broker`, a cluster is used from the test's main thread (the children are tied
// to the thread that forked them by PR_SET_PDEATHSIG).

#include <librdkafka/rdkafka.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "server/coordination/testing/etcd_process.h"

namespace sluice::compat {

using etcd_process = server::coordination::testing::etcd_process;

// A Metadata v12 answer (raw_kafka.h), brokers sorted by node id and partitions by index.
struct cluster_metadata : metadata_v12 {
  using broker_entry = metadata_broker;
  const topic* find(const std::string& name) const;
  std::vector<int32_t> node_ids() const;
};

// DescribeCluster v0.
struct cluster_description {
  int16_t error_code = 0;
  std::string cluster_id;
  int32_t controller_id = -1;
  std::vector<cluster_metadata::broker_entry> brokers;  // sorted by node id
};

// Metadata v12 and DescribeCluster v0 asked of the broker at host:port; throws on a failure.
cluster_metadata fetch_metadata(const std::string& host, uint16_t port,
                                const std::vector<std::string>& topics, bool all_topics = false);
cluster_description describe_cluster(const std::string& host, uint16_t port);

// librdkafka's admin API (CreateTopics, DeleteTopics) with one reply queue.
class cluster_admin {
 public:
  explicit cluster_admin(const std::string& bootstrap);
  ~cluster_admin();
  cluster_admin(const cluster_admin&) = delete;
  cluster_admin& operator=(const cluster_admin&) = delete;

  // The topic's error; its message in *message when there is one.
  rd_kafka_resp_err_t create(const std::string& name, int partitions, int replication_factor,
                             const std::map<std::string, std::string>& configs = {},
                             std::string* message = nullptr);
  rd_kafka_resp_err_t remove(const std::string& name);

 private:
  rd_kafka_event_t* wait(std::chrono::milliseconds timeout);
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
};

// SIGSTOPs a process and returns once every thread of it is stopped; SIGCONTs it when it goes
// (or at resume()), so that a failing test leaves nothing stopped.
class stopped_process {
 public:
  explicit stopped_process(pid_t pid);
  ~stopped_process() { resume(); }
  stopped_process(const stopped_process&) = delete;
  stopped_process& operator=(const stopped_process&) = delete;
  void resume();

 private:
  pid_t pid_;
};

class cluster {
 public:
  static constexpr int size = 3;
  static constexpr int64_t replica_lag_time_max_ms = 3000;
  static constexpr int64_t session_timeout_ms = 6000;

  // Starts etcd and brokers 1, 2 and 3 with `extra` added to each broker's config, then waits
  // until every broker's Metadata lists all three and the same controller (throws if not).
  // `per_node` adds to (or overrides) one broker's config: its rack, for instance.
  // `before_brokers` runs once etcd is up and before any broker starts; it may add to
  // `per_node`: a caller that puts proxies between the brokers and etcd learns etcd's port there.
  using before_brokers_hook =
      std::function<void(etcd_process&, std::map<int32_t, config_map>& per_node)>;
  explicit cluster(config_map extra = {}, std::map<int32_t, config_map> per_node = {},
                   const before_brokers_hook& before_brokers = {});
  ~cluster();
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  etcd_process& etcd() { return *etcd_; }
  const std::string& prefix() const { return prefix_; }
  // Broker `node_id` (1-3).
  broker& node(int32_t node_id) { return *brokers_.at(static_cast<size_t>(node_id - 1)); }
  // Every broker's address, comma-separated; or only those of `nodes`.
  std::string bootstrap(const std::vector<int32_t>& nodes = {1, 2, 3});
  // What a broker of this cluster is started with (a fifth one, a duplicate): etcd endpoints,
  // prefix, timings, the `extra` of the constructor, and node.id.
  config_map broker_config(int32_t node_id) const;

  cluster_metadata metadata(int32_t node_id, const std::vector<std::string>& topics = {},
                            bool all_topics = false);
  cluster_description describe(int32_t node_id);

  // Waits until each broker of `asked` answers Metadata and DescribeCluster listing exactly
  // `expected` brokers and one controller they agree on; returns that controller, or -1 on
  // timeout (the test then fails with the last answers seen).
  int32_t wait_for_brokers(const std::vector<int32_t>& asked, const std::vector<int32_t>& expected,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Waits until each broker of `asked` lists `topic` with `partitions` partitions, each with a
  // leader among its `replication_factor` replicas and a full ISR, all brokers agreeing; returns
  // the topic as seen by the first of `asked`, or nullopt on timeout.
  std::optional<cluster_metadata::topic> wait_for_topic(
      const std::string& topic, int partitions, int replication_factor,
      const std::vector<int32_t>& asked = {1, 2, 3},
      std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // CreateTopics through librdkafka's admin API bootstrapped on `via` (the request goes to the
  // controller named in Metadata); then waits for the topic as above. Returns the topic's error.
  rd_kafka_resp_err_t create_topic(const std::string& name, int partitions, int replication_factor,
                                   const std::map<std::string, std::string>& configs = {},
                                   int32_t via = 1, std::string* message = nullptr);
  // Leader of topic/partition in `asked`'s Metadata; -1 if none.
  int32_t leader_of(const std::string& topic, int32_t partition, int32_t asked = 1);

  // Last lines of every broker's stderr, for failure messages.
  std::string logs_tail(size_t bytes_per_broker = 3000);

 private:
  std::unique_ptr<etcd_process> etcd_;
  std::string prefix_;
  config_map extra_;
  std::map<int32_t, config_map> per_node_;
  std::vector<std::unique_ptr<broker>> brokers_;
};

// Standard base64 (etcd's gateway encodes keys and values with it).
std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text);

// The partition's records from its .log segment files as (base offset, record count) per batch.
struct batch_span {
  int64_t base_offset = 0;
  int32_t records = 0;
};
std::vector<batch_span> batches_of(const std::string& log_bytes);

}  // namespace sluice::compat

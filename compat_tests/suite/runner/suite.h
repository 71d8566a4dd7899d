#pragma once
// The broker-neutral suite's C++ runner: scenarios, the context they run in, and the client-side
// helpers they share. See ../README.md for the contract every runner follows.
//
// A scenario is a function that throws `failure` (through `check`) when the broker does not behave
// as Kafka does, and `skipped` when the broker does not advertise what the scenario needs. It only
// does what a client can do: it never starts, stops or inspects the broker.
//
// Threading: scenarios run one at a time on the main thread; librdkafka's own threads stay inside
// the RAII wrappers of compat_tests/rdkafka_helpers.h.

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::compat::suite {

struct failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct skipped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check(bool condition, const std::string& what) {
  if (!condition) throw failure(what);
}

// Kafka's API keys used to choose scenarios (the protocol guide's table).
namespace api {
inline constexpr int16_t produce = 0, fetch = 1, list_offsets = 2, metadata = 3, offset_commit = 8,
                         offset_fetch = 9, find_coordinator = 10, join_group = 11, heartbeat = 12,
                         leave_group = 13, sync_group = 14, describe_groups = 15, list_groups = 16,
                         api_versions = 18, create_topics = 19, delete_topics = 20,
                         delete_records = 21, init_producer_id = 22, describe_configs = 32,
                         alter_configs = 33, create_partitions = 37, delete_groups = 42,
                         elect_leaders = 43, alter_partition_reassignments = 45,
                         list_partition_reassignments = 46;
std::string_view name(int16_t key);
}  // namespace api

// What the broker advertises in ApiVersions: key -> [min, max].
class api_versions {
 public:
  void add(int16_t key, int16_t min, int16_t max) { ranges_[key] = {min, max}; }
  bool has(int16_t key, int16_t min_version = 0) const;
  std::optional<int16_t> max_version(int16_t key) const;
  const std::map<int16_t, std::pair<int16_t, int16_t>>& ranges() const { return ranges_; }

  // The ApiVersions exchange a current client starts with: v3 (KIP-511), falling back to the
  // version range the broker names in its UNSUPPORTED_VERSION answer (v0 body), as clients do.
  static api_versions probe(const std::string& bootstrap, std::chrono::milliseconds timeout);
  // The `api_key min max` lines of --api-versions files.
  static api_versions load(const std::string& path);
  std::string to_lines() const;

 private:
  std::map<int16_t, std::pair<int16_t, int16_t>> ranges_;
};

// RAII for librdkafka admin results.
struct event_deleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
using event_ptr = std::unique_ptr<rd_kafka_event_t, event_deleter>;

// librdkafka's Admin API on a producer handle, one request at a time.
class admin {
 public:
  explicit admin(const std::string& bootstrap);
  ~admin();
  admin(const admin&) = delete;
  admin& operator=(const admin&) = delete;

  struct topic_error {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    std::string message;
  };
  topic_error create_topic(const std::string& name, int partitions, int replication_factor,
                           const std::map<std::string, std::string>& configs = {});
  topic_error delete_topic(const std::string& name);
  topic_error create_partitions(const std::string& topic, int new_total);
  // DescribeConfigs of a topic (or, with `broker`, of a broker id): name -> value (nullopt for a
  // sensitive or null value). Throws `failure` on a resource error.
  std::map<std::string, std::optional<std::string>> describe_topic_configs(
      const std::string& topic);
  topic_error alter_topic_configs(const std::string& topic,
                                  const std::map<std::string, std::string>& configs);
  // DeleteRecords below `offset` on one partition: the new low watermark, or the error.
  std::pair<topic_error, int64_t> delete_records(const std::string& topic, int32_t partition,
                                                 int64_t offset);
  std::vector<std::string> list_groups();
  struct group_description {
    topic_error error;
    std::string state;
    std::vector<std::string> member_ids;
    std::vector<std::string> instance_ids;
  };
  group_description describe_group(const std::string& group);
  topic_error delete_group(const std::string& group);
  // OffsetFetch through the Admin API: partition -> committed offset (-1 when none, as Kafka
  // answers).
  std::map<int32_t, int64_t> committed(const std::string& group, const std::string& topic,
                                       const std::vector<int32_t>& partitions);

  // Metadata: every topic's name and its partitions' leaders (-1 when leaderless or in error).
  std::map<std::string, std::vector<int32_t>> topics();
  rd_kafka_t* get() const { return rk_; }

 private:
  event_ptr run(rd_kafka_event_type_t type, const std::function<void(rd_kafka_queue_t*)>& send);
  rd_kafka_AdminOptions_t* options(rd_kafka_admin_op_t op);

  rd_kafka_t* rk_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
};

class context {
 public:
  context(std::string client, std::string bootstrap, std::string prefix, api_versions apis,
          std::chrono::milliseconds timeout);

  const std::string& bootstrap() const { return bootstrap_; }
  const api_versions& apis() const { return apis_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // `<prefix><client>-<scenario with dots as dashes>[-suffix]`, for topics and groups.
  std::string name(std::string_view suffix = {}) const;
  void set_scenario(std::string_view scenario) { scenario_ = scenario; }

  // Skips the scenario unless the broker advertises `key` at `min_version` or above.
  void require(int16_t key, int16_t min_version = 0) const;

  // Creates a topic through CreateTopics and waits until Metadata shows a leader for every
  // partition. The replication factor is the broker's default (-1, KIP-464) where CreateTopics
  // v4+ is advertised, else 1. A broker without CreateTopics (an old or a mock one) gets a
  // Metadata request that allows auto-creation instead; the topic then has the broker's default
  // partition count, and the scenario is skipped if that is fewer than `partitions`.
  std::string create_topic(std::string_view suffix, int partitions,
                           const std::map<std::string, std::string>& configs = {});
  // The same with the full name given (kcat.sh's topics); returns the partition count.
  int create_topic_named(const std::string& topic, int partitions,
                         const std::map<std::string, std::string>& configs = {});
  // The partition count of a topic this context created.
  int partition_count(const std::string& topic) const { return partitions_.at(topic); }
  int default_replication_factor() const;

  admin& admin_client();

  // The host and port of the broker that leads `partition`, as Metadata names it: raw requests
  // that need the leader (Produce, Fetch, ListOffsets) go there, as a client's would.
  std::pair<std::string, uint16_t> leader_address(const std::string& topic, int32_t partition);

  // Polls `condition` until it holds or the scenario's deadline passes; false on timeout.
  bool wait_for(const std::function<bool()>& condition) const;

 private:
  std::string client_;
  std::string bootstrap_;
  std::string prefix_;
  api_versions apis_;
  std::chrono::milliseconds timeout_;
  std::string scenario_;
  std::unique_ptr<admin> admin_;
  std::map<std::string, int> partitions_;
};

struct scenario {
  std::string client;  // "rdkafka" or "raw"
  std::string name;    // e.g. "produce.keys_headers"
  std::function<void(context&)> run;
};

// Each file of scenarios appends its own, in the order they are reported.
void add_produce_scenarios(std::vector<scenario>& out);
void add_offsets_scenarios(std::vector<scenario>& out);
void add_group_scenarios(std::vector<scenario>& out);
void add_admin_scenarios(std::vector<scenario>& out);
void add_raw_scenarios(std::vector<scenario>& out);

// The first host:port of a bootstrap list.
std::pair<std::string, uint16_t> first_broker(const std::string& bootstrap);

std::string err_name(rd_kafka_resp_err_t err);

}  // namespace sluice::compat::suite

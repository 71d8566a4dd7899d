#pragma once
// A broker's copy of the cluster state under `metadata.etcd.prefix` (records.h), built from one
// read at a revision and kept current by applying the watch's events in order. Every broker holds
// one and answers Metadata and DescribeCluster from it; the controller decides from it.
//
// A malformed key or value is skipped with a line in `problems`, never a crash: the store may hold
// another version's records or a human's edit, and one bad key must not stop a broker.
//
// Threading: io thread only; a value with no I/O.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/cluster/records.h"
#include "server/coordination/metadata_store.h"
#include "wire/codec.h"

namespace sluice::server::cluster {

struct live_broker {
  broker_record record;
  // The registration key's create_revision: Kafka's broker epoch (Fetch v15 ReplicaEpoch). A
  // broker that restarts registers anew and gets a new epoch.
  int64_t epoch = 0;
};

struct elected_controller {
  int32_t node_id = -1;
  // The election key's create_revision: every write of this controller compares it, so that a
  // deposed controller's writes fail.
  int64_t epoch = 0;
};

struct partition_state {
  partition_record record;
  // The key's mod_revision: what an AlterPartition compares, so that a request based on an older
  // state fails.
  int64_t partition_epoch = 0;
};

class metadata_image {
 public:
  explicit metadata_image(std::string prefix) : prefix_(std::move(prefix)) {}

  // Replaces the whole state with a read of the prefix at `revision`.
  void reset(const std::vector<coordination::key_value>& kvs, int64_t revision,
             std::vector<std::string>& problems);
  // Applies watch events, in order.
  void apply(const std::vector<coordination::watch_event>& events,
             std::vector<std::string>& problems);

  const std::string& prefix() const { return prefix_; }
  // The revision the state reflects: that of the read, or of the last event applied.
  int64_t revision() const { return revision_; }
  const std::string& cluster_id() const { return cluster_id_; }
  const std::map<int32_t, live_broker>& brokers() const { return brokers_; }
  const live_broker* broker(int32_t node_id) const;
  const std::optional<elected_controller>& controller() const { return controller_; }

  const std::map<wire::uuid, topic_record>& topics() const { return topics_; }
  const topic_record* topic(const wire::uuid& id) const;
  // The id the name maps to, if the name and its topic both exist.
  std::optional<wire::uuid> topic_id(std::string_view name) const;
  const partition_state* partition(const wire::uuid& id, int32_t index) const;
  // Every partition of the topic whose state is known, by index.
  std::map<int32_t, const partition_state*> partitions(const wire::uuid& id) const;

 private:
  void put(const coordination::key_value& kv, std::vector<std::string>& problems);
  void erase(std::string_view key);

  std::string prefix_;
  int64_t revision_ = 0;
  std::string cluster_id_;
  std::map<int32_t, live_broker> brokers_;
  std::optional<elected_controller> controller_;
  std::map<std::string, wire::uuid, std::less<>> topic_names_;
  std::map<wire::uuid, topic_record> topics_;
  std::map<std::pair<wire::uuid, int32_t>, partition_state> partitions_;
};

}  // namespace sluice::server::cluster

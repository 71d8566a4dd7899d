#pragma once
// The topics this broker holds, rebuilt at start from the partition directories storage loaded
// (topic ids from each partition's `partition.metadata`), and created on demand.
//
// Creating and deleting touch the disk, so they run as storage jobs on the disk executor and
// complete later on the io thread. While its files are being created a topic is "creating": it
// is not found (find() is null) but the name is taken, and requests for it answer
// LEADER_NOT_AVAILABLE, as Kafka answers during creation. A deleted topic leaves the registry at
// once, so that its name can be used again at once; storage orders the new directory after the
// old one's deletion.
//
// Threading: io thread only.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/config.h"
#include "server/partition.h"
#include "server/topic_config.h"
#include "storage/log.h"
#include "wire/codec.h"
#include "wire/error_code.h"

namespace sluice::server {

struct topic {
  std::string name;
  wire::uuid id{};
  bool internal = false;
  // Shared: a parked fetch keeps the partitions it waits on (see partition.h).
  std::vector<std::shared_ptr<partition>> partitions;
  // The topic's own configs (CreateTopics, AlterConfigs); the rest follow the broker.
  topic_overrides configs;
  // CreatePartitions is creating new partitions' files.
  bool growing = false;

  // The partition with that index if this broker holds it (in a cluster, a broker holds only
  // the partitions it is a replica of; `partitions` stays in index order).
  partition* find_partition(int32_t index) const;
};

class topic_registry {
 public:
  using create_callback = std::function<void(wire::error_code, topic*)>;
  using done_callback = std::function<void(wire::error_code)>;

  topic_registry(storage::log_manager& logs, const broker_config& config);

  // Groups the loaded logs into topics; gives a topic id to partitions that lack one.
  std::error_code load();
  // After load(): reads the persisted topic configs (topic_config.h), keeps those whose topic id
  // matches a loaded topic and applies them to its logs. Returns an error message, or "".
  std::string load_configs();

  topic* find(std::string_view name);
  partition* find_partition(std::string_view topic, int32_t index);
  const std::map<std::string, topic, std::less<>>& all() const { return topics_; }
  // Names whose files are being created, with their partition count.
  bool creating(std::string_view name) const { return creating_.contains(name); }
  const std::map<std::string, int32_t, std::less<>>& all_creating() const { return creating_; }

  // Creates `name` with `partitions` partitions: the partitions' directories and files are made
  // by disk jobs, in parallel, and `done` runs once they all exist (with the topic) or one failed
  // (KAFKA_STORAGE_ERROR, and the others are removed again: all or nothing). Errors given at once
  // are Kafka's: INVALID_TOPIC_EXCEPTION for a bad name, TOPIC_ALREADY_EXISTS (also while the
  // name is being created), INVALID_PARTITIONS. `configs` must be valid
  // (validate_topic_overrides); they are kept in memory only, the caller persists them
  // (save_topic_configs). `id` zero: a fresh random topic id. `done` may run before the call
  // returns.
  void create_async(std::string_view name, int32_t partitions, const topic_overrides& configs,
                    wire::uuid id, create_callback done);
  // The same, blocking: at start-up (the broker's own internal topics) and in tests.
  wire::error_code create(std::string_view name, int32_t partitions, topic*& out,
                          const topic_overrides& configs = {}, wire::uuid id = {});

  topic* find_by_id(const wire::uuid& id);

  // Grows `t` to `count` partitions (count > current), all or nothing, in disk jobs like
  // create_async: KAFKA_STORAGE_ERROR on failure. Its existing partitions stay served meanwhile;
  // the caller refuses a second grow while `growing` is set.
  void add_partitions_async(topic& t, int32_t count, done_callback done);

  // In a cluster: makes this broker's replicas `indexes` of the topic `name` with id `id`, adding
  // the topic if this broker held none of it; partitions already held are skipped. The logs are
  // made by disk jobs, in parallel; each joins the topic as soon as it exists (as a follower of
  // no leader, until the replica manager gives it its role). `done` gets the first error
  // (KAFKA_STORAGE_ERROR), or UNKNOWN_TOPIC_OR_PARTITION if the local topic of that name turned
  // out to be another one (another id) meanwhile.
  void add_replicas_async(std::string_view name, wire::uuid id, const topic_overrides& configs,
                          std::vector<int32_t> indexes, done_callback done);
  // In a cluster: removes this broker's replicas `indexes` of `t`, which the cluster assigns
  // elsewhere now (Kafka's StopReplica with deletion). Each leaves the topic at once, answered as
  // for a deleted topic (parked fetches, waiting appends), and its directory is renamed aside and
  // removed later, as deleting a topic does; the topic leaves the registry with its last replica
  // (`t` is then invalid). `done` gets the first error (KAFKA_STORAGE_ERROR).
  void remove_replicas_async(topic& t, const std::vector<int32_t>& indexes, done_callback done);
  // Replaces the topic's configs and applies them to its logs. The caller persists them.
  void set_configs(topic& t, topic_overrides configs);

  // In a cluster a topic's configs are its cluster record's, changed by the controller: `source`
  // names the overrides a topic must have, or null for a topic the cluster does not know (an
  // internal topic, a stray), which keeps its own. Once set, sync_configs() gives every local
  // topic whose configs differ its source's (the broker calls it after every change of the
  // cluster state), and a topic that add_replicas_async adds takes them as it is added, so that
  // a change that arrived while its logs were being made is not lost. Overrides the source gives
  // are validated: an invalid set (a hand edit of the store) is logged once and not applied.
  using config_source = std::function<const std::map<std::string, std::string>*(const topic&)>;
  void follow_configs(config_source source);
  void sync_configs();
  // What the topic's logs run with: its configs over the broker's, and for internal topics no
  // retention (Kafka compacts them; Sluice keeps them whole).
  storage::log_config log_config_for(const topic& t) const;

  // Writes the logs' checkpoint files now (storage::log_manager::checkpoint_async); a failure is
  // logged and goes to `done`. DeleteRecords waits for its new log start to be durable.
  void checkpoint_async(std::function<void(std::error_code)> done);

  // Deletes the topic: it leaves the registry at once, parked fetches are woken (they find it
  // gone), appends waiting for a roll are answered, and `done` runs once the partition
  // directories are renamed aside and the checkpoints rewritten (storage::log_manager::
  // remove_async), with the first error. `t` is invalid afterwards.
  void remove_async(topic& t, done_callback done);

 private:
  // Renames the logs' directories aside (storage::log_manager::remove_async); `done` gets the
  // first error.
  void remove_logs(std::vector<storage::topic_partition> tps, done_callback done);
  std::shared_ptr<partition> make_partition(std::shared_ptr<storage::log> log) const;
  // Gives `t` its source's configs if they differ (follow_configs).
  void follow_source(topic& t);

  storage::log_manager& logs_;
  const broker_config& config_;
  int32_t node_id_;
  std::map<std::string, topic, std::less<>> topics_;
  std::map<std::string, int32_t, std::less<>> creating_;
  config_source config_source_;
  // Per topic, the last set its source gave that was refused: logged once, not at every change.
  std::map<std::string, std::map<std::string, std::string>, std::less<>> refused_configs_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

// Kafka's Topic.isInternal: the topics the broker itself writes (`__consumer_offsets`,
// `__transaction_state`). Other names starting with "__" (e.g. Cruise Control's) are ordinary.
bool is_internal_topic(std::string_view name);

// The topic's min.insync.replicas: its own config, else the broker's.
int32_t min_insync_replicas(const broker_config& config, const topic& t);

// Kafka's ReplicationControlManager.MAX_PARTITIONS_PER_BATCH: CreateTopics and CreatePartitions
// asking for more new partitions than this in one request are refused (POLICY_VIOLATION).
inline constexpr int64_t max_partitions_per_request = 10000;

// Kafka's topic name rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
bool is_valid_topic_name(std::string_view name);

// A random (version 4) topic id. Like Kafka, never zero and never one whose base64 form starts
// with '-', which Kafka's tools would read as a command-line flag.
wire::uuid random_topic_id();

}  // namespace sluice::server

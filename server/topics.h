#pragma once
// The topics this broker holds, rebuilt at start from the partition directories storage loaded
// (topic ids from each partition's `partition.metadata`), and created on demand.
//
// Threading: io thread only.

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
};

class topic_registry {
 public:
  topic_registry(storage::log_manager& logs, const broker_config& config);

  // Groups the loaded logs into topics; gives a topic id to partitions that lack one.
  std::error_code load();
  // After load(): reads the persisted topic configs (topic_config.h), keeps those whose topic id
  // matches a loaded topic and applies them to its logs. Returns an error message, or "".
  std::string load_configs();

  topic* find(std::string_view name);
  partition* find_partition(std::string_view topic, int32_t index);
  const std::map<std::string, topic, std::less<>>& all() const { return topics_; }

  // Creates `name` with `partitions` partitions and a fresh topic id. Errors are Kafka's:
  // INVALID_TOPIC_EXCEPTION for a bad name, TOPIC_ALREADY_EXISTS, KAFKA_STORAGE_ERROR.
  // `configs` must be valid (validate_topic_overrides); they are kept in memory only, the caller
  // persists them (save_topic_configs).
  // `id` zero: a fresh random topic id.
  wire::error_code create(std::string_view name, int32_t partitions, topic*& out,
                          const topic_overrides& configs = {}, wire::uuid id = {});

  topic* find_by_id(const wire::uuid& id);

  // Grows `t` to `count` partitions (count > current), all or nothing. KAFKA_STORAGE_ERROR on
  // failure.
  wire::error_code add_partitions(topic& t, int32_t count);

  // Replaces the topic's configs and applies them to its logs. The caller persists them.
  void set_configs(topic& t, topic_overrides configs);
  // What the topic's logs run with: its configs over the broker's, and for internal topics no
  // retention (Kafka compacts them; Sluice keeps them whole).
  storage::log_config log_config_for(const topic& t) const;

  // Deletes the topic: parked fetches are woken (they find it gone), the partition directories
  // removed. `t` is invalid afterwards. The first removal error, if any; the topic is gone from
  // the registry either way (storage renamed the directories aside first, and the next start
  // deletes leftovers).
  std::error_code remove(topic& t);

 private:
  storage::log_manager& logs_;
  const broker_config& config_;
  int32_t node_id_;
  std::map<std::string, topic, std::less<>> topics_;
};

// Kafka's Topic.isInternal: the topics the broker itself writes (`__consumer_offsets`,
// `__transaction_state`). Other names starting with "__" (e.g. Cruise Control's) are ordinary.
bool is_internal_topic(std::string_view name);

// Kafka's ReplicationControlManager.MAX_PARTITIONS_PER_BATCH: CreateTopics and CreatePartitions
// asking for more new partitions than this in one request are refused (POLICY_VIOLATION).
inline constexpr int64_t max_partitions_per_request = 10000;

// Kafka's topic name rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
bool is_valid_topic_name(std::string_view name);

// A random (version 4) topic id. Like Kafka, never zero and never one whose base64 form starts
// with '-', which Kafka's tools would read as a command-line flag.
wire::uuid random_topic_id();

}  // namespace sluice::server

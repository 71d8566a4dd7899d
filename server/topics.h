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

#include "server/partition.h"
#include "storage/log.h"
#include "wire/codec.h"
#include "wire/error_code.h"

namespace sluice::server {

struct topic {
  std::string name;
  wire::uuid id{};
  bool internal = false;
  std::vector<std::unique_ptr<partition>> partitions;
};

class topic_registry {
 public:
  topic_registry(storage::log_manager& logs, int32_t node_id);

  // Groups the loaded logs into topics; gives a topic id to partitions that lack one.
  std::error_code load();

  topic* find(std::string_view name);
  partition* find_partition(std::string_view topic, int32_t index);
  const std::map<std::string, topic, std::less<>>& all() const { return topics_; }

  // Creates `name` with `partitions` partitions and a fresh topic id. Errors are Kafka's:
  // INVALID_TOPIC_EXCEPTION for a bad name, TOPIC_ALREADY_EXISTS, KAFKA_STORAGE_ERROR.
  wire::error_code create(std::string_view name, int32_t partitions, topic*& out);

 private:
  storage::log_manager& logs_;
  int32_t node_id_;
  std::map<std::string, topic, std::less<>> topics_;
};

// Kafka's topic name rule: 1-249 characters of [a-zA-Z0-9._-], and not "." or "..".
bool is_valid_topic_name(std::string_view name);

// A random (version 4) topic id. Like Kafka, never zero and never one whose base64 form starts
// with '-', which Kafka's tools would read as a command-line flag.
wire::uuid random_topic_id();

}  // namespace sluice::server

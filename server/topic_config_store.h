#pragma once
// Writes `topic-configs.json` (topic_config.h) for a broker that runs alone: after every change of
// a topic's overrides, the whole file from the topic registry as it is then, in a disk job. Jobs
// share one queue, so the writes land in the order they were asked for. (In a cluster the configs
// live in the topic records and the controller changes them.)
//
// Threading: io thread only.
#include <filesystem>
#include <functional>
#include <optional>
#include <system_error>

#include "server/topic_config.h"

namespace sluice::storage {
class disk_executor;
}  // namespace sluice::storage

namespace sluice::server {

class topic_registry;
struct topic;

class topic_config_store {
 public:
  // `topics` and `disk` must outlive the store.
  topic_config_store(topic_registry& topics, storage::disk_executor& disk,
                     std::filesystem::path log_dir);

  // Writes the file from the topics as they are now, plus `pending` (a topic about to be
  // created).
  void persist(std::optional<pending_topic> pending, std::function<void(std::error_code)> done);
  // Gives `t` the (validated) `configs`, applies them to its logs and persists them; if the file
  // cannot be written the previous configs are put back (if the topic is still there) and the
  // error goes to `done`.
  void replace(topic& t, topic_overrides configs, std::function<void(std::error_code)> done);

 private:
  topic_registry& topics_;
  storage::disk_executor& disk_;
  std::filesystem::path path_;
};

}  // namespace sluice::server

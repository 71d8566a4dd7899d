#include "server/topic_config_store.h"

#include <memory>
#include <string>
#include <utility>

#include "server/logging.h"
#include "server/topics.h"
#include "storage/disk_executor.h"
#include "storage/file_io.h"

namespace sluice::server {

topic_config_store::topic_config_store(topic_registry& topics, storage::disk_executor& disk,
                                       std::filesystem::path log_dir)
    : topics_(topics), disk_(disk), path_(std::move(log_dir) / topic_configs_file) {}

void topic_config_store::persist(std::optional<pending_topic> pending,
                                 std::function<void(std::error_code)> done) {
  auto content =
      std::make_shared<std::string>(format_topic_configs(topics_, pending ? &*pending : nullptr));
  auto r = std::make_shared<std::error_code>();
  disk_.submit(
      path_.string(),
      [path = path_, content, r] {
        *r = storage::replace_file(storage::default_file_system(), path, *content);
      },
      [r, done = std::move(done)] { done(*r); });
}

void topic_config_store::replace(topic& t, topic_overrides configs,
                                 std::function<void(std::error_code)> done) {
  topic_overrides previous = t.configs;
  topics_.set_configs(t, std::move(configs));
  persist(std::nullopt, [this, name = t.name, id = t.id, previous = std::move(previous),
                         done = std::move(done)](std::error_code ec) mutable {
    if (ec) {
      log_error("cannot persist the configs of topic ", name, ": ", ec.message());
      if (topic* still = topics_.find(name); still != nullptr && still->id == id) {
        topics_.set_configs(*still, std::move(previous));
      }
    }
    done(ec);
  });
}

}  // namespace sluice::server

#include "server/topics.h"

#include <algorithm>
#include <random>

#include "server/logging.h"

namespace sluice::server {

namespace {
// Leader epoch of every partition on a single broker. Replication will persist and bump it.
constexpr int32_t initial_leader_epoch = 0;
}  // namespace

bool is_internal_topic(std::string_view name) {
  return name == "__consumer_offsets" || name == "__transaction_state";
}

bool is_valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

wire::uuid random_topic_id() {
  static std::mt19937_64 rng{std::random_device{}()};
  wire::uuid id{};
  for (;;) {
    for (size_t i = 0; i < id.size(); i += 8) {
      uint64_t r = rng();
      for (size_t j = 0; j < 8; ++j)
        id[i + j] = static_cast<uint8_t>(r >> (8 * j));
    }
    id[6] = static_cast<uint8_t>((id[6] & 0x0f) | 0x40);  // version 4
    id[8] = static_cast<uint8_t>((id[8] & 0x3f) | 0x80);  // IETF variant
    // 62 is '-' in URL-safe base64: the first six bits of the id.
    if ((id[0] >> 2) != 62) return id;
  }
}

topic_registry::topic_registry(storage::log_manager& logs, const broker_config& config)
    : logs_(logs), config_(config), node_id_(config.node_id) {}

std::error_code topic_registry::load() {
  for (storage::log* l : logs_.logs()) {
    const storage::topic_partition& tp = l->tp();
    topic& t = topics_[tp.topic];
    if (t.name.empty()) {
      t.name = tp.topic;
      t.internal = is_internal_topic(tp.topic);
    }
    if (auto id = l->topic_id()) {
      t.id = *id;
    }
    if (static_cast<size_t>(tp.partition) >= t.partitions.size()) {
      t.partitions.resize(static_cast<size_t>(tp.partition) + 1);
    }
    t.partitions[static_cast<size_t>(tp.partition)] =
        std::make_shared<partition>(*l, node_id_, initial_leader_epoch);
  }
  for (auto& [name, t] : topics_) {
    for (size_t i = 0; i < t.partitions.size(); ++i) {
      if (!t.partitions[i]) {
        // A missing partition directory in the middle of a topic: recreate it empty rather than
        // serve a topic with a hole in its partition list.
        log_warn("topic ", name, ": partition ", i, " has no directory; recreating it empty");
        std::error_code ec;
        storage::log* l = logs_.create({name, static_cast<int32_t>(i)}, t.id, ec);
        if (ec) return ec;
        t.partitions[i] = std::make_shared<partition>(*l, node_id_, initial_leader_epoch);
      }
    }
    if (t.internal) {
      // Internal topics get no stored configs; what they must have is set here, at every start.
      for (auto& p : t.partitions)
        p->log().set_config(log_config_for(t));
    }
    if (t.id == wire::uuid{}) {
      t.id = random_topic_id();
      for (auto& p : t.partitions) {
        std::error_code ec;
        p->log().set_topic_id(t.id, ec);
        if (ec) return ec;
      }
    }
  }
  return {};
}

topic* topic_registry::find(std::string_view name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : &it->second;
}

partition* topic_registry::find_partition(std::string_view name, int32_t index) {
  topic* t = find(name);
  if (t == nullptr || index < 0 || static_cast<size_t>(index) >= t->partitions.size()) {
    return nullptr;
  }
  return t->partitions[static_cast<size_t>(index)].get();
}

std::string topic_registry::load_configs() {
  std::string error;
  auto stored = load_topic_configs(logs_.root(), error);
  if (!error.empty()) return error;
  for (auto& [name, entry] : stored) {
    topic* t = find(name);
    if (t == nullptr || t->id != entry.topic_id) {
      // Left by a topic deleted while the broker was down, or by one deleted and created again:
      // not this topic's configs. The next save drops the entry.
      log_warn("topic configs for ", name, " belong to a topic that no longer exists; ignored");
      continue;
    }
    if (std::string err = validate_topic_overrides(entry.configs); !err.empty()) {
      return "topic " + name + ": " + err;
    }
    set_configs(*t, std::move(entry.configs));
  }
  return {};
}

topic* topic_registry::find_by_id(const wire::uuid& id) {
  if (id == wire::uuid{}) return nullptr;
  for (auto& [name, t] : topics_) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

storage::log_config topic_registry::log_config_for(const topic& t) const {
  storage::log_config cfg = effective_log_config(config_, t.configs);
  if (t.internal) {
    // Kafka compacts its internal topics and never deletes them by time or size. Sluice has no
    // log cleaner, so it keeps them whole: retention would silently drop live group state.
    cfg.retention_ms = -1;
    cfg.retention_bytes = -1;
  }
  return cfg;
}

void topic_registry::set_configs(topic& t, topic_overrides configs) {
  t.configs = std::move(configs);
  storage::log_config cfg = log_config_for(t);
  for (auto& p : t.partitions)
    p->log().set_config(cfg);
}

wire::error_code topic_registry::add_partitions(topic& t, int32_t count) {
  const int32_t current = static_cast<int32_t>(t.partitions.size());
  if (count <= current) return wire::error_code::invalid_partitions;
  storage::log_config cfg = log_config_for(t);
  std::vector<std::shared_ptr<partition>> added;
  for (int32_t i = current; i < count; ++i) {
    std::error_code ec;
    storage::log* l = logs_.create({t.name, i}, t.id, cfg, ec);
    if (ec) {
      log_error("topic ", t.name, ": cannot create partition ", i, ": ", ec.message());
      added.clear();
      for (int32_t made = current; made < i; ++made) {
        if (std::error_code rm = logs_.remove({t.name, made})) {
          log_error("topic ", t.name, ": cannot remove partition ", made, ": ", rm.message());
        }
      }
      return wire::error_code::kafka_storage_error;
    }
    added.push_back(std::make_shared<partition>(*l, node_id_, initial_leader_epoch));
  }
  t.partitions.insert(t.partitions.end(), added.begin(), added.end());
  log_info("topic ", t.name, ": ", current, " -> ", count, " partitions");
  return wire::error_code::none;
}

std::error_code topic_registry::remove(topic& t) {
  std::error_code first;
  for (auto& p : t.partitions) {
    storage::topic_partition tp = p->tp();
    p->mark_deleted();
    if (std::error_code ec = logs_.remove(tp); ec && !first) first = ec;
  }
  // Checkpoints still name the deleted partitions with their log start offsets and recovery
  // points: after a crash those would apply to a topic created again under the same name and
  // cut its acknowledged data. Write them now, not at the next periodic checkpoint.
  if (std::error_code ec = logs_.checkpoint(); ec && !first) first = ec;
  std::string name = t.name;
  log_info("deleted topic ", name);
  topics_.erase(name);
  return first;
}

wire::error_code topic_registry::create(std::string_view name, int32_t partitions, topic*& out,
                                        const topic_overrides& configs, wire::uuid id) {
  out = nullptr;
  if (!is_valid_topic_name(name)) return wire::error_code::invalid_topic_exception;
  if (partitions < 1) return wire::error_code::invalid_partitions;
  if (find(name) != nullptr) return wire::error_code::topic_already_exists;
  topic t;
  t.name = std::string(name);
  t.id = id == wire::uuid{} ? random_topic_id() : id;
  t.internal = is_internal_topic(name);
  t.configs = configs;
  storage::log_config cfg = log_config_for(t);
  for (int32_t i = 0; i < partitions; ++i) {
    std::error_code ec;
    storage::log* l = logs_.create({t.name, i}, t.id, cfg, ec);
    if (ec) {
      log_error("topic ", name, ": cannot create partition ", i, ": ", ec.message());
      // All or nothing: left on disk, the partitions made so far would load at the next start
      // as a smaller topic that nobody asked for.
      t.partitions.clear();
      for (int32_t made = 0; made < i; ++made) {
        if (std::error_code rm = logs_.remove({t.name, made})) {
          log_error("topic ", name, ": cannot remove partition ", made, ": ", rm.message());
        }
      }
      return wire::error_code::kafka_storage_error;
    }
    t.partitions.push_back(std::make_shared<partition>(*l, node_id_, initial_leader_epoch));
  }
  log_info("created topic ", name, " with ", partitions, " partition(s)");
  auto [it, inserted] = topics_.emplace(t.name, std::move(t));
  out = &it->second;
  return wire::error_code::none;
}

}  // namespace sluice::server

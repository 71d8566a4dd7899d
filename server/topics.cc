#include "server/topics.h"

#include <algorithm>
#include <charconv>
#include <random>

#include "server/logging.h"

namespace sluice::server {

namespace {
// Leader epoch of every partition on a single broker. Replication will persist and bump it.
constexpr int32_t initial_leader_epoch = 0;
}  // namespace

int32_t min_insync_replicas(const broker_config& config, const topic& t) {
  static const topic_config_spec* spec = find_topic_config("min.insync.replicas");
  int32_t value = 1;
  std::string text = effective_value(config, t.configs, *spec);
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

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

std::shared_ptr<partition> topic_registry::make_partition(std::shared_ptr<storage::log> log) const {
  // The epoch persisted in leader-epoch-checkpoint; a single broker never bumps it.
  const int32_t epoch = log->latest_epoch().value_or(initial_leader_epoch);
  // In a cluster nobody leads until the cluster state says who does, and the high watermark
  // stays the checkpointed one meanwhile.
  if (!config_.metadata_etcd_endpoints.empty()) {
    return std::make_shared<partition>(std::move(log), -1, epoch, config_.log_flush_on_ack,
                                       partition::role::follower);
  }
  return std::make_shared<partition>(std::move(log), node_id_, epoch, config_.log_flush_on_ack);
}

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
    t.partitions[static_cast<size_t>(tp.partition)] = make_partition(logs_.find_shared(tp));
  }
  const bool in_cluster = !config_.metadata_etcd_endpoints.empty();
  for (auto& [name, t] : topics_) {
    // In a cluster a broker holds only its replicas: holes are normal, and the cluster state says
    // what belongs here (the replica manager creates what is missing and removes what is stray).
    if (in_cluster) std::erase(t.partitions, nullptr);
    for (size_t i = 0; i < t.partitions.size() && !in_cluster; ++i) {
      if (!t.partitions[i]) {
        // A missing partition directory in the middle of a topic: recreate it empty rather than
        // serve a topic with a hole in its partition list.
        log_warn("topic ", name, ": partition ", i, " has no directory; recreating it empty");
        std::error_code ec;
        storage::topic_partition tp{name, static_cast<int32_t>(i)};
        logs_.create(tp, t.id, ec);
        if (ec) return ec;
        t.partitions[i] = make_partition(logs_.find_shared(tp));
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
  return t == nullptr ? nullptr : t->find_partition(index);
}

partition* topic::find_partition(int32_t index) const {
  if (index < 0) return nullptr;
  // Alone, a broker holds every partition and the index is the position; in a cluster it holds
  // some, still in index order.
  if (static_cast<size_t>(index) < partitions.size() &&
      partitions[static_cast<size_t>(index)]->index() == index) {
    return partitions[static_cast<size_t>(index)].get();
  }
  auto it = std::lower_bound(partitions.begin(), partitions.end(), index,
                             [](const auto& p, int32_t i) { return p->index() < i; });
  return it != partitions.end() && (*it)->index() == index ? it->get() : nullptr;
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

namespace {

std::string format_configs(const std::map<std::string, std::string>& configs) {
  std::string out = "{";
  for (const auto& [name, value] : configs) {
    if (out.size() > 1) out += ", ";
    out += log_safe(name) + "=" + log_safe(value);
  }
  return out + "}";
}

}  // namespace

void topic_registry::follow_configs(config_source source) {
  config_source_ = std::move(source);
  sync_configs();
}

void topic_registry::sync_configs() {
  if (!config_source_) return;
  for (auto& [name, t] : topics_)
    follow_source(t);
}

void topic_registry::follow_source(topic& t) {
  if (!config_source_) return;
  const std::map<std::string, std::string>* wanted = config_source_(t);
  if (wanted == nullptr ||
      std::equal(wanted->begin(), wanted->end(), t.configs.begin(), t.configs.end())) {
    return;
  }
  topic_overrides configs(wanted->begin(), wanted->end());
  if (std::string err = validate_topic_overrides(configs); !err.empty()) {
    auto [it, first] = refused_configs_.try_emplace(t.name, *wanted);
    if (first || it->second != *wanted) {
      it->second = *wanted;
      log_warn("topic ", t.name, ": the cluster state gives it configs ", format_configs(*wanted),
               ", which are refused (", err, "); keeping ",
               format_configs({t.configs.begin(), t.configs.end()}));
    }
    return;
  }
  refused_configs_.erase(t.name);
  log_info("topic ", t.name, ": configs ", format_configs({t.configs.begin(), t.configs.end()}),
           " -> ", format_configs(*wanted), " (from the cluster state)");
  set_configs(t, std::move(configs));
}

namespace {

// Collects the outcome of a creation's partitions, each made by a disk job.
struct creation {
  std::vector<std::shared_ptr<storage::log>> logs;
  size_t outstanding = 0;
  std::error_code first_error;
};

}  // namespace

void topic_registry::create_async(std::string_view name, int32_t partitions,
                                  const topic_overrides& configs, wire::uuid id,
                                  create_callback done) {
  if (!is_valid_topic_name(name)) {
    done(wire::error_code::invalid_topic_exception, nullptr);
    return;
  }
  if (partitions < 1) {
    done(wire::error_code::invalid_partitions, nullptr);
    return;
  }
  if (find(name) != nullptr || creating(name)) {
    done(wire::error_code::topic_already_exists, nullptr);
    return;
  }
  auto t = std::make_shared<topic>();
  t->name = std::string(name);
  t->id = id == wire::uuid{} ? random_topic_id() : id;
  t->internal = is_internal_topic(name);
  t->configs = configs;
  creating_.emplace(t->name, partitions);
  storage::log_config cfg = log_config_for(*t);
  auto c = std::make_shared<creation>();
  c->logs.resize(static_cast<size_t>(partitions));
  c->outstanding = static_cast<size_t>(partitions);
  for (int32_t i = 0; i < partitions; ++i) {
    logs_.create_async(
        {t->name, i}, t->id, cfg,
        [this, alive = std::weak_ptr<int>(alive_), t, c, i, done](std::error_code ec,
                                                                  std::shared_ptr<storage::log> l) {
          if (alive.expired()) return;
          if (ec) {
            log_error("topic ", t->name, ": cannot create partition ", i, ": ", ec.message());
            if (!c->first_error) c->first_error = ec;
          }
          c->logs[static_cast<size_t>(i)] = std::move(l);
          if (--c->outstanding > 0) return;
          creating_.erase(t->name);
          if (c->first_error) {
            // All or nothing: left on disk, the partitions made so far would load at the next
            // start as a smaller topic that nobody asked for.
            for (auto& made : c->logs) {
              if (!made) continue;
              logs_.remove_async(made->tp(), [name = t->name](std::error_code rm) {
                if (rm) log_error("topic ", name, ": cannot remove a partition: ", rm.message());
              });
            }
            done(wire::error_code::kafka_storage_error, nullptr);
            return;
          }
          for (auto& made : c->logs)
            t->partitions.push_back(make_partition(std::move(made)));
          log_info("created topic ", t->name, " with ", t->partitions.size(), " partition(s)");
          auto [it, inserted] = topics_.emplace(t->name, std::move(*t));
          done(wire::error_code::none, &it->second);
        });
  }
}

wire::error_code topic_registry::create(std::string_view name, int32_t partitions, topic*& out,
                                        const topic_overrides& configs, wire::uuid id) {
  out = nullptr;
  if (!is_valid_topic_name(name)) return wire::error_code::invalid_topic_exception;
  if (partitions < 1) return wire::error_code::invalid_partitions;
  if (find(name) != nullptr || creating(name)) return wire::error_code::topic_already_exists;
  topic t;
  t.name = std::string(name);
  t.id = id == wire::uuid{} ? random_topic_id() : id;
  t.internal = is_internal_topic(name);
  t.configs = configs;
  storage::log_config cfg = log_config_for(t);
  for (int32_t i = 0; i < partitions; ++i) {
    std::error_code ec;
    storage::topic_partition tp{t.name, i};
    logs_.create(tp, t.id, cfg, ec);
    if (ec) {
      log_error("topic ", name, ": cannot create partition ", i, ": ", ec.message());
      t.partitions.clear();
      for (int32_t made = 0; made < i; ++made) {
        if (std::error_code rm = logs_.remove({t.name, made})) {
          log_error("topic ", name, ": cannot remove partition ", made, ": ", rm.message());
        }
      }
      return wire::error_code::kafka_storage_error;
    }
    t.partitions.push_back(make_partition(logs_.find_shared(tp)));
  }
  log_info("created topic ", name, " with ", partitions, " partition(s)");
  auto [it, inserted] = topics_.emplace(t.name, std::move(t));
  out = &it->second;
  return wire::error_code::none;
}

void topic_registry::add_partitions_async(topic& t, int32_t count, done_callback done) {
  const int32_t current = static_cast<int32_t>(t.partitions.size());
  if (count <= current) {
    done(wire::error_code::invalid_partitions);
    return;
  }
  t.growing = true;
  storage::log_config cfg = log_config_for(t);
  auto c = std::make_shared<creation>();
  c->logs.resize(static_cast<size_t>(count - current));
  c->outstanding = c->logs.size();
  const std::string name = t.name;
  const wire::uuid id = t.id;
  for (int32_t i = current; i < count; ++i) {
    logs_.create_async(
        {name, i}, id, cfg,
        [this, alive = std::weak_ptr<int>(alive_), name, id, current, count, c, i, done](
            std::error_code ec, std::shared_ptr<storage::log> l) {
          if (alive.expired()) return;
          if (ec) {
            log_error("topic ", name, ": cannot create partition ", i, ": ", ec.message());
            if (!c->first_error) c->first_error = ec;
          }
          c->logs[static_cast<size_t>(i - current)] = std::move(l);
          if (--c->outstanding > 0) return;
          topic* t = find(name);
          const bool still_there = t != nullptr && t->id == id;
          if (still_there) t->growing = false;
          if (c->first_error || !still_there) {
            for (auto& made : c->logs) {
              if (!made) continue;
              logs_.remove_async(made->tp(), [name](std::error_code rm) {
                if (rm) log_error("topic ", name, ": cannot remove a partition: ", rm.message());
              });
            }
            done(c->first_error ? wire::error_code::kafka_storage_error
                                : wire::error_code::unknown_topic_or_partition);
            return;
          }
          for (auto& made : c->logs)
            t->partitions.push_back(make_partition(std::move(made)));
          log_info("topic ", name, ": ", current, " -> ", count, " partitions");
          done(wire::error_code::none);
        });
  }
}

void topic_registry::add_replicas_async(std::string_view name, wire::uuid id,
                                        const topic_overrides& configs,
                                        std::vector<int32_t> indexes, done_callback done) {
  topic* existing = find(name);
  if (existing != nullptr && existing->id != id) {
    done(wire::error_code::unknown_topic_or_partition);
    return;
  }
  std::erase_if(indexes, [&](int32_t i) {
    return i < 0 || (existing != nullptr && existing->find_partition(i) != nullptr);
  });
  if (indexes.empty()) {
    done(wire::error_code::none);
    return;
  }
  topic shape;
  shape.name = std::string(name);
  shape.id = id;
  shape.internal = is_internal_topic(name);
  shape.configs = existing != nullptr ? existing->configs : configs;
  const storage::log_config cfg = log_config_for(shape);
  struct outcome {
    size_t outstanding = 0;
    wire::error_code first = wire::error_code::none;
  };
  auto out = std::make_shared<outcome>();
  out->outstanding = indexes.size();
  for (int32_t i : indexes) {
    logs_.create_async(
        {shape.name, i}, id, cfg,
        [this, alive = std::weak_ptr<int>(alive_), shape, i, out, done](
            std::error_code ec, std::shared_ptr<storage::log> l) {
          if (alive.expired()) return;
          auto finish = [&](wire::error_code e) {
            if (e != wire::error_code::none && out->first == wire::error_code::none) out->first = e;
            if (--out->outstanding == 0) done(out->first);
          };
          if (ec) {
            log_error("topic ", shape.name, ": cannot create replica ", i, ": ", ec.message());
            return finish(wire::error_code::kafka_storage_error);
          }
          topic* t = find(shape.name);
          if (t != nullptr && t->id != shape.id) {
            // The name went to another topic meanwhile: this replica belongs to nobody.
            logs_.remove_async(l->tp(), [name = shape.name](std::error_code rm) {
              if (rm) log_error("topic ", name, ": cannot remove a replica: ", rm.message());
            });
            return finish(wire::error_code::unknown_topic_or_partition);
          }
          if (t == nullptr) {
            t = &topics_.emplace(shape.name, shape).first->second;
            follow_source(*t);
          }
          // The topic's configs as they are now: they may have changed since the job started.
          l->set_config(log_config_for(*t));
          auto at =
              std::lower_bound(t->partitions.begin(), t->partitions.end(), i,
                               [](const auto& p, int32_t index) { return p->index() < index; });
          t->partitions.insert(at, make_partition(std::move(l)));
          finish(wire::error_code::none);
        });
  }
}

void topic_registry::remove_async(topic& t, done_callback done) {
  std::vector<storage::topic_partition> tps;
  for (auto& p : t.partitions) {
    tps.push_back(p->tp());
    p->mark_deleted();
  }
  std::string name = t.name;
  log_info("deleted topic ", name);
  topics_.erase(name);
  refused_configs_.erase(name);
  remove_logs(std::move(tps), std::move(done));
}

void topic_registry::remove_replicas_async(topic& t, const std::vector<int32_t>& indexes,
                                           done_callback done) {
  std::vector<storage::topic_partition> tps;
  std::erase_if(t.partitions, [&](const std::shared_ptr<partition>& p) {
    if (std::find(indexes.begin(), indexes.end(), p->index()) == indexes.end()) return false;
    tps.push_back(p->tp());
    p->mark_deleted();
    return true;
  });
  if (t.partitions.empty()) {
    refused_configs_.erase(t.name);
    topics_.erase(t.name);
  }
  remove_logs(std::move(tps), std::move(done));
}

void topic_registry::remove_logs(std::vector<storage::topic_partition> tps, done_callback done) {
  auto first = std::make_shared<std::error_code>();
  auto outstanding = std::make_shared<size_t>(tps.size());
  if (tps.empty()) {
    done(wire::error_code::none);
    return;
  }
  for (const auto& tp : tps) {
    logs_.remove_async(tp, [first, outstanding, done](std::error_code ec) {
      if (ec && !*first) *first = ec;
      if (--*outstanding > 0) return;
      done(*first ? wire::error_code::kafka_storage_error : wire::error_code::none);
    });
  }
}

void topic_registry::checkpoint_async(std::function<void(std::error_code)> done) {
  logs_.checkpoint_async(
      [dir = config_.log_dir.string(), done = std::move(done)](std::error_code ec) {
        if (ec) log_error("writing checkpoints in ", dir, " failed: ", ec.message());
        if (done) done(ec);
      });
}

}  // namespace sluice::server

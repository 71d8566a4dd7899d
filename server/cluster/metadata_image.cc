#include "server/cluster/metadata_image.h"

#include "storage/checkpoint.h"

namespace sluice::server::cluster {

namespace {

bool strip(std::string_view& s, std::string_view head) {
  if (!s.starts_with(head)) return false;
  s.remove_prefix(head.size());
  return true;
}

}  // namespace

void metadata_image::reset(const std::vector<coordination::key_value>& kvs, int64_t revision,
                           std::vector<std::string>& problems) {
  cluster_id_.clear();
  brokers_.clear();
  controller_.reset();
  topic_names_.clear();
  topics_.clear();
  partitions_.clear();
  for (const coordination::key_value& kv : kvs)
    put(kv, problems);
  revision_ = revision;
}

void metadata_image::apply(const std::vector<coordination::watch_event>& events,
                           std::vector<std::string>& problems) {
  for (const coordination::watch_event& e : events) {
    if (e.what == coordination::watch_event::kind::put) {
      put(e.kv, problems);
    } else {
      erase(e.kv.key);
    }
    revision_ = std::max(revision_, e.kv.mod_revision);
  }
}

void metadata_image::put(const coordination::key_value& kv, std::vector<std::string>& problems) {
  std::string_view rest = kv.key;
  if (!strip(rest, prefix_) || !strip(rest, "/")) return;
  std::string error;
  auto bad = [&](std::string_view what) {
    problems.push_back("skipping " + kv.key + ": " + std::string(what) +
                       (error.empty() ? "" : ": " + error));
  };
  if (rest == "cluster_id") {
    cluster_id_ = kv.value;
  } else if (rest == "controller") {
    std::optional<controller_record> r = decode_controller(kv.value, &error);
    if (!r) return bad("not a controller record");
    controller_ = elected_controller{r->node_id, kv.create_revision};
  } else if (std::optional<int32_t> id = keys::broker_id(prefix_, kv.key)) {
    std::optional<broker_record> r = decode_broker(kv.value, &error);
    if (!r || r->node_id != *id) return bad("not a broker record of this node id");
    brokers_[*id] = live_broker{std::move(*r), kv.create_revision};
  } else if (auto tp = keys::partition_of(prefix_, kv.key)) {
    std::optional<partition_record> r = decode_partition(kv.value, &error);
    if (!r) return bad("not a partition record");
    partitions_[*tp] = partition_state{std::move(*r), kv.mod_revision};
  } else if (std::string_view name = rest; strip(name, "topic_names/")) {
    std::optional<wire::uuid> id = storage::uuid_from_base64(kv.value);
    if (!id) return bad("not a topic id");
    topic_names_[std::string(name)] = *id;
  } else if (std::string_view text = rest; strip(text, "topics/")) {
    std::optional<wire::uuid> id = storage::uuid_from_base64(text);
    std::optional<topic_record> r = decode_topic(kv.value, &error);
    if (!id || !r) return bad("not a topic record");
    topics_[*id] = std::move(*r);
  }
}

void metadata_image::erase(std::string_view key) {
  std::string_view rest = key;
  if (!strip(rest, prefix_) || !strip(rest, "/")) return;
  if (rest == "cluster_id") {
    cluster_id_.clear();
  } else if (rest == "controller") {
    controller_.reset();
  } else if (std::optional<int32_t> id = keys::broker_id(prefix_, key)) {
    brokers_.erase(*id);
  } else if (auto tp = keys::partition_of(prefix_, key)) {
    partitions_.erase(*tp);
  } else if (std::string_view name = rest; strip(name, "topic_names/")) {
    if (auto it = topic_names_.find(name); it != topic_names_.end()) topic_names_.erase(it);
  } else if (std::string_view text = rest; strip(text, "topics/")) {
    if (std::optional<wire::uuid> id = storage::uuid_from_base64(text)) topics_.erase(*id);
  }
}

const live_broker* metadata_image::broker(int32_t node_id) const {
  auto it = brokers_.find(node_id);
  return it == brokers_.end() ? nullptr : &it->second;
}

const topic_record* metadata_image::topic(const wire::uuid& id) const {
  auto it = topics_.find(id);
  return it == topics_.end() ? nullptr : &it->second;
}

std::optional<wire::uuid> metadata_image::topic_id(std::string_view name) const {
  auto it = topic_names_.find(name);
  if (it == topic_names_.end() || !topics_.contains(it->second)) return std::nullopt;
  return it->second;
}

const partition_state* metadata_image::partition(const wire::uuid& id, int32_t index) const {
  auto it = partitions_.find({id, index});
  return it == partitions_.end() ? nullptr : &it->second;
}

std::map<int32_t, const partition_state*> metadata_image::partitions(const wire::uuid& id) const {
  std::map<int32_t, const partition_state*> out;
  for (auto it = partitions_.lower_bound({id, 0}); it != partitions_.end() && it->first.first == id;
       ++it) {
    out.emplace(it->first.second, &it->second);
  }
  return out;
}

}  // namespace sluice::server::cluster

#include "server/metadata_view.h"

#include "server/cluster/cluster_member.h"
#include "server/cluster/metadata_image.h"

namespace sluice::server {

metadata_view::metadata_view(const broker_config& config, const cluster::cluster_member* member,
                             std::string cluster_id)
    : config_(config), member_(member), cluster_id_(std::move(cluster_id)) {}

const cluster::metadata_image* metadata_view::image() const {
  return member_ != nullptr ? &member_->image() : nullptr;
}

std::string_view metadata_view::listener_or_inter_broker(std::string_view listener_name) const {
  return listener_name.empty() ? std::string_view(config_.inter_broker_listener_name)
                               : listener_name;
}

const listener& metadata_view::advertised(std::string_view listener_name) const {
  auto find = [this](std::string_view name) -> const listener* {
    for (size_t i = 0; i < config_.listeners.size(); ++i) {
      if (config_.listeners[i].name == name) return &config_.advertised_listeners[i];
    }
    return nullptr;
  };
  if (const listener* a = find(listener_name)) return *a;
  if (const listener* a = find(config_.inter_broker_listener_name)) return *a;
  return config_.advertised_listeners.front();
}

std::vector<broker_address> metadata_view::live_brokers(std::string_view listener_name) const {
  std::vector<broker_address> out;
  if (member_ == nullptr) {
    const listener& self = advertised(listener_name);
    out.push_back({config_.node_id, self.host, self.port, config_.broker_rack});
    return out;
  }
  // Kafka's MetadataCache.getAliveBrokerNodes(listenerName): brokers without that listener are
  // left out, since the client could not reach them through it.
  const std::string name(listener_or_inter_broker(listener_name));
  for (const auto& [id, b] : member_->image().brokers()) {
    auto it = b.record.listeners.find(name);
    if (it == b.record.listeners.end()) continue;
    out.push_back({id, it->second.host, it->second.port, b.record.rack});
  }
  return out;
}

std::optional<broker_address> metadata_view::live_broker(int32_t node_id,
                                                         std::string_view listener_name) const {
  if (member_ == nullptr) {
    if (node_id != config_.node_id) return std::nullopt;
    const listener& self = advertised(listener_name);
    return broker_address{config_.node_id, self.host, self.port, config_.broker_rack};
  }
  const cluster::live_broker* b = member_->image().broker(node_id);
  if (b == nullptr) return std::nullopt;
  auto it = b->record.listeners.find(std::string(listener_or_inter_broker(listener_name)));
  if (it == b->record.listeners.end()) return std::nullopt;
  return broker_address{node_id, it->second.host, it->second.port, b->record.rack};
}

int32_t metadata_view::controller_id() const {
  if (member_ == nullptr) return config_.node_id;
  const auto& c = member_->image().controller();
  return c ? c->node_id : -1;
}

}  // namespace sluice::server

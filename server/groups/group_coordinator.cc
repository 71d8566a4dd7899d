#include "server/groups/group_internal.h"

#include <array>

#include "server/logging.h"

namespace sluice::server {

std::string_view group_state_name(group_state state) {
  switch (state) {
    case group_state::empty:
      return "Empty";
    case group_state::preparing_rebalance:
      return "PreparingRebalance";
    case group_state::completing_rebalance:
      return "CompletingRebalance";
    case group_state::stable:
      return "Stable";
    case group_state::dead:
      return "Dead";
  }
  return "Dead";
}

std::optional<std::set<std::string>> group_detail::subscribed_topics(
    const std::vector<uint8_t>& metadata) {
  size_t pos = 0;
  auto read = [&](size_t n) -> std::optional<uint64_t> {
    if (metadata.size() - pos < n) return std::nullopt;
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v = (v << 8) | metadata[pos++];
    return v;
  };
  if (!read(2)) return std::nullopt;
  std::optional<uint64_t> count = read(4);
  if (!count || static_cast<int32_t>(*count) < 0) return std::nullopt;
  std::set<std::string> topics;
  for (uint64_t i = 0; i < *count; ++i) {
    std::optional<uint64_t> len = read(2);
    if (!len || metadata.size() - pos < *len) return std::nullopt;
    topics.emplace(reinterpret_cast<const char*>(metadata.data() + pos), *len);
    pos += *len;
  }
  return topics;
}

group_coordinator::group_coordinator(asio::any_io_executor executor,
                                     group_coordinator_config config, group_store* store,
                                     timer_service* timers)
    : executor_(std::move(executor)),
      config_(config),
      store_(store),
      own_timers_(timers ? nullptr : std::make_unique<asio_timer_service>(executor_)),
      timers_(timers ? timers : own_timers_.get()),
      rng_(std::random_device{}()) {}

group_coordinator::~group_coordinator() {
  shutdown();
}

void group_coordinator::shutdown() {
  stopped_ = true;
  retention_timer_.cancel();
  for (auto& [id, g] : groups_) {
    for (auto& m : g->members) {
      if (m->awaiting_join)
        m->awaiting_join->complete(join_error(m->id, error_code::not_coordinator));
      if (m->awaiting_sync) m->awaiting_sync->complete(sync_error(error_code::not_coordinator));
    }
  }
  groups_.clear();
}

std::optional<group_state> group_coordinator::state_of(std::string_view group_id) const {
  if (group* g = find_group(group_id)) return g->state;
  return std::nullopt;
}

group_coordinator::group* group_coordinator::find_group(std::string_view group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : it->second.get();
}

group_coordinator::group& group_coordinator::get_or_create_group(std::string_view group_id) {
  auto it = groups_.find(group_id);
  if (it == groups_.end()) {
    it = groups_.emplace(std::string(group_id), std::make_shared<group>(std::string(group_id)))
             .first;
    // Kafka's new GroupMetadata starts Empty "now".
    it->second->current_state_timestamp_ms = wall_clock_ms();
  }
  return *it->second;
}

void group_coordinator::set_state(group& g, group_state state) {
  g.state = state;
  g.current_state_timestamp_ms = wall_clock_ms();
}

// Kafka's member ids: the client id (or the instance id of a static member), a dash, a UUID.
std::string group_coordinator::new_member_id(std::string_view prefix) {
  std::array<uint8_t, 16> b;
  for (size_t i = 0; i < b.size(); i += 8) {
    uint64_t r = rng_();
    for (size_t j = 0; j < 8; ++j)
      b[i + j] = static_cast<uint8_t>(r >> (8 * j));
  }
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string id(prefix);
  id += '-';
  for (size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) id += '-';
    id += hex[b[i] >> 4];
    id += hex[b[i] & 0x0f];
  }
  return id;
}

}  // namespace sluice::server

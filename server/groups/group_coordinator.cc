#include "server/groups/group_internal.h"

#include <array>
#include <limits>

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

namespace {

// Java's String.hashCode (s[0]*31^(n-1) + ... + s[n-1], in int arithmetic) over the UTF-16 code
// units that Kafka's broker decodes the group id into. Malformed UTF-8 becomes U+FFFD per
// maximal bad subsequence, as Java's decoder replaces it; group ids are ASCII in practice.
int32_t java_string_hash(std::string_view utf8) {
  uint32_t h = 0;
  auto add = [&h](uint32_t unit) { h = h * 31 + unit; };
  const auto* b = reinterpret_cast<const unsigned char*>(utf8.data());
  const size_t n = utf8.size();
  for (size_t i = 0; i < n;) {
    const unsigned char c = b[i];
    if (c < 0x80) {
      add(c);
      ++i;
      continue;
    }
    size_t len = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2, cp = c & 0x1fu, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3, cp = c & 0x0fu, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4, cp = c & 0x07u, min = 0x10000;
    }
    size_t used = 1;
    bool ok = len != 0;
    for (; ok && used < len; ++used) {
      if (i + used >= n || (b[i + used] & 0xc0) != 0x80) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (b[i + used] & 0x3fu);
      // Overlong forms, surrogates and code points past U+10FFFF end the subsequence here.
      if (used == 1 && ((c == 0xe0 && b[i + 1] < 0xa0) || (c == 0xed && b[i + 1] > 0x9f) ||
                        (c == 0xf0 && b[i + 1] < 0x90) || (c == 0xf4 && b[i + 1] > 0x8f))) {
        ok = false;
        break;
      }
    }
    if (!ok || cp < min) {
      add(0xfffd);
      i += std::max<size_t>(used, 1);
      continue;
    }
    if (cp >= 0x10000) {
      cp -= 0x10000;
      add(0xd800 + (cp >> 10));
      add(0xdc00 + (cp & 0x3ff));
    } else {
      add(cp);
    }
    i += len;
  }
  return static_cast<int32_t>(h);
}

}  // namespace

int32_t group_coordinator::partition_for(std::string_view group_id) const {
  if (offsets_partitions_ <= 0) return -1;
  const int32_t h = java_string_hash(group_id);
  // Kafka's Utils.abs: Integer.MIN_VALUE maps to 0.
  const int32_t abs = h == std::numeric_limits<int32_t>::min() ? 0 : (h < 0 ? -h : h);
  return abs % offsets_partitions_;
}

error_code group_coordinator::group_status(std::string_view group_id) const {
  if (stopped_ || offsets_partitions_ <= 0) return error_code::coordinator_not_available;
  auto it = owned_.find(partition_for(group_id));
  if (it == owned_.end()) return error_code::not_coordinator;
  return it->second ? error_code::none : error_code::coordinator_load_in_progress;
}

void group_coordinator::set_offsets_partitions(int32_t count) {
  for (const auto& [index, loaded] : std::map<int32_t, bool>(owned_))
    unload(index);
  owned_.clear();
  offsets_partitions_ = std::max(0, count);
}

void group_coordinator::begin_loading(int32_t partition) {
  unload(partition);
  owned_[partition] = false;
}

void group_coordinator::finish_loading(int32_t partition) {
  if (auto it = owned_.find(partition); it != owned_.end()) it->second = true;
}

size_t group_coordinator::unload(int32_t partition) {
  owned_.erase(partition);
  size_t unloaded = 0;
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (partition_for(it->first) != partition) {
      ++it;
      continue;
    }
    abandon(*it->second);
    it = groups_.erase(it);
    ++unloaded;
  }
  return unloaded;
}

void group_coordinator::abandon(group& g) {
  for (auto& m : g.members) {
    if (m->awaiting_join)
      m->awaiting_join->complete(join_error(m->id, error_code::not_coordinator));
    if (m->awaiting_sync) m->awaiting_sync->complete(sync_error(error_code::not_coordinator));
  }
}

void group_coordinator::shutdown() {
  stopped_ = true;
  retention_timer_.cancel();
  for (auto& [id, g] : groups_)
    abandon(*g);
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

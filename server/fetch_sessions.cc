#include "server/fetch_sessions.h"

#include <algorithm>

namespace sluice::server {

void fetch_session::update(const wire::fetch_request& request) {
  for (const auto& t : request.topics) {
    for (const auto& p : t.partitions) {
      key k = key_of(t.topic, t.topic_id, p.partition);
      auto it = index_.find(k);
      if (it == index_.end()) {
        order_.push_back({.topic = t.topic, .topic_id = t.topic_id, .partition = p.partition});
        it = index_.emplace(k, std::prev(order_.end())).first;
      }
      cached_fetch_partition& c = *it->second;
      c.current_leader_epoch = p.current_leader_epoch;
      c.fetch_offset = p.fetch_offset;
      c.last_fetched_epoch = p.last_fetched_epoch;
      c.log_start_offset = p.log_start_offset;
      c.partition_max_bytes = p.partition_max_bytes;
    }
  }
  for (const auto& f : request.forgotten_topics_data) {
    for (int32_t partition : f.partitions) {
      auto it = index_.find(key_of(f.topic, f.topic_id, partition));
      if (it == index_.end()) continue;
      order_.erase(it->second);
      index_.erase(it);
    }
  }
}

void fetch_session::to_request(wire::fetch_request& out) const {
  out.topics.clear();
  for (const cached_fetch_partition& c : order_) {
    if (out.topics.empty() || (uses_topic_ids_ ? out.topics.back().topic_id != c.topic_id
                                               : out.topics.back().topic != c.topic)) {
      auto& t = out.topics.emplace_back();
      t.topic = c.topic;
      t.topic_id = c.topic_id;
    }
    auto& p = out.topics.back().partitions.emplace_back();
    p.partition = c.partition;
    p.current_leader_epoch = c.current_leader_epoch;
    p.fetch_offset = c.fetch_offset;
    p.last_fetched_epoch = c.last_fetched_epoch;
    p.log_start_offset = c.log_start_offset;
    p.partition_max_bytes = c.partition_max_bytes;
  }
}

namespace {

bool has_records(const wire::fetch_response::partition_data& p) {
  return p.records.size() > 0;
}

}  // namespace

// Kafka's CachedPartition.maybeUpdateResponseData.
void fetch_session::filter_response(wire::fetch_response& response) {
  std::vector<std::list<cached_fetch_partition>::iterator> sent_records;
  for (auto& t : response.responses) {
    std::erase_if(t.partitions, [&](const wire::fetch_response::partition_data& p) {
      auto it = index_.find(key_of(t.topic, t.topic_id, p.partition_index));
      if (it == index_.end()) return false;  // not the session's: keep (cannot happen)
      cached_fetch_partition& c = *it->second;
      bool send = false;
      if (has_records(p)) {
        send = true;
        sent_records.push_back(it->second);
      }
      if (p.high_watermark != c.high_watermark) {
        send = true;
        c.high_watermark = p.high_watermark;
      }
      if (p.log_start_offset != c.sent_log_start_offset) {
        send = true;
        c.sent_log_start_offset = p.log_start_offset;
      }
      if (p.preferred_read_replica != -1 || p.diverging_epoch.end_offset != -1 ||
          p.diverging_epoch.epoch != -1) {
        send = true;
      }
      if (p.error_code != 0) {
        send = true;
        c.high_watermark = -1;  // sent again once the error clears
      }
      return !send;
    });
  }
  std::erase_if(response.responses, [](const auto& t) { return t.partitions.empty(); });
  for (auto it : sent_records)
    order_.splice(order_.end(), order_, it);
}

void fetch_session::remember_response(const wire::fetch_response& response) {
  for (const auto& t : response.responses) {
    for (const auto& p : t.partitions) {
      auto it = index_.find(key_of(t.topic, t.topic_id, p.partition_index));
      if (it == index_.end()) continue;
      it->second->high_watermark = p.error_code != 0 ? -1 : p.high_watermark;
      it->second->sent_log_start_offset = p.log_start_offset;
    }
  }
}

void fetch_session::advance(int64_t now_ms) {
  epoch_ = next_session_epoch(epoch_);
  last_used_ms_ = now_ms;
}

fetch_session* fetch_session_cache::find(int32_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void fetch_session_cache::remove(int32_t id) {
  sessions_.erase(id);
}

fetch_session* fetch_session_cache::create(bool privileged, bool uses_topic_ids, size_t partitions,
                                           int64_t now_ms) {
  if (slots_ == 0) return nullptr;
  if (sessions_.size() >= slots_ && !evict_one(privileged, partitions, now_ms)) return nullptr;
  std::uniform_int_distribution<int32_t> ids(1, INT32_MAX);
  int32_t id = 0;
  do {
    id = ids(random_);
  } while (sessions_.contains(id));
  auto session = std::make_unique<fetch_session>(id, privileged, uses_topic_ids, now_ms);
  fetch_session* raw = session.get();
  sessions_.emplace(id, std::move(session));
  return raw;
}

// Kafka's FetchSessionCache.tryEvict.
bool fetch_session_cache::evict_one(bool privileged, size_t partitions, int64_t now_ms) {
  // A session unused for the eviction time goes first, whoever asks.
  auto stalest =
      std::min_element(sessions_.begin(), sessions_.end(), [](const auto& a, const auto& b) {
        return a.second->last_used_ms() < b.second->last_used_ms();
      });
  if (stalest != sessions_.end() && now_ms - stalest->second->last_used_ms() > eviction_ms) {
    sessions_.erase(stalest);
    return true;
  }
  // Otherwise the least valuable session the newcomer may evict: sessions past the eviction time
  // since their creation, and for a follower also every consumer session. Value orders by
  // privilege, then size, then id; the newcomer (id 0) must be worth at least as much.
  using value = std::tuple<bool, size_t, int32_t>;
  std::optional<std::pair<value, int32_t>> least;
  for (const auto& [id, s] : sessions_) {
    const bool old_enough = now_ms - s->created_ms() > eviction_ms;
    if (!old_enough && !(privileged && !s->privileged())) continue;
    value v{s->privileged(), s->size(), id};
    if (!least || v < least->first) least.emplace(v, id);
  }
  if (!least || value{privileged, partitions, 0} < least->first) return false;
  sessions_.erase(least->second);
  return true;
}

}  // namespace sluice::server

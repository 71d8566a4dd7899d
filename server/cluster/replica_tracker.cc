#include "server/cluster/replica_tracker.h"

#include <algorithm>

namespace sluice::server::cluster {
namespace {
bool contains(const std::vector<int32_t>& v, int32_t id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}
}  // namespace

replica_tracker::replica_tracker(int32_t local_id, const std::vector<int32_t>& replicas,
                                 const std::vector<int32_t>& isr, int64_t leader_epoch_start_offset,
                                 int64_t high_watermark, int64_t now_ms)
    : local_id_(local_id),
      isr_(isr),
      leader_epoch_start_offset_(leader_epoch_start_offset),
      high_watermark_(high_watermark) {
  for (int32_t id : replicas) {
    if (id == local_id_) continue;
    follower f;
    // An ISR member gets a full lag period from the start of this leadership before it can be
    // called out of sync (Kafka's Partition.makeLeader resets it so); its log end stays unknown
    // until it fetches, which holds the high watermark where it is.
    if (contains(isr, id)) f.last_caught_up_ms = now_ms;
    followers_[id] = f;
  }
}

bool replica_tracker::caught_up(const follower& f, int64_t leader_log_end, int64_t now_ms,
                                int64_t lag_max_ms) const {
  return f.log_end == leader_log_end ||
         (f.last_caught_up_ms && now_ms - *f.last_caught_up_ms <= lag_max_ms);
}

bool replica_tracker::in_maximal_isr(int32_t id) const {
  return contains(isr_, id) || (pending_ && contains(*pending_, id));
}

bool replica_tracker::recompute(int64_t leader_log_end, int64_t now_ms, int64_t lag_max_ms) {
  int64_t candidate = leader_log_end;
  for (const auto& [id, f] : followers_) {
    // A caught-up follower outside the ISR counts too: it is about to join, and an acks=all
    // write acknowledged past it would not be on it when it does.
    bool counts = in_maximal_isr(id) ||
                  (caught_up(f, leader_log_end, now_ms, lag_max_ms) && !contains(ineligible_, id));
    if (counts && f.log_end < candidate) candidate = f.log_end;
  }
  if (candidate <= high_watermark_) return false;
  high_watermark_ = candidate;
  return true;
}

bool replica_tracker::on_follower_fetch(int32_t replica, int64_t fetch_offset,
                                        int64_t leader_log_end, int64_t now_ms,
                                        int64_t lag_max_ms) {
  auto it = followers_.find(replica);
  if (it == followers_.end()) return false;
  follower& f = it->second;
  if (fetch_offset >= leader_log_end) {
    f.last_caught_up_ms = std::max(f.last_caught_up_ms.value_or(now_ms), now_ms);
  } else if (f.last_fetch_leader_log_end >= 0 && fetch_offset >= f.last_fetch_leader_log_end) {
    // It has everything the leader had at its previous fetch: it was caught up then.
    f.last_caught_up_ms = std::max(f.last_caught_up_ms.value_or(f.last_fetch_ms), f.last_fetch_ms);
  }
  f.last_fetch_leader_log_end = leader_log_end;
  f.last_fetch_ms = now_ms;
  f.log_end = fetch_offset;
  return recompute(leader_log_end, now_ms, lag_max_ms);
}

bool replica_tracker::on_leader_append(int64_t leader_log_end, int64_t now_ms, int64_t lag_max_ms) {
  return recompute(leader_log_end, now_ms, lag_max_ms);
}

std::vector<int32_t> replica_tracker::out_of_sync(int64_t leader_log_end, int64_t now_ms,
                                                  int64_t lag_max_ms) const {
  std::vector<int32_t> out;
  for (int32_t id : isr_) {
    auto it = followers_.find(id);
    if (it != followers_.end() && !caught_up(it->second, leader_log_end, now_ms, lag_max_ms))
      out.push_back(id);
  }
  return out;
}

std::vector<int32_t> replica_tracker::ready_to_join() const {
  std::vector<int32_t> out;
  for (const auto& [id, f] : followers_) {
    if (in_maximal_isr(id) || contains(ineligible_, id)) continue;
    if (f.log_end >= high_watermark_ && f.log_end >= leader_epoch_start_offset_) out.push_back(id);
  }
  return out;
}

void replica_tracker::set_replicas(const std::vector<int32_t>& replicas) {
  std::erase_if(followers_, [&](const auto& f) { return !contains(replicas, f.first); });
  for (int32_t id : replicas) {
    if (id != local_id_) followers_.try_emplace(id);
  }
}

void replica_tracker::begin_change(const std::vector<int32_t>& proposed_isr) {
  pending_ = proposed_isr;
}

void replica_tracker::commit_change(const std::vector<int32_t>& isr, int64_t leader_log_end,
                                    int64_t now_ms, int64_t lag_max_ms) {
  isr_ = isr;
  pending_.reset();
  // A shrink can let the high watermark move: the removed follower no longer holds it back.
  recompute(leader_log_end, now_ms, lag_max_ms);
}

void replica_tracker::abandon_change() {
  pending_.reset();
}

replica_tracker::ack replica_tracker::acks_all(int64_t last_offset,
                                               int32_t min_insync_replicas) const {
  if (high_watermark_ <= last_offset) return ack::waiting;
  if (static_cast<int32_t>(isr_.size()) < min_insync_replicas)
    return ack::not_enough_replicas_after_append;
  return ack::complete;
}

int64_t replica_tracker::follower_log_end(int32_t replica) const {
  auto it = followers_.find(replica);
  return it == followers_.end() ? -1 : it->second.log_end;
}

}  // namespace sluice::server::cluster

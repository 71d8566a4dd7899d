#include "server/partition.h"

#include <algorithm>

namespace sluice::server {

partition::partition(storage::log& log, int32_t leader_id, int32_t leader_epoch)
    : log_(log),
      tp_(log.tp()),
      leader_id_(leader_id),
      leader_epoch_(leader_epoch),
      replicas_{leader_id},
      isr_{leader_id} {
  maybe_advance_high_watermark();
}

bool partition::is_replica(int32_t broker_id) const {
  return std::find(replicas_.begin(), replicas_.end(), broker_id) != replicas_.end();
}

std::error_code partition::append(std::span<uint8_t> batches, storage::append_info& out) {
  std::error_code ec = log_.append(batches, leader_epoch_, out);
  if (ec) return ec;
  maybe_advance_high_watermark();
  wake_waiters();
  return {};
}

void partition::record_follower_fetch(int32_t replica_id, int64_t fetch_offset) {
  follower_log_end_offsets_[replica_id] = std::min(fetch_offset, log_end_offset());
  maybe_advance_high_watermark();
}

void partition::maybe_advance_high_watermark() {
  int64_t hw = log_end_offset();
  for (int32_t id : isr_) {
    if (id == leader_id_) continue;
    auto it = follower_log_end_offsets_.find(id);
    hw = std::min(hw, it == follower_log_end_offsets_.end() ? 0 : it->second);
  }
  // The high watermark never moves backwards.
  if (hw > high_watermark()) log_.set_high_watermark(hw);
}

void partition::add_waiter(data_waiter* w) {
  waiters_.push_back(w);
}

void partition::remove_waiter(data_waiter* w) {
  std::erase(waiters_, w);
}

void partition::mark_deleted() {
  deleted_ = true;
  wake_waiters();
}

void partition::wake_waiters() {
  // A woken waiter unregisters itself, so walk a copy.
  std::vector<data_waiter*> woken = waiters_;
  for (data_waiter* w : woken)
    w->on_data();
}

}  // namespace sluice::server

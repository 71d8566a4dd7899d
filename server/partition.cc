#include "server/partition.h"

#include <algorithm>
#include <chrono>

namespace sluice::server {

namespace {
int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

partition::partition(std::shared_ptr<storage::log> log, int32_t leader_id, int32_t leader_epoch,
                     ack_sync_policy ack_sync, role initial_role)
    : log_(std::move(log)),
      tp_(log_->tp()),
      leader_id_(leader_id),
      leader_epoch_(leader_epoch),
      ack_sync_(ack_sync),
      replicas_{leader_id},
      isr_{leader_id},
      role_(initial_role) {
  if (role_ == role::follower) {
    replicas_.clear();
    isr_.clear();
    return;
  }
  // Becoming leader starts the epoch at the log end (Kafka's Partition.makeLeader), so that
  // OffsetForLeaderEpoch knows it before anything is appended in it.
  log_->assign_epoch_start(leader_epoch_);
  epoch_start_offset_ = log_end_offset();
  maybe_advance_high_watermark();
}

bool partition::is_replica(int32_t broker_id) const {
  return std::find(replicas_.begin(), replicas_.end(), broker_id) != replicas_.end();
}

void partition::append(std::span<uint8_t> batches, append_callback done) {
  if (!pending_appends_.empty()) {
    // Behind appends that wait for a roll: order is per partition.
    pending_appends_.push_back({batches, std::move(done)});
    return;
  }
  storage::append_info info;
  std::error_code ec = log_->append(batches, leader_epoch_, info);
  if (ec == storage::errc::roll_in_progress) {
    pending_appends_.push_back({batches, std::move(done)});
    log_->when_writable([weak = weak_from_this()] {
      if (auto self = weak.lock()) self->append_pending();
    });
    return;
  }
  if (!ec) {
    maybe_advance_high_watermark();
    wake_waiters();
  }
  done(ec, info);
}

std::error_code partition::try_append(std::span<uint8_t> batches, storage::append_info& out) {
  if (!pending_appends_.empty()) return storage::errc::roll_in_progress;
  std::error_code ec = log_->append(batches, leader_epoch_, out);
  if (!ec) {
    maybe_advance_high_watermark();
    wake_waiters();
  }
  return ec;
}

void partition::append_pending() {
  bool appended = false;
  while (!pending_appends_.empty()) {
    pending_append& next = pending_appends_.front();
    storage::append_info info;
    std::error_code ec = log_->append(next.batches, leader_epoch_, info);
    if (ec == storage::errc::roll_in_progress) {
      log_->when_writable([weak = weak_from_this()] {
        if (auto self = weak.lock()) self->append_pending();
      });
      break;
    }
    append_callback done = std::move(next.done);
    pending_appends_.pop_front();
    if (!ec) {
      appended = true;
      maybe_advance_high_watermark();
    }
    done(ec, info);
  }
  if (appended) wake_waiters();
}

bool partition::sync_before_ack(int16_t acks) const {
  if (acks != -1) return false;
  switch (ack_sync_) {
    case ack_sync_policy::never:
      return false;
    case ack_sync_policy::always:
      return true;
    case ack_sync_policy::sole_replica:
      return (tracker_ ? tracker_->isr().size() : isr_.size()) <= 1;
  }
  return true;
}

void partition::when_acknowledgeable(int64_t end_offset, int16_t acks,
                                     storage::durability_callback done) {
  // Kafka's flush.messages rule (UnifiedLog.append: flush once unflushedMessages reaches it),
  // checked after the append, for every acks.
  const bool forced = log_->unflushed_messages() >= log_->config().flush_messages;
  if (!forced && !sync_before_ack(acks)) {
    done({});
    return;
  }
  log_->when_durable(end_offset, std::move(done));
}

bool partition::record_follower_fetch(int32_t replica_id, int64_t fetch_offset) {
  if (tracker_) {
    const bool moved = tracker_->on_follower_fetch(replica_id, fetch_offset, log_end_offset(),
                                                   steady_ms(), lag_max_ms_);
    if (moved) on_replication_progress();
    return moved;
  }
  follower_log_end_offsets_[replica_id] = std::min(fetch_offset, log_end_offset());
  const int64_t before = high_watermark();
  maybe_advance_high_watermark();
  return high_watermark() != before;
}

void partition::maybe_advance_high_watermark() {
  if (tracker_) {
    tracker_->on_leader_append(log_end_offset(), steady_ms(), lag_max_ms_);
    if (tracker_->high_watermark() > high_watermark()) {
      log_->set_high_watermark(tracker_->high_watermark());
    }
    answer_replicated(false);
    return;
  }
  if (role_ != role::leader) return;
  int64_t hw = log_end_offset();
  for (int32_t id : isr_) {
    if (id == leader_id_) continue;
    auto it = follower_log_end_offsets_.find(id);
    hw = std::min(hw, it == follower_log_end_offsets_.end() ? 0 : it->second);
  }
  // The high watermark never moves backwards.
  if (hw > high_watermark()) log_->set_high_watermark(hw);
}

void partition::on_replication_progress() {
  const int64_t before = high_watermark();
  maybe_advance_high_watermark();
  // Consumers read up to the high watermark: a move is new data for them.
  if (high_watermark() != before) wake_waiters();
}

void partition::become_leader(int32_t local_id, int32_t epoch, std::vector<int32_t> replicas,
                              std::vector<int32_t> isr, int64_t partition_epoch,
                              int64_t lag_max_ms) {
  lag_max_ms_ = lag_max_ms;
  const bool same_leadership = role_ == role::leader && tracker_ && epoch == leader_epoch_;
  // The same state read again (the cluster state moved elsewhere): an ISR change in flight must
  // not be taken for refused or committed.
  if (same_leadership && partition_epoch == partition_epoch_) return;
  partition_epoch_ = partition_epoch;
  replicas_ = std::move(replicas);
  isr_ = std::move(isr);
  if (same_leadership) {
    tracker_->set_replicas(replicas_);
    if (tracker_->change_pending()) {
      tracker_->commit_change(isr_, log_end_offset(), steady_ms(), lag_max_ms_);
    } else if (tracker_->isr() != isr_) {
      tracker_->begin_change(isr_);
      tracker_->commit_change(isr_, log_end_offset(), steady_ms(), lag_max_ms_);
    }
    on_replication_progress();
    return;
  }
  role_ = role::leader;
  leader_id_ = local_id;
  leader_epoch_ = epoch;
  log_->assign_epoch_start(epoch);
  epoch_start_offset_ = log_end_offset();
  tracker_.emplace(local_id, replicas_, isr_, log_end_offset(), high_watermark(), steady_ms());
  on_replication_progress();
}

void partition::become_follower(int32_t leader, int32_t epoch, std::vector<int32_t> replicas,
                                std::vector<int32_t> isr, int64_t partition_epoch) {
  const bool was_leader = role_ == role::leader;
  role_ = role::follower;
  leader_id_ = leader;
  leader_epoch_ = epoch;
  replicas_ = std::move(replicas);
  isr_ = std::move(isr);
  partition_epoch_ = partition_epoch;
  tracker_.reset();
  answer_replicated(true);
  // Appends queued behind a roll were a leader's: a follower's log takes only the leader's
  // batches. Their producers are told to go to the new leader.
  std::deque<pending_append> pending = std::move(pending_appends_);
  pending_appends_.clear();
  for (auto& a : pending)
    a.done(storage::errc::log_closed, {});
  // Parked fetches of clients look again and find this broker no longer leads.
  if (was_leader) wake_waiters();
}

void partition::when_replicated(int64_t end_offset, int32_t min_insync_replicas,
                                std::function<void(wire::error_code)> done) {
  if (role_ != role::leader || !acks_all_allowed_) {
    done(wire::error_code::not_leader_or_follower);
    return;
  }
  if (!tracker_) {
    done(wire::error_code::none);
    return;
  }
  pending_acks_.push_back({end_offset, min_insync_replicas, std::move(done)});
  answer_replicated(false);
}

void partition::answer_replicated(bool leadership_lost) {
  // Offsets grow in append order, so the first one still waiting stops the walk.
  while (!pending_acks_.empty()) {
    pending_ack& next = pending_acks_.front();
    wire::error_code ec = wire::error_code::none;
    if (leadership_lost || !tracker_ || !acks_all_allowed_) {
      ec = wire::error_code::not_leader_or_follower;
    } else {
      switch (tracker_->acks_all(next.end_offset - 1, next.min_insync_replicas)) {
        case cluster::replica_tracker::ack::waiting:
          return;
        case cluster::replica_tracker::ack::complete:
          break;
        case cluster::replica_tracker::ack::not_enough_replicas_after_append:
          ec = wire::error_code::not_enough_replicas_after_append;
          break;
      }
    }
    auto done = std::move(next.done);
    pending_acks_.pop_front();
    done(ec);
  }
}

void partition::set_ineligible_followers(std::vector<int32_t> ids) {
  if (!tracker_) return;
  tracker_->set_ineligible(std::move(ids));
  on_replication_progress();
}

void partition::set_acks_all_allowed(bool allowed) {
  if (acks_all_allowed_ == allowed) return;
  acks_all_allowed_ = allowed;
  if (!allowed) answer_replicated(false);
}

void partition::add_waiter(data_waiter* w) {
  waiters_.push_back(w);
}

void partition::remove_waiter(data_waiter* w) {
  std::erase(waiters_, w);
}

void partition::mark_deleted() {
  deleted_ = true;
  answer_replicated(true);
  std::deque<pending_append> pending = std::move(pending_appends_);
  pending_appends_.clear();
  for (auto& p : pending)
    p.done(storage::errc::log_closed, {});
  wake_waiters();
}

void partition::wake_waiters() {
  // A woken waiter unregisters itself, so walk a copy.
  std::vector<data_waiter*> woken = waiters_;
  for (data_waiter* w : woken)
    w->on_data();
}

}  // namespace sluice::server

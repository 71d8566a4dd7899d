#pragma once
// The broker's view of one partition it leads: its log, leader epoch, replica set and ISR, the
// appends waiting behind a segment roll, and the fetches parked on it.
//
// Threading: owned by the broker's single io thread, like everything in server/; no locks.
//
// Roles: a broker that runs alone leads every partition, with ISR {itself}, and the high watermark
// follows the log end at once. In a cluster the replica manager gives each partition its role
// from the cluster state: leader (a replica_tracker then holds the followers' positions and moves
// the high watermark by Kafka's rule, docs/DESIGN.md) or follower (the replica fetcher appends the
// leader's batches; clients are answered NOT_LEADER_OR_FOLLOWER). A partition created in a
// cluster is a follower of no leader (-1) until the cluster state gives it a role.
//
// Durability (README "Durability"): an append is acknowledged once it is as durable as the
// broker's contract asks (when_acknowledgeable): with flush.messages reached, after its fsync
// whatever the acks; with acks=all and log.flush.on.ack (sole-replica by default: when this
// broker is the only in-sync replica), after its fsync; otherwise once it is in the page cache.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

#include "server/cluster/replica_tracker.h"
#include "server/config.h"
#include "storage/log.h"
#include "wire/error_code.h"

namespace sluice::server {

// Something parked until a partition gets new data: a long-polling Fetch.
class data_waiter {
 public:
  virtual void on_data() = 0;

 protected:
  ~data_waiter() = default;
};

// Owned by shared_ptr (topic::partitions), so that a fetch parked on a partition keeps it alive
// when DeleteTopics removes the topic meanwhile; such a partition is marked deleted, and its log,
// which it shares with the log_manager, is marked removed: it answers every call with
// errc::log_closed instead of dangling.
class partition : public std::enable_shared_from_this<partition> {
 public:
  enum class role { leader, follower };

  // A leader starts its epoch at the log end and, alone in its ISR, moves the high watermark
  // there; a follower (leader_id -1 until the cluster state names one) keeps the high watermark
  // its log loaded from the checkpoint, which a cluster's replica must not take past what the ISR
  // had.
  partition(std::shared_ptr<storage::log> log, int32_t leader_id, int32_t leader_epoch,
            ack_sync_policy ack_sync, role initial_role = role::leader);
  partition(const partition&) = delete;
  partition& operator=(const partition&) = delete;

  storage::log& log() { return *log_; }
  const storage::log& log() const { return *log_; }
  // Copied, not read through log(): they stay valid after DeleteTopics.
  const storage::topic_partition& tp() const { return tp_; }
  int32_t index() const { return tp_.partition; }

  role current_role() const { return role_; }
  bool is_leader() const { return role_ == role::leader; }
  int32_t leader_id() const { return leader_id_; }
  int32_t leader_epoch() const { return leader_epoch_; }
  const std::vector<int32_t>& replicas() const { return replicas_; }
  const std::vector<int32_t>& isr() const { return isr_; }
  // A leader's view of a follower's log end, from its last fetch; -1 when it has none.
  int64_t follower_log_end(int32_t replica) const {
    return tracker_ ? tracker_->follower_log_end(replica) : -1;
  }
  bool is_replica(int32_t broker_id) const;
  // The log went offline after a storage failure: served by nobody until a restart.
  bool offline() const { return log_->offline(); }

  int64_t log_start_offset() const { return log_->log_start_offset(); }
  int64_t log_end_offset() const { return log_->log_end_offset(); }
  int64_t high_watermark() const { return log_->high_watermark(); }
  // First offset of the oldest open transaction, or the high watermark; transactions are not
  // supported yet, so it is the high watermark.
  int64_t last_stable_offset() const { return high_watermark(); }
  // A leader whose high watermark has not reached the log end it had when it took the lead
  // (Kafka's leaderEpochStartOffsetOpt) cannot tell a consumer where the committed end is: what
  // lies between may be the previous leader's uncommitted tail or committed data the high
  // watermark has not caught up with. ListOffsets answers OFFSET_NOT_AVAILABLE meanwhile.
  bool high_watermark_lags_epoch_start() const {
    return role_ == role::leader && epoch_start_offset_ > high_watermark();
  }

  using append_callback = std::function<void(std::error_code, const storage::append_info&)>;
  // Appends producer batches as leader, in arrival order: the log validates them and stamps
  // offsets and this leader's epoch in place; waiting fetches are woken. `done` runs before
  // append() returns, unless the log is rolling to a new segment: then this append, and every
  // later one, waits for the roll (the caller keeps `batches` alive until `done`). A deleted
  // partition answers errc::log_closed.
  void append(std::span<uint8_t> batches, append_callback done);
  // The same, never waiting: errc::roll_in_progress (nothing written) when the log is rolling or
  // appends are queued behind a roll.
  std::error_code try_append(std::span<uint8_t> batches, storage::append_info& out);

  // Calls `done` once the append that ended just below `end_offset` may be acknowledged to a
  // producer that asked for `acks` (see the header): at once, or when the sync that makes it
  // durable completes (group commit: storage::log::when_durable). errc::log_offline when that
  // sync failed; errc::log_closed when the partition was deleted first.
  void when_acknowledgeable(int64_t end_offset, int16_t acks, storage::durability_callback done);
  // Whether an append acknowledged with `acks` waits for its fsync (before flush.messages).
  bool sync_before_ack(int16_t acks) const;

  // A follower fetched from `fetch_offset`: that is its log end offset. Returns whether the high
  // watermark moved.
  bool record_follower_fetch(int32_t replica_id, int64_t fetch_offset);

  // ---- In a cluster (the replica manager calls these from the cluster state) ----
  // The partition's epoch in the cluster state (its key's mod_revision), which an AlterPartition
  // must name.
  int64_t partition_epoch() const { return partition_epoch_; }
  // This broker leads from `epoch` on. A new epoch starts at the log end (Kafka's makeLeader) with
  // fresh follower state; the same epoch again only takes the new ISR (an AlterPartition the
  // controller committed, or the same state read again).
  void become_leader(int32_t local_id, int32_t epoch, std::vector<int32_t> replicas,
                     std::vector<int32_t> isr, int64_t partition_epoch, int64_t lag_max_ms);
  // `leader` (-1: none) leads from `epoch` on. Pending acks=all waits are answered
  // NOT_LEADER_OR_FOLLOWER: the producer retries at the new leader.
  void become_follower(int32_t leader, int32_t epoch, std::vector<int32_t> replicas,
                       std::vector<int32_t> isr, int64_t partition_epoch);
  // The leader's view of its followers; null unless this broker leads in a cluster.
  cluster::replica_tracker* tracker() { return tracker_ ? &*tracker_ : nullptr; }
  int64_t lag_max_ms() const { return lag_max_ms_; }
  // acks=all: `done` runs once every ISR member has the offsets below `end_offset` (Kafka's
  // Partition.checkEnoughReplicasReachOffset): NONE, or NOT_ENOUGH_REPLICAS_AFTER_APPEND when the
  // ISR shrank below `min_insync_replicas` meanwhile, or NOT_LEADER_OR_FOLLOWER when leadership
  // moved first. At once when this broker runs alone. The caller bounds the wait (timeout_ms).
  void when_replicated(int64_t end_offset, int32_t min_insync_replicas,
                       std::function<void(wire::error_code)> done);
  // Re-evaluates the high watermark and waiting acks (after an ISR change, or time passing).
  void on_replication_progress();
  // The followers that may not join the ISR now (replica_tracker::set_ineligible); the high
  // watermark and waiting acks are looked at again.
  void set_ineligible_followers(std::vector<int32_t> ids);
  // Whether acks=all may be acknowledged: false while this broker cannot presume its lease in
  // the metadata store alive (no renewal confirmed for a whole TTL), when the controller may
  // already have moved the leadership. when_replicated then answers NOT_LEADER_OR_FOLLOWER, and
  // so do the waits pending when it turns false. Safety does not rest on it (the ISR rule fences
  // a deposed leader whatever its clock says); it keeps a cut-off leader from acknowledging
  // through a late AlterPartition race and tells clients to look for the new leader.
  void set_acks_all_allowed(bool allowed);
  bool acks_all_allowed() const { return acks_all_allowed_; }

  void add_waiter(data_waiter* w);
  void remove_waiter(data_waiter* w);
  void wake_waiters();

  // Called by DeleteTopics: wakes the waiters, which find the topic gone when they look again,
  // and answers the appends waiting for a roll with errc::log_closed.
  void mark_deleted();
  bool deleted() const { return deleted_; }

 private:
  struct pending_append {
    std::span<uint8_t> batches;
    append_callback done;
  };
  // Appends what waited for a roll, in order, until the queue is empty or the log rolls again.
  void append_pending();
  void maybe_advance_high_watermark();
  void answer_replicated(bool leadership_lost);
  struct pending_ack {
    int64_t end_offset;
    int32_t min_insync_replicas;
    std::function<void(wire::error_code)> done;
  };

  std::shared_ptr<storage::log> log_;
  storage::topic_partition tp_;
  int32_t leader_id_;
  int32_t leader_epoch_;
  ack_sync_policy ack_sync_;
  std::vector<int32_t> replicas_;
  std::vector<int32_t> isr_;
  std::map<int32_t, int64_t> follower_log_end_offsets_;
  role role_ = role::leader;
  int64_t partition_epoch_ = 0;
  int64_t epoch_start_offset_ = 0;
  int64_t lag_max_ms_ = 30000;
  std::optional<cluster::replica_tracker> tracker_;
  std::deque<pending_ack> pending_acks_;
  std::vector<data_waiter*> waiters_;
  std::deque<pending_append> pending_appends_;
  bool deleted_ = false;
  bool acks_all_allowed_ = true;
};

}  // namespace sluice::server

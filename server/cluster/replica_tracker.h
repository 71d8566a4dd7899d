#pragma once
// The leader's view of a partition's followers: how far each has fetched, whether it is caught
// up, where the high watermark may move, which followers leave and which may join the ISR, and
// when an acks=all produce is complete. Kafka's rules (Partition.scala, Replica.scala in 3.x),
// as a value type with no I/O and no clock of its own, so that each rule is tested alone.
//
// The rules:
// - A follower's fetch at offset F tells the leader that the follower's log ends at F (it has
//   everything below F). It is *caught up* at time t when F reached the leader's log end of that
//   moment, or of the follower's previous fetch (Kafka's Replica.updateFetchState): a follower
//   that keeps fetching as fast as the leader appends stays caught up though it is never exactly
//   at the end.
// - The high watermark is the smallest log end among the leader and the followers that count:
//   every member of the *maximal* ISR (the ISR, plus members whose addition is pending, while an
//   AlterPartition is in flight), and any follower that is caught up within
//   replica.lag.time.max.ms and eligible to join (Partition.maybeIncrementLeaderHW). It never
//   moves back. min.insync.replicas does not hold it back: it gates produce instead.
// - A follower leaves the ISR when it has not been caught up for replica.lag.time.max.ms
//   (Partition.getOutOfSyncReplicas). It may join when its log end has reached the high
//   watermark and the start offset of the leader's current epoch (Partition.isFollowerInSync).
// - An acks=all produce whose last offset is O is complete once the high watermark passes O; if
//   the ISR is then smaller than min.insync.replicas it is answered
//   NOT_ENOUGH_REPLICAS_AFTER_APPEND (Partition.checkEnoughReplicasReachOffset). The check before
//   the append (NOT_ENOUGH_REPLICAS) is the caller's, against isr().size().
// - ISR changes go through the controller: begin_change() records the proposal (its additions
//   count for the high watermark at once, its removals only once committed, so a pending change
//   never lets the high watermark pass a replica that may still be in the ISR), and
//   commit_change() or abandon_change() ends it.
//
// Threading: owned by one partition on the io thread.

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace sluice::server::cluster {

class replica_tracker {
 public:
  // Times are milliseconds on a steady clock. `leader_epoch_start_offset` is the log end when
  // this broker became leader (the start offset of its epoch); `high_watermark` the one it had.
  replica_tracker(int32_t local_id, const std::vector<int32_t>& replicas,
                  const std::vector<int32_t>& isr, int64_t leader_epoch_start_offset,
                  int64_t high_watermark, int64_t now_ms);

  // A Fetch from follower `replica` at `fetch_offset`, served when the leader's log ended at
  // `leader_log_end`. Returns true when the high watermark moved (parked fetches and delayed
  // produces then need a look). A fetch from a broker that is not a replica is ignored.
  bool on_follower_fetch(int32_t replica, int64_t fetch_offset, int64_t leader_log_end,
                         int64_t now_ms, int64_t lag_max_ms);
  // The leader appended; with no other ISR member the high watermark follows the log end.
  bool on_leader_append(int64_t leader_log_end, int64_t now_ms, int64_t lag_max_ms);

  int64_t high_watermark() const { return high_watermark_; }
  const std::vector<int32_t>& isr() const { return isr_; }
  bool change_pending() const { return pending_.has_value(); }

  // Followers of the ISR that have not been caught up for lag_max_ms.
  std::vector<int32_t> out_of_sync(int64_t leader_log_end, int64_t now_ms,
                                   int64_t lag_max_ms) const;
  // Eligible followers outside the ISR whose log end has reached the high watermark and the start
  // of the leader's epoch.
  std::vector<int32_t> ready_to_join() const;

  // Replicas that may not join the ISR now (not registered, or in controlled shutdown: the
  // controller refuses them, KRaft's isReplicaIsrEligible). They are not proposed, and a caught-up
  // one does not hold the high watermark as one about to join would.
  void set_ineligible(std::vector<int32_t> ids) { ineligible_ = std::move(ids); }

  // The partition's replicas changed within this leadership (a reassignment began): a new
  // follower is tracked from its first fetch, and one no longer a replica is forgotten.
  void set_replicas(const std::vector<int32_t>& replicas);

  void begin_change(const std::vector<int32_t>& proposed_isr);
  void commit_change(const std::vector<int32_t>& isr, int64_t leader_log_end, int64_t now_ms,
                     int64_t lag_max_ms);
  void abandon_change();

  enum class ack { waiting, complete, not_enough_replicas_after_append };
  ack acks_all(int64_t last_offset, int32_t min_insync_replicas) const;

  // The follower's log end as last fetched, -1 if it has not fetched in this leadership.
  int64_t follower_log_end(int32_t replica) const;

 private:
  struct follower {
    int64_t log_end = -1;
    std::optional<int64_t> last_caught_up_ms;  // never, in this leadership
    int64_t last_fetch_leader_log_end = -1;
    int64_t last_fetch_ms = 0;
  };
  bool caught_up(const follower& f, int64_t leader_log_end, int64_t now_ms,
                 int64_t lag_max_ms) const;
  bool in_maximal_isr(int32_t id) const;
  bool recompute(int64_t leader_log_end, int64_t now_ms, int64_t lag_max_ms);

  int32_t local_id_;
  std::map<int32_t, follower> followers_;  // every replica but the leader
  std::vector<int32_t> isr_;
  std::optional<std::vector<int32_t>> pending_;
  std::vector<int32_t> ineligible_;
  int64_t leader_epoch_start_offset_;
  int64_t high_watermark_;
};

}  // namespace sluice::server::cluster

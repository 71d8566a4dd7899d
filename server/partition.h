#pragma once
// The broker's view of one partition it leads: its log, leader epoch, replica set and ISR, and the
// fetches parked on it.
//
// Threading: owned by the broker's single io thread, like everything in server/; no locks.
//
// Replication concepts are here from the start so that followers are an addition, not a rewrite:
// a follower fetches with its replica id, `record_follower_fetch` stores its log end offset, and
// the high watermark is the minimum log end offset over the ISR. On a single broker the ISR is
// {this node}, so the high watermark follows the log end offset at once.

#include <cstdint>
#include <map>
#include <memory>
#include <system_error>
#include <vector>

#include "storage/log.h"

namespace sluice::server {

// Something parked until a partition gets new data: a long-polling Fetch.
class data_waiter {
 public:
  virtual void on_data() = 0;

 protected:
  ~data_waiter() = default;
};

// Owned by shared_ptr (topic::partitions), so that a fetch parked on a partition keeps it alive
// when DeleteTopics removes the topic meanwhile; such a partition is marked deleted, its log is
// gone, and only the waiter calls may be made on it.
class partition : public std::enable_shared_from_this<partition> {
 public:
  partition(storage::log& log, int32_t leader_id, int32_t leader_epoch);
  partition(const partition&) = delete;
  partition& operator=(const partition&) = delete;

  storage::log& log() { return log_; }
  // Copied, not read through log(): they stay valid after DeleteTopics.
  const storage::topic_partition& tp() const { return tp_; }
  int32_t index() const { return tp_.partition; }

  int32_t leader_id() const { return leader_id_; }
  int32_t leader_epoch() const { return leader_epoch_; }
  const std::vector<int32_t>& replicas() const { return replicas_; }
  const std::vector<int32_t>& isr() const { return isr_; }
  bool is_replica(int32_t broker_id) const;

  int64_t log_start_offset() const { return log_.log_start_offset(); }
  int64_t log_end_offset() const { return log_.log_end_offset(); }
  int64_t high_watermark() const { return log_.high_watermark(); }
  // First offset of the oldest open transaction, or the high watermark; transactions are not
  // supported yet, so it is the high watermark.
  int64_t last_stable_offset() const { return high_watermark(); }

  // Appends producer batches as leader: the log validates them and stamps offsets and this
  // leader's epoch in place. Waiting fetches are woken.
  std::error_code append(std::span<uint8_t> batches, storage::append_info& out);

  // A follower fetched from `fetch_offset`: that is its log end offset.
  void record_follower_fetch(int32_t replica_id, int64_t fetch_offset);

  void add_waiter(data_waiter* w);
  void remove_waiter(data_waiter* w);
  void wake_waiters();

  // Called by DeleteTopics before the log is removed: wakes the waiters, which find the topic
  // gone when they look again. log() must not be used afterwards.
  void mark_deleted();
  bool deleted() const { return deleted_; }

 private:
  void maybe_advance_high_watermark();

  storage::log& log_;
  storage::topic_partition tp_;
  int32_t leader_id_;
  int32_t leader_epoch_;
  std::vector<int32_t> replicas_;
  std::vector<int32_t> isr_;
  std::map<int32_t, int64_t> follower_log_end_offsets_;
  std::vector<data_waiter*> waiters_;
  bool deleted_ = false;
};

}  // namespace sluice::server

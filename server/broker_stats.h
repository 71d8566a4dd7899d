#pragma once
// What requests tell the broker besides their answers: counts for the summary it logs at shutdown
// (broker::close_storage), and whether it is stopping.
//
// Threading: io thread only.
#include <cstdint>

namespace sluice::server {

struct broker_stats {
  // Produce: the batches an acks=all produce appended (the durability summary).
  void count_acks_all_batches(int64_t n) { acks_all_batches += n; }
  // Fetch: a round that warmed cold data before answering (the reads summary).
  void count_cold_read() { ++cold_reads; }

  int64_t acks_all_batches = 0;
  int64_t cold_reads = 0;
};

// Raised once when the broker starts stopping. Shutdown wakes every parked fetch; a fetch that
// sees it raised answers with what it has instead of parking again.
class stop_signal {
 public:
  bool raised() const { return raised_; }
  void raise() { raised_ = true; }

 private:
  bool raised_ = false;
};

}  // namespace sluice::server

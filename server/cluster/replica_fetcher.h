#pragma once
// A follower's fetcher for one leader broker: Kafka's ReplicaFetcherThread, as one coroutine on
// the io thread. It carries every partition this broker follows from that leader, in one Fetch
// request at a time over one broker_client connection, and hands what comes back to a
// replica_sink, which owns the local logs. The fetcher knows neither storage nor the broker.
//
// Each round:
// - Before the first fetch on a connection, ApiVersions tells which Fetch versions the leader
//   serves; the fetcher uses the highest of v13-v16 (topic ids, KIP-516; from v15 the replica id
//   and broker epoch travel in ReplicaState, KIP-903). A leader serving none of them is retried
//   after the back-off, with a log line.
// - The request names each partition with its position: fetch offset (the local log end), the
//   current leader epoch, the epoch of the last local batch (v12+, KIP-595) and the local log
//   start. It is part of a KIP-227 fetch session: a full fetch (epoch 0) first, then incremental
//   ones naming only partitions whose position changed since the leader last saw it, and
//   forgetting the ones removed or stopped. FETCH_SESSION_ID_NOT_FOUND and
//   INVALID_FETCH_SESSION_EPOCH go back to a full fetch at once; so does a lost connection,
//   after the back-off.
// - Each partition in the response, in order:
//   - records: a trailing partial batch is cut off (a fetch's byte limit may end inside a batch),
//     and the complete batches go to append() with the leader's high watermark and log start,
//     even when there are none, so that those still move. A batch whose framing is broken is not
//     appended; the partition is fetched again after the back-off.
//   - DivergingEpoch (Fetch v12+): the local log went past where the leader's copy of that epoch
//     ends. truncate() to min(its end offset, local log end), as Kafka does, and fetch again:
//     if the epoch before that diverged too, the leader says so next time.
//   - OFFSET_OUT_OF_RANGE below the leader's log start: the local log is behind what the leader
//     still has, so reset_to() the leader's log start (Kafka's truncateFullyAndStartAt). Any
//     other out-of-range answer, and any other partition error (NOT_LEADER_OR_FOLLOWER,
//     FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC_ID, ...), stops the partition and
//     goes to partition_error(): the replica manager knows the partition's new state and sets it
//     again with add_partitions.
//   A response for a partition whose state changed while the fetch was out (add_partitions) is
//   ignored: it answered a question the fetcher no longer asks.
//
// Positions: the fetcher keeps each partition's position, from add_partitions and, after every
// append, truncation or reset, from the sink's fetch_position() (the log decides where it ends
// and which epoch its last batch has). Anything else that changes a followed partition (a new
// leader epoch under the same leader) comes in through add_partitions, which replaces its state.
//
// Log lines (one per event, naming the leader and the partition): start, stop, connection lost
// and back again, truncation and reset, a partition stopped by an error, and while a partition
// lags behind the leader's high watermark, its progress every progress_interval.
//
// Time: back-offs and progress intervals come from the timer_service (server/timers.h).
//
// Threading: the io thread only. stop() (or the destructor) ends the loop: no sink call starts
// after it, though one in progress finishes in the sink's own time. The sink must outlive that.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "server/cluster/broker_client.h"
#include "server/timers.h"
#include "wire/codec.h"
#include "wire/error_code.h"

namespace sluice::server::cluster {

struct topic_partition_id {
  wire::uuid topic_id{};
  int32_t partition = 0;
  auto operator<=>(const topic_partition_id&) const = default;
  bool operator==(const topic_partition_id&) const = default;
};

// Where fetched data goes: the local replicas. Implemented by the replica manager; the tests'
// is a map of in-memory logs.
class replica_sink {
 public:
  struct position {
    int64_t fetch_offset = 0;           // the local log end offset
    int32_t last_fetched_epoch = -1;    // the epoch of the local log's last batch; -1: none
    int32_t current_leader_epoch = -1;  // the partition's leader epoch as this broker knows it
    int64_t log_start_offset = 0;       // the local log start offset
    bool operator==(const position&) const = default;
  };

  virtual ~replica_sink() = default;

  // The partition's position now, asked after each append, truncation or reset; nullopt if it is
  // no longer followed (the fetcher drops it).
  virtual std::optional<position> fetch_position(topic_partition_id tp) = 0;
  // Appends `batches` (whole batches, possibly none) at the local log end, and takes the leader's
  // high watermark and log start offset. An error stops the partition (partition_error follows).
  virtual boost::asio::awaitable<std::error_code> append(topic_partition_id tp,
                                                         std::span<const uint8_t> batches,
                                                         int64_t leader_high_watermark,
                                                         int64_t leader_log_start_offset) = 0;
  // Removes everything from `offset` on (the leader answered DivergingEpoch).
  virtual boost::asio::awaitable<std::error_code> truncate(topic_partition_id tp,
                                                           int64_t offset) = 0;
  // Empties the log and starts it again at `offset` (the leader's log start is past the local
  // log end).
  virtual boost::asio::awaitable<std::error_code> reset_to(topic_partition_id tp,
                                                           int64_t offset) = 0;
  // The fetcher stopped fetching the partition because of `error`, until add_partitions sets its
  // state again.
  virtual void partition_error(topic_partition_id tp, wire::error_code error) = 0;
};

struct replica_fetcher_config {
  int32_t local_node_id = -1;  // the replica id the leader sees
  int64_t broker_epoch = -1;   // ReplicaState.ReplicaEpoch (Fetch v15+)
  int32_t leader_id = -1;
  // Where the leader is, and the connection's limits: client.max_response_bytes must allow
  // max_bytes plus what a leader may return beyond it (broker_client.h). Its local_node_id, and
  // its name when empty ("broker <leader_id>"), are filled in from the fields above.
  broker_client_config client;
  int32_t max_wait_ms = 500;                  // replica.fetch.wait.max.ms
  int32_t min_bytes = 1;                      // replica.fetch.min.bytes
  int32_t max_bytes = 10 * 1024 * 1024;       // replica.fetch.response.max.bytes
  int32_t partition_max_bytes = 1024 * 1024;  // replica.fetch.max.bytes
  std::chrono::milliseconds backoff{1000};    // replica.fetch.backoff.ms
  std::chrono::milliseconds progress_interval{10'000};
};

struct partition_to_fetch {
  topic_partition_id tp;
  std::string topic;  // the topic's name, for log lines
  replica_sink::position initial;
};

class replica_fetcher {
 public:
  // Fetch versions this fetcher speaks: topic ids from 13; 17 adds only KIP-853's directory id.
  static constexpr int16_t min_fetch_version = 13;
  static constexpr int16_t max_fetch_version = 16;

  replica_fetcher(boost::asio::any_io_executor executor, timer_service& timers, replica_sink& sink,
                  replica_fetcher_config config);
  ~replica_fetcher();
  replica_fetcher(const replica_fetcher&) = delete;
  replica_fetcher& operator=(const replica_fetcher&) = delete;

  // Adds partitions, or replaces the state of ones already here, which also resumes a partition
  // stopped by an error.
  void add_partitions(std::vector<partition_to_fetch> partitions);
  // Stops fetching them; a response already on its way for them is ignored.
  void remove_partitions(const std::vector<topic_partition_id>& partitions);
  void start();
  // Ends the loop for good: the fetch in flight is abandoned, no sink call starts after this.
  void stop();

  size_t partition_count() const;
  bool running() const;
  // The Fetch version agreed with the leader; 0 before ApiVersions answered.
  int16_t fetch_version() const;
  int32_t leader_id() const;

 private:
  class impl;
  std::shared_ptr<impl> impl_;
};

}  // namespace sluice::server::cluster

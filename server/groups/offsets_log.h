#pragma once
// Consumer group state persisted as Kafka persists it: records in the internal topic
// `__consumer_offsets`, in the same segment store as every other topic, replayed at start.
//
// One offsets_log writes one partition. A broker running alone keeps all its groups in
// `__consumer_offsets-0`; in a cluster the groups spread over the topic's partitions by
// abs(groupId.hashCode()) % N, as in Kafka, and offsets_topic.h routes each group's writes. The
// record format is Kafka's, so Kafka's tools (kafka-console-consumer --formatter
// ...OffsetsMessageFormatter) read it unchanged.
//
// Records (key and value each start with an int16 version; classic, non-flexible encodings;
// strings int16-length, bytes int32-length, arrays int32-count, -1 for null):
//
//   OffsetCommitKey    v1 (v0 read): group string, topic string, partition int32
//   OffsetCommitValue  v3 (v0-v4 read): offset int64, leaderEpoch int32 (v3+), metadata string,
//                      commitTimestamp int64, expireTimestamp int64 (v1 only)
//   GroupMetadataKey   v2: group string
//   GroupMetadataValue v3 (v0-v4 read): protocolType string, generation int32,
//                      protocol string?, leader string?, currentStateTimestamp int64 (v2+),
//                      members [memberId string, groupInstanceId string? (v3+), clientId string,
//                      clientHost string, rebalanceTimeout int32 (v1+), sessionTimeout int32,
//                      subscription bytes, assignment bytes]
//
// A deletion is the key with a null value (a tombstone). Version 4 of each value is flexible
// (compact lengths, tagged fields): newer Kafka brokers write it; it is read here, never written.
//
// Writes: each group_store call appends one uncompressed batch (producer id -1, CreateTime = the
// wall clock) holding all its records, through the partition, so the batch gets the partition's
// leader epoch, the high watermark follows and parked fetches of __consumer_offsets wake. As Kafka
// appends group records with acks=all, a write completes once the in-sync replicas have the batch
// (in a cluster: replicate_with) and the broker's durability contract says it is durable
// (partition::when_acknowledgeable: by default after the fdatasync that covers it, shared with
// every append made meanwhile). Completions are posted in write order.
//
// Replay: read every batch from log_start_offset to log_end_offset; per key the last record wins
// and a tombstone deletes. The log is never compacted (Sluice has no log cleaner yet), so it grows
// with every commit and replay reads all of it; compaction would keep only the last record per
// key, which replay already assumes.
//
// Threading: io thread only, like the partition it writes to.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "server/groups/group_store.h"
#include "server/partition.h"
#include "server/timers.h"
#include "storage/disk_executor.h"
#include "storage/log.h"

namespace sluice::server {

inline constexpr std::string_view consumer_offsets_topic = "__consumer_offsets";

// Record encodings, exposed for the tests and for tools. Every function here is pure.
namespace offsets_record {

inline constexpr int16_t offset_commit_key_version = 1;
inline constexpr int16_t group_metadata_key_version = 2;
inline constexpr int16_t offset_commit_value_version = 3;
inline constexpr int16_t group_metadata_value_version = 3;

std::vector<uint8_t> offset_commit_key(std::string_view group_id, const topic_partition& tp);
std::vector<uint8_t> offset_commit_value(const committed_offset& value);
std::vector<uint8_t> group_metadata_key(std::string_view group_id);
std::vector<uint8_t> group_metadata_value(const group_metadata_record& record,
                                          int64_t current_state_timestamp_ms);

struct key {
  enum class kind { offset_commit, group_metadata, unknown };
  kind type = kind::unknown;
  int16_t version = -1;
  std::string group_id;
  topic_partition partition;  // offset_commit only
};

// False if the bytes do not parse (or have bytes left over). An unknown version is not a parse
// failure: it gives kind::unknown, which replay skips as Kafka does.
bool decode_key(std::span<const uint8_t> bytes, key& out);
bool decode_offset_commit_value(std::span<const uint8_t> bytes, committed_offset& out);
bool decode_group_metadata_value(std::span<const uint8_t> bytes, group_metadata_record& out,
                                 int64_t& current_state_timestamp_ms);

}  // namespace offsets_record

// What replay found for one group: the last metadata record and committed offset per partition
// that no tombstone followed.
struct persisted_group {
  std::optional<group_metadata_record> metadata;
  int64_t current_state_timestamp_ms = -1;  // from GroupMetadataValue v2+, else -1
  std::map<topic_partition, committed_offset> offsets;
};

struct replay_stats {
  int64_t batches = 0;
  int64_t records = 0;
  int64_t skipped_records = 0;  // unknown key versions (e.g. KIP-848 records), as Kafka skips
  int64_t skipped_batches = 0;  // control and transactional batches (not written by Sluice yet)
};

// Reads the whole log. Errors: storage::errc::corrupt_message for a batch whose framing or CRC
// is bad, storage::errc::invalid_record for a compressed batch (Sluice never writes one) or a
// record whose key or value does not parse, and whatever log::read or pread reports. On error
// `out` holds what was read before the bad batch; the caller decides whether to start anyway.
std::error_code read_consumer_offsets(const storage::log& log,
                                      std::map<std::string, persisted_group, std::less<>>& out,
                                      replay_stats* stats = nullptr);

// Receives the replayed state. For each group, in group id order: load_group (if its metadata
// survived) and then load_offset for each partition in (topic, partition) order.
class group_loader {
 public:
  virtual void load_group(std::string_view group_id, const group_metadata_record& record,
                          int64_t current_state_timestamp_ms) = 0;
  virtual void load_offset(std::string_view group_id, const offset_record& record) = 0;

 protected:
  ~group_loader() = default;
};

void deliver(const std::map<std::string, persisted_group, std::less<>>& groups,
             group_loader& loader);

struct loaded_consumer_offsets {
  std::map<std::string, persisted_group, std::less<>> groups;
  replay_stats stats;
};

// read_consumer_offsets for a partition a broker comes to lead while it serves clients: the io
// thread never waits for the disk (cold pages are warmed, batches read and decoded in jobs of
// `disk`), and `done` runs on the io thread with what was read (on error: up to the bad batch).
// Reads from the log start to the log end as they are when it starts; the partition is kept
// alive meanwhile. A big log logs its progress every 256 MiB.
void load_consumer_offsets_async(
    std::shared_ptr<partition> p, storage::disk_executor& disk,
    std::function<void(std::error_code, loaded_consumer_offsets)> done);

// read_consumer_offsets then deliver (only when the read succeeded).
std::error_code replay_consumer_offsets(const storage::log& log, group_loader& loader,
                                        replay_stats* stats = nullptr);

// How a cluster's offsets partition waits for its in-sync replicas (offsets_log::replicate_with).
struct offsets_replication {
  timer_service* timers = nullptr;
  std::chrono::milliseconds timeout{5000};       // offsets.commit.timeout.ms
  std::function<int32_t()> min_insync_replicas;  // the topic's min.insync.replicas
};

// The group_store over partition 0 of __consumer_offsets. Append failures become the error codes
// Kafka's GroupMetadataManager (and, for tombstones, Kafka 4's GroupCoordinatorService) returns
// for them: a storage failure (also a closed log at shutdown) NOT_COORDINATOR, an oversized
// commit INVALID_COMMIT_OFFSET_SIZE, anything else UNKNOWN_SERVER_ERROR.
class offsets_log final : public group_store {
 public:
  // `p` must outlive this; completions are posted to `executor`. `now_ms` is the wall clock
  // (record timestamps, currentStateTimestamp).
  offsets_log(partition& p, boost::asio::any_io_executor executor,
              std::function<int64_t()> now_ms = {});

  // In a cluster: a write completes once every in-sync replica has it too (Kafka's acks=all
  // append), within `r.timeout` (offsets.commit.timeout.ms), with the topic's
  // min.insync.replicas. Without this call, or on a broker running alone, only the local
  // durability counts.
  void replicate_with(offsets_replication r) { replication_ = std::move(r); }

  void store_group(std::string_view group_id, const group_metadata_record& record,
                   completion done) override;
  void store_offsets(std::string_view group_id, std::span<const offset_record> offsets,
                     completion done) override;
  void remove_offsets(std::string_view group_id, std::span<const topic_partition> partitions,
                      completion done) override;
  void remove_group(std::string_view group_id, std::span<const topic_partition> partitions,
                    completion done) override;

 private:
  struct pending_record {
    std::vector<uint8_t> key;
    std::optional<std::vector<uint8_t>> value;
  };
  struct pending_write {
    completion done;
    std::optional<wire::error_code> result;  // set once the write is durable or failed
  };
  // One batch holding `records`, every record stamped `now`.
  static std::shared_ptr<std::vector<uint8_t>> batch_of(const std::vector<pending_record>& records,
                                                        int64_t now);
  // Appends `records` and completes `done` with NONE once the batch is durable, or with
  // `map(error)` when the append or its sync fails; `what` names the write in the log line of a
  // failure.
  void append_then(const std::vector<pending_record>& records, int64_t now, completion done,
                   wire::error_code (*map)(wire::error_code), std::string_view what,
                   std::string_view group_id);
  // Records `write`'s result and posts the completions that are due, in write order.
  void complete(const std::shared_ptr<pending_write>& write, wire::error_code result);

  partition& partition_;
  // Keeps a partition that is shared-owned (every broker's) alive while writes are in flight,
  // even if the broker drops its replica meanwhile.
  std::shared_ptr<partition> keep_partition_;
  boost::asio::any_io_executor executor_;
  std::optional<offsets_replication> replication_;
  std::function<int64_t()> now_ms_;
  std::deque<std::shared_ptr<pending_write>> in_order_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace sluice::server

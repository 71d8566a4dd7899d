#pragma once
// Partition logs on local disk, in Kafka's on-disk format (see storage/README.md for the layout
// and the deviations from Kafka).
//
// `log` is one partition: a directory of segments holding record batches exactly as they came off
// the wire, with sparse offset and time indexes. Appends validate and stamp batches in place and
// write them with one pwrite; reads return file slices for sendfile, never bytes.
// `log_manager` owns every log under one log.dirs root, the checkpoint files and the
// clean-shutdown marker, and runs crash recovery at start.
//
// Threading: single-threaded. Everything here is owned and called by the broker's io thread; there
// are no locks. File slices handed out by read() may outlive the call (and even the segment, e.g.
// after truncation): their keep_alive pins the descriptor.

#include <compare>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

#include "storage/errc.h"
#include "storage/producer_state.h"
#include "wire/codec.h"
#include "wire/frame.h"

namespace sluice::storage {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
};

// Milliseconds since the Unix epoch from the system clock: what the time-dependent calls below
// default to. Tests pass their own `now_ms` instead.
int64_t wall_clock_ms();

// message.timestamp.type
enum class timestamp_type { create_time, log_append_time };

// Kafka's topic-level log settings (defaults as in Kafka 3.x). One log_manager holds the broker
// defaults; a topic with overrides gets its own copy (log_manager::create, log::set_config).
struct log_config {
  // segment.bytes: a segment is rolled when an append would take it past this size. Capped at
  // 2^31 - 1, since index positions are int32.
  int64_t segment_bytes = 1073741824;
  // segment.ms: a non-empty segment is rolled when an append's timestamp is this much newer than
  // the segment's first append (or, when that carries no timestamp, than the segment's creation).
  int64_t segment_ms = 604800000;
  // retention.ms: segments whose largest timestamp is older than this are deleted; -1 keeps them.
  int64_t retention_ms = 604800000;
  // retention.bytes: oldest segments are deleted while the log stays at least this large without
  // them; -1 means no limit.
  int64_t retention_bytes = -1;
  // max.message.bytes: the largest batch (header included) an append accepts.
  int32_t max_message_bytes = 1048588;
  timestamp_type message_timestamp_type = timestamp_type::create_time;
  // index.interval.bytes: bytes appended between two index entries.
  int32_t index_interval_bytes = 4096;
  // producer.id.expiration.ms. A broker setting in Kafka, carried here because each log owns the
  // state it applies to.
  int64_t producer_id_expiration_ms = default_producer_id_expiration_ms;
};

struct append_info {
  int64_t base_offset = -1;    // offset given to the first record
  int64_t last_offset = -1;    // offset of the last record
  int64_t max_timestamp = -1;  // largest batch maxTimestamp of the append (after stamping)
  int32_t batch_count = 0;
  int64_t bytes = 0;
  // The time stamped into the batches under LogAppendTime; -1 under CreateTime. Produce responses
  // carry it.
  int64_t log_append_time = -1;
  // The log start offset after the append, for Produce responses.
  int64_t log_start_offset = -1;
  // The append was a retry of batches already in the log: nothing was written, and the offsets
  // (and max_timestamp) are those of the original write. batch_count and bytes stay 0.
  bool duplicate = false;
};

struct read_info {
  // Whole batches in offset order, at most one slice per segment. Each slice's keep_alive pins its
  // segment file until the slice is dropped.
  std::vector<wire::file_slice> slices;
  int64_t bytes = 0;
};

class segment;

// One partition's log. Created through log::open or log_manager.
class log {
 public:
  // Opens (creating `dir` if missing) the partition log in `dir`. When `recover_unflushed`, every
  // segment holding offsets at or after `recovery_point` is recovered: each batch's size, CRC and
  // offsets are checked, the first bad or torn batch and everything after it are truncated (one
  // log line), and later segments are deleted. Other segments only get an index sanity check; a
  // missing or inconsistent index is rebuilt from the .log.
  //
  // `log_start_offset` is the checkpointed start (log-start-offset-checkpoint): the start becomes
  // the larger of it and the first segment's base offset; if it lies past the log end, the log is
  // emptied and restarts there (Kafka's LogLoader does the same). Then producer state is loaded
  // from the newest valid .snapshot (one log line per snapshot discarded) and the batches after it
  // are replayed from the segments.
  static std::unique_ptr<log> open(const std::filesystem::path& dir, topic_partition tp,
                                   log_config cfg, bool recover_unflushed, int64_t recovery_point,
                                   std::error_code& ec, int64_t log_start_offset = 0);
  ~log();
  log(const log&) = delete;
  log& operator=(const log&) = delete;

  const topic_partition& tp() const { return tp_; }
  const std::filesystem::path& dir() const { return dir_; }

  const log_config& config() const { return cfg_; }
  // Takes effect from the next append or retention pass; segments already written stay as they
  // are (a smaller segment_bytes does not split them).
  void set_config(const log_config& cfg);

  // From partition.metadata; nullopt when the file is absent.
  std::optional<wire::uuid> topic_id() const { return topic_id_; }
  // Writes partition.metadata. Setting the id already stored is a no-op; a different one fails
  // with errc::inconsistent_topic_id.
  void set_topic_id(wire::uuid id, std::error_code& ec);

  // A client append (Kafka's UnifiedLog.appendAsLeader), all or nothing. In order:
  //  1. Every batch is checked: errc::record_too_large when larger than max_message_bytes, then
  //     magic 2, sizes, CRC-32C, lastOffsetDelta + 1 == recordsCount (errc::corrupt_message for
  //     CRC and size, errc::invalid_record for the rest; empty input is errc::invalid_record).
  //     The whole append must fit in a segment (errc::record_batch_too_large).
  //  2. Idempotent producers: a retry of one of the producer's last five batches writes nothing
  //     and succeeds with the original offsets (append_info::duplicate). A sequence gap, an older
  //     epoch, or a non-transactional batch inside an open transaction fail with
  //     errc::out_of_order_sequence, errc::invalid_producer_epoch, errc::invalid_txn_state; a
  //     control batch or a negative sequence with a producer id is errc::invalid_record.
  //  3. The broker's fields are stamped IN PLACE in the caller's buffer: baseOffset (from
  //     log_end_offset()) and partitionLeaderEpoch, outside the CRC; under LogAppendTime also the
  //     timestamp-type bit and maxTimestamp = now_ms, and the CRC is recomputed (baseTimestamp and
  //     the records' deltas are kept, as in Kafka). Under CreateTime a LogAppendTime bit set by
  //     the client is cleared (CRC recomputed); maxTimestamp is trusted, records are not decoded.
  //  4. The active segment is rolled first when it is non-empty and the append would take it
  //     past segment_bytes, or segment_ms has passed (see log_config::segment_ms; `now_ms` is the
  //     clock for segments without timestamps). A roll writes a producer-state snapshot.
  //  5. One pwrite; index entries; producer state records the batches.
  std::error_code append(std::span<uint8_t> batches, int32_t leader_epoch, append_info& out,
                         int64_t now_ms = wall_clock_ms());

  // Whole batches starting with the one that contains `offset`, up to `max_bytes` (but at least
  // one batch when `min_one`, Kafka's minOneMessage), never including a batch whose offsets reach
  // `max_offset` (exclusive: the high watermark for consumers, log_end_offset for followers).
  // offset == max_offset gives an empty result; offset < log_start_offset() or
  // > log_end_offset() gives errc::offset_out_of_range. May span segments. Reads batch headers
  // only (pread of 61 bytes), never record data.
  std::error_code read(int64_t offset, int64_t max_bytes, int64_t max_offset, bool min_one,
                       read_info& out) const;

  // The first offset a consumer may read. It may lie inside the first segment (after
  // DeleteRecords, or a restart with a checkpointed start): the batches below it stay on disk
  // until their whole segment can go, but are never served.
  int64_t log_start_offset() const { return log_start_offset_; }
  int64_t log_end_offset() const;
  int64_t high_watermark() const { return high_watermark_; }
  // Clamped to [log_start_offset(), log_end_offset()].
  void set_high_watermark(int64_t hw);
  // Offsets below this are known to be on disk (fsynced); checkpointed by log_manager.
  int64_t recovery_point() const { return recovery_point_; }

  // First offset whose record timestamp is >= ts, nullopt if none. Exact for uncompressed batches
  // (records are iterated); for a compressed batch whose maxTimestamp is >= ts, the batch's base
  // offset. Uses the time index, then scans batch headers.
  std::optional<int64_t> offset_for_timestamp(int64_t ts) const;
  // The same search returning {timestamp of the found record, offset}, for ListOffsets v1+ which
  // reports both. For a compressed batch the timestamp is the batch's maxTimestamp.
  std::optional<std::pair<int64_t, int64_t>> timestamp_and_offset_for(int64_t ts) const;
  // {max timestamp, offset of the first record carrying it} for ListOffsets MAX_TIMESTAMP; (-1, -1)
  // when the log is empty. For a compressed batch, its base offset.
  std::pair<int64_t, int64_t> max_timestamp_and_offset() const;

  // fsyncs the active segment and its indexes; the recovery point becomes log_end_offset().
  std::error_code flush();
  // Drops every batch with offsets >= `offset` (whole batches: a batch containing `offset` goes
  // too), deleting later segments; the log end offset becomes the end of what remains. An offset
  // below log_start_offset() empties the log and restarts it at `offset`, as does a cut that
  // would leave the log end below the log start. Producer state is reloaded from the newest
  // snapshot at or below the new end and the log after it replayed.
  std::error_code truncate_to(int64_t offset);

  // Kafka's DeleteRecords (UnifiedLog.maybeIncrementLogStartOffset, then the log-start part of
  // deleteOldSegments): moves the log start up to `offset`, never down, and deletes every segment
  // that lies wholly below it except the active one, which stays (possibly holding only offsets
  // below the start) until it rolls. `offset` -1 means the high watermark
  // (DeleteRecordsRequest.HIGH_WATERMARK); otherwise it must be in [0, high_watermark()], else
  // errc::offset_out_of_range. `new_log_start` gets the resulting log start offset (Kafka's low
  // watermark for a single replica).
  std::error_code delete_records_before(int64_t offset, int64_t& new_log_start);

  // One retention pass (Kafka's UnifiedLog.deleteOldSegments), deleting from the oldest segment:
  //  - by time: segments whose largest timestamp (the .log's mtime when no batch has one) is more
  //    than retention_ms before `now_ms`, stopping at the first that is not;
  //  - by size: then the oldest segments while the log without them is still >= retention_bytes;
  //  - by log start: then segments wholly below log_start_offset().
  // Never the active segment, and only segments whose successor starts at or below the high
  // watermark (Kafka's rule: uncommitted data is not retention's to delete). The log start moves
  // to the first remaining segment's base offset. Files are unlinked at once (see README).
  // Returns the number of segments deleted; logs one line per reason that deleted any.
  size_t enforce_retention(int64_t now_ms);

  // Forgets idle idempotent producers (producer_id_expiration_ms); for the broker's periodic task
  // (Kafka's producer.id.expiration.check.interval.ms).
  void remove_expired_producers(int64_t now_ms);
  const producer_state_manager& producer_state() const { return producers_; }

  int64_t size_bytes() const;
  size_t segment_count() const { return segments_.size(); }

  // Adds the final time index entry, fsyncs, writes a producer-state snapshot at the log end and
  // closes the files. Idempotent; afterwards append, read, truncate, delete_records_before fail
  // with errc::log_closed and enforce_retention does nothing.
  void close();
  bool closed() const { return closed_; }

 private:
  log(std::filesystem::path dir, topic_partition tp, log_config cfg);

  std::error_code load(bool recover_unflushed, int64_t recovery_point, int64_t checkpointed_start);
  std::error_code roll(int64_t now_ms);
  // Whether segment.ms says the active segment is due to roll before an append whose largest
  // timestamp is `append_max_timestamp`.
  std::error_code time_to_roll(int64_t append_max_timestamp, int64_t now_ms, bool& due);
  std::error_code truncate_fully(int64_t offset);
  // truncate_and_reload, one log line per discarded snapshot, then replay of the log after the
  // state's map end offset; after a clean shutdown with no snapshot at all, no replay (Kafka's
  // rule for logs written before snapshots existed).
  std::error_code load_producer_state(int64_t now_ms, bool after_clean_shutdown);
  // Closes and unlinks segments_[0, count), moves the log start to the next base offset, drops
  // producer snapshots below it, and logs one line. Never called with the active segment.
  std::error_code delete_oldest_segments(size_t count, std::string_view reason);
  size_t segment_for(int64_t offset) const;  // index of the last segment with base <= offset
  std::error_code locate(size_t seg, int64_t offset, int64_t& position) const;
  void remember_position(int64_t offset, int64_t segment_base, int64_t position) const;
  std::string name() const;

  std::filesystem::path dir_;
  topic_partition tp_;
  log_config cfg_;
  std::optional<wire::uuid> topic_id_;
  std::vector<std::unique_ptr<segment>> segments_;  // by base offset; back() is the active one
  producer_state_manager producers_;
  int64_t log_start_offset_ = 0;
  int64_t high_watermark_ = 0;
  int64_t recovery_point_ = 0;
  bool closed_ = false;

  // Where recent reads ended, so that a consumer tailing the log finds its next position without
  // an index lookup and header scan. Mutable: a cache touched by const reads (single-threaded).
  struct position_hint {
    int64_t offset = -1;
    int64_t segment_base = -1;
    int64_t position = -1;
  };
  mutable std::vector<position_hint> hints_;
  mutable size_t next_hint_ = 0;
};

}  // namespace sluice::storage

template <>
struct std::hash<sluice::storage::topic_partition> {
  size_t operator()(const sluice::storage::topic_partition& tp) const noexcept {
    return std::hash<std::string>{}(tp.topic) * 31 + std::hash<int32_t>{}(tp.partition);
  }
};

namespace sluice::storage {

// All partition logs under one log.dirs root.
class log_manager {
 public:
  log_manager(std::filesystem::path root, log_config defaults);
  // Closes the logs without a clean-shutdown marker (as after a crash); call shutdown() first for
  // a clean stop.
  ~log_manager();
  log_manager(const log_manager&) = delete;
  log_manager& operator=(const log_manager&) = delete;

  // Creates root if missing, checks it is a writable directory (else errc::io_error), and loads
  // every <topic>-<partition> directory. Reads the checkpoints; if .kafka_cleanshutdown is absent,
  // segments at/after each log's recovery point are recovered (see log::open). Applies the
  // checkpointed log start offsets and high watermarks, then deletes the marker.
  std::error_code load();

  log* find(const topic_partition& tp);
  // Returns the existing log for `tp` or creates its directory. A non-zero topic_id is written to
  // partition.metadata (errc::inconsistent_topic_id if the log already has another). Topic names
  // are checked against Kafka's rules ([a-zA-Z0-9._-], at most 249 characters, not "." or "..")
  // so that they are safe as directory names.
  // The log gets the manager's default config.
  log* create(const topic_partition& tp, const wire::uuid& topic_id, std::error_code& ec);
  // The same with the topic's own config. An existing log keeps its config: change it with
  // log::set_config. Per-topic configs are not stored in the log directory (Kafka keeps them in
  // the cluster metadata), so after load() every log has the defaults until the caller applies
  // its overrides.
  log* create(const topic_partition& tp, const wire::uuid& topic_id, const log_config& cfg,
              std::error_code& ec);
  // Every log, sorted by topic then partition.
  std::vector<log*> logs();
  // Drops the log of `tp` and deletes its directory; no-op for an unknown partition. As Kafka
  // does, the directory is first renamed to "<topic>-<partition>.<random hex>-delete", so that a
  // crash part-way leaves a directory the next load() deletes, never a partition that loads with
  // some of its segments missing. File slices already handed out stay readable.
  std::error_code remove(const topic_partition& tp);

  // log::enforce_retention over every log; returns the total number of segments deleted.
  size_t enforce_retention(int64_t now_ms);
  // log::remove_expired_producers over every log.
  void remove_expired_producers(int64_t now_ms);

  // Writes recovery-point-offset-checkpoint, log-start-offset-checkpoint and
  // replication-offset-checkpoint (high watermarks) atomically.
  std::error_code checkpoint();
  // Closes every log (fsync, final index entries), checkpoints with recovery point = log end
  // offset, then writes .kafka_cleanshutdown. The manager must not be used afterwards.
  std::error_code shutdown();

  const std::filesystem::path& root() const { return root_; }

 private:
  std::filesystem::path root_;
  log_config defaults_;
  std::unordered_map<topic_partition, std::unique_ptr<log>> logs_;
};

// Kafka's checkpoint and marker file names (in each log dir).
inline constexpr const char* recovery_point_checkpoint_file = "recovery-point-offset-checkpoint";
inline constexpr const char* log_start_offset_checkpoint_file = "log-start-offset-checkpoint";
inline constexpr const char* high_watermark_checkpoint_file = "replication-offset-checkpoint";
inline constexpr const char* clean_shutdown_file = ".kafka_cleanshutdown";
inline constexpr const char* partition_metadata_file = "partition.metadata";

}  // namespace sluice::storage

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
#include "wire/codec.h"
#include "wire/frame.h"

namespace sluice::storage {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
};

struct log_config {
  // A segment is rolled when an append would take it past this size. Capped at 2^31 - 1, since
  // index positions are int32.
  int64_t segment_bytes = 1073741824;
  // Bytes appended between two index entries (Kafka's index.interval.bytes).
  int32_t index_interval_bytes = 4096;
};

struct append_info {
  int64_t base_offset = -1;    // offset given to the first record
  int64_t last_offset = -1;    // offset of the last record
  int64_t max_timestamp = -1;  // largest batch maxTimestamp of the append
  int32_t batch_count = 0;
  int64_t bytes = 0;
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
  static std::unique_ptr<log> open(const std::filesystem::path& dir, topic_partition tp,
                                   log_config cfg, bool recover_unflushed, int64_t recovery_point,
                                   std::error_code& ec);
  ~log();
  log(const log&) = delete;
  log& operator=(const log&) = delete;

  const topic_partition& tp() const { return tp_; }
  const std::filesystem::path& dir() const { return dir_; }

  // From partition.metadata; nullopt when the file is absent.
  std::optional<wire::uuid> topic_id() const { return topic_id_; }
  // Writes partition.metadata. Setting the id already stored is a no-op; a different one fails
  // with errc::inconsistent_topic_id.
  void set_topic_id(wire::uuid id, std::error_code& ec);

  // Validates every batch in `batches` (magic 2, sizes, CRC-32C, lastOffsetDelta + 1 ==
  // recordsCount); if any is bad nothing is written and the error says which
  // (errc::corrupt_message for CRC and size, errc::invalid_record for the rest; empty input is
  // errc::invalid_record). Otherwise assigns offsets from log_end_offset() by patching baseOffset
  // and partitionLeaderEpoch IN PLACE in the caller's buffer, writes the bytes with one pwrite,
  // updates the indexes, and first rolls the segment when the append would take it past
  // segment_bytes. The batches' maxTimestamp is trusted (records are not decoded).
  std::error_code append(std::span<uint8_t> batches, int32_t leader_epoch, append_info& out);

  // Whole batches starting with the one that contains `offset`, up to `max_bytes` (but at least
  // one batch when `min_one`, Kafka's minOneMessage), never including a batch whose offsets reach
  // `max_offset` (exclusive: the high watermark for consumers, log_end_offset for followers).
  // offset == max_offset gives an empty result; offset < log_start_offset() or
  // > log_end_offset() gives errc::offset_out_of_range. May span segments. Reads batch headers
  // only (pread of 61 bytes), never record data.
  std::error_code read(int64_t offset, int64_t max_bytes, int64_t max_offset, bool min_one,
                       read_info& out) const;

  int64_t log_start_offset() const;
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
  // below log_start_offset() empties the log and restarts it at `offset`.
  std::error_code truncate_to(int64_t offset);

  int64_t size_bytes() const;
  size_t segment_count() const { return segments_.size(); }

  // Adds the final time index entry, fsyncs and closes the files. Idempotent; afterwards append,
  // read and truncate fail with errc::log_closed.
  void close();
  bool closed() const { return closed_; }

 private:
  log(std::filesystem::path dir, topic_partition tp, log_config cfg);

  std::error_code load(bool recover_unflushed, int64_t recovery_point);
  std::error_code roll();
  std::error_code truncate_fully(int64_t offset);
  size_t segment_for(int64_t offset) const;  // index of the last segment with base <= offset
  std::error_code locate(size_t seg, int64_t offset, int64_t& position) const;
  void remember_position(int64_t offset, int64_t segment_base, int64_t position) const;
  std::string name() const;

  std::filesystem::path dir_;
  topic_partition tp_;
  log_config cfg_;
  std::optional<wire::uuid> topic_id_;
  std::vector<std::unique_ptr<segment>> segments_;  // by base offset; back() is the active one
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
  // checkpointed high watermarks, then deletes the marker.
  std::error_code load();

  log* find(const topic_partition& tp);
  // Returns the existing log for `tp` or creates its directory. A non-zero topic_id is written to
  // partition.metadata (errc::inconsistent_topic_id if the log already has another). Topic names
  // are checked against Kafka's rules ([a-zA-Z0-9._-], at most 249 characters, not "." or "..")
  // so that they are safe as directory names.
  log* create(const topic_partition& tp, const wire::uuid& topic_id, std::error_code& ec);
  // Every log, sorted by topic then partition.
  std::vector<log*> logs();
  // Closes the log of `tp` and deletes its directory; no-op for an unknown partition. As Kafka
  // does, the directory is first renamed to "<topic>-<partition>.<random hex>-delete", so that a
  // crash part-way leaves a directory the next load() deletes, never a partition that loads with
  // some of its segments missing. File slices already handed out stay readable.
  std::error_code remove(const topic_partition& tp);

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

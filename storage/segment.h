#pragma once
// One log segment: `<base>.log` with its `.index` and `.timeindex`. Internal to storage/; `log`
// owns its segments and decides when to roll, recover or truncate them.
//
// The segment keeps in memory what Kafka keeps in LogSegment: the .log size, the next offset,
// the largest timestamp so far with the (last) offset of the batch carrying it, and the bytes
// appended since the last index entry. Its .log descriptor is shared with outgoing file slices
// (keep_alive), so deleting or closing a segment never closes a descriptor a pending sendfile
// still uses.
//
// Threading: io thread only.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "storage/file_io.h"
#include "storage/index.h"
#include "wire/record_batch.h"

namespace sluice::storage {

// "<base offset, 20 digits zero-padded><suffix>", Kafka's LogFileUtils naming (segments, indexes,
// producer snapshots).
std::string segment_file_name(int64_t base_offset, std::string_view suffix);
// The inverse: the offset of a "<20 digits>.<kind>" name, and its kind ("log", "snapshot", ...).
bool parse_segment_file_name(std::string_view name, int64_t& offset, std::string_view& kind);

class segment {
 public:
  // What the 61-byte header says about the batch at `position`.
  struct batch_info {
    int64_t position = 0;
    int64_t size = 0;
    int64_t base_offset = 0;
    int64_t last_offset = 0;
    int64_t max_timestamp = -1;
    int16_t attributes = 0;
  };

  struct recovery_result {
    int64_t truncated_bytes = 0;
    std::string reason;  // why the first invalid batch was rejected, when truncated_bytes > 0
  };

  // New, empty files for a segment starting at `base_offset` (left-overs with that name are
  // truncated). `created_ms` is what segment.ms measures from while no batch carries a timestamp
  // (Kafka's LogSegment.created: the creation, or for open(), the load).
  static std::unique_ptr<segment> create(const std::filesystem::path& dir, int64_t base_offset,
                                         int64_t created_ms, std::error_code& ec);
  // Opens the files of an existing segment; follow with load() or recover().
  static std::unique_ptr<segment> open(const std::filesystem::path& dir, int64_t base_offset,
                                       int64_t created_ms, std::error_code& ec);

  // Trusted load (the segment was fsynced): reads the indexes and derives the in-memory state by
  // scanning batch headers after the last index entry. Sets `needs_recovery` when an index is
  // missing or inconsistent, or the scanned tail is bad; the caller then runs recover().
  std::error_code load(bool& needs_recovery);
  // Kafka's LogSegment.recover: checks every batch (framing, CRC-32C, offsets increasing and
  // within the segment), rebuilds both indexes, and truncates the .log at the first bad batch.
  std::error_code recover(int32_t index_interval_bytes, recovery_result& out);

  int64_t base_offset() const { return base_; }
  int64_t size() const { return size_; }
  int64_t next_offset() const { return next_offset_; }
  // {largest batch maxTimestamp, last offset of the first batch carrying it}; {-1, base} if none.
  timestamp_offset max_timestamp() const { return max_ts_; }
  int fd() const { return log_file_ ? log_file_->fd() : -1; }
  std::shared_ptr<const void> keep_alive() const { return log_file_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  int64_t created_ms() const { return created_ms_; }

  // Kafka's rollingBasedTimestamp: the largest timestamp of the segment's first append, -1 when
  // the segment is empty or that append had none. Read from the first batch header once after a
  // load, then cached.
  std::error_code rolling_base_timestamp(int64_t& out);
  // Kafka's LogSegment.largestTimestamp, what retention.ms compares: the largest batch timestamp,
  // or the .log's modification time when no batch has one.
  std::error_code largest_timestamp(int64_t& out) const;

  // Writes `bytes` (whole, validated batches with offsets assigned, ending at `last_offset`) at
  // the end of the .log with one pwrite, then maybe adds index entries (Kafka's LogSegment.append).
  // On a failed write the .log is cut back to its previous size.
  std::error_code append(std::span<const uint8_t> bytes, int64_t last_offset, int64_t max_timestamp,
                         int64_t offset_of_max_timestamp, int32_t index_interval_bytes);

  // Reads and checks the header of the batch at `position` (errc::corrupt_message when it is not
  // a v2 header or the batch does not fit in the segment).
  std::error_code batch_at(int64_t position, batch_info& out) const;
  // The first batch whose last offset is >= `offset`, scanning headers forward from the offset
  // index's entry (or `from`, if further). `position` == size() when there is none.
  std::error_code find(int64_t offset, int64_t from, int64_t& position, batch_info& first) const;
  // See offset_index::skip_ahead.
  int64_t skip_ahead(int64_t from, int64_t max_position, int64_t max_offset) const {
    return offset_index_.skip_ahead(from, max_position, max_offset);
  }
  // The whole batch, for record iteration (timestamp look-ups only; never on the fetch path).
  std::error_code read_batch(const batch_info& b, std::vector<uint8_t>& out) const;
  // Calls `fn` with every whole batch from the one holding `from_offset` to the end, reading the
  // .log in 1 MiB chunks (producer-state replay). The view is valid during the call only.
  // errc::corrupt_message at a batch whose header does not hold.
  std::error_code for_each_batch(int64_t from_offset,
                                 const std::function<void(const wire::record_batch&)>& fn) const;

  // First record with timestamp >= ts and offset >= min_offset: {record timestamp, offset}.
  std::error_code find_timestamp(int64_t ts, int64_t min_offset,
                                 std::optional<timestamp_offset>& out) const;
  // {max timestamp, offset of the first record carrying it}; the batch base offset for
  // compressed batches.
  std::error_code max_timestamp_record(timestamp_offset& out) const;

  // Drops batches whose last offset is >= `offset` (and their index entries); fsyncs the .log.
  std::error_code truncate_to(int64_t offset);
  // Kafka's onBecomeInactiveSegment / close: the final time index entry.
  std::error_code append_final_time_entry();
  // Makes everything appended durable: fdatasyncs the .log if it was written since the last
  // flush, then writes the index entries not yet on disk (see index.h).
  std::error_code flush();
  // Drops this segment's descriptor; slices already handed out keep theirs.
  void close();
  // Unlinks the three files (open descriptors stay valid).
  std::error_code remove_files();

 private:
  segment(const std::filesystem::path& dir, int64_t base_offset, int64_t created_ms);
  std::error_code open_files(bool create);
  // Recomputes next offset, max timestamp and bytes since the last index entry from the indexes
  // plus a header scan of the batches after the last offset index entry.
  std::error_code derive_tail_state();

  int64_t base_;
  std::filesystem::path log_path_;
  std::shared_ptr<file_handle> log_file_;
  offset_index offset_index_;
  time_index time_index_;
  // Appended to since the last fdatasync of the .log; a flush of a clean segment costs nothing.
  bool unsynced_ = false;

  int64_t size_ = 0;
  int64_t next_offset_;
  timestamp_offset max_ts_;
  int64_t bytes_since_last_index_entry_ = 0;
  int64_t created_ms_;
  // nullopt until known: set by the first append, or read from disk on first use after a load.
  std::optional<int64_t> rolling_base_ts_;
};

}  // namespace sluice::storage

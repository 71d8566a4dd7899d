#pragma once
// One log segment: `<base>.log` with its `.index` and `.timeindex`. Internal to storage/; `log`
// owns its segments and decides when to roll, recover or truncate them.
//
// The segment keeps in memory what Kafka keeps in LogSegment: the .log size, the next offset,
// the largest timestamp so far with the (last) offset of the batch carrying it, and the bytes
// appended since the last index entry. Its .log descriptor is shared with outgoing file slices
// (keep_alive) and with the disk executor's jobs (shared_file), so deleting or closing a segment
// never closes a descriptor a pending sendfile or fsync still uses.
//
// Threading: the thread that owns the log. The static create_files() and the `segment_flush` it
// hands out hold only descriptors, paths and bytes, and run on disk threads, as does a
// detached_copy() handed to a job.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
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

// What makes a segment's appends durable, taken on the owner's thread and run on a disk thread:
// the .log is fdatasynced (when `sync_log`), then the time index entries are written and
// fdatasynced, then the offset index entries. That order matters to recovery: an offset index
// entry found on disk implies that the time index entries up to it are there too, so the head
// of a segment can be trusted from its indexes (segment::recover).
struct segment_flush {
  std::shared_ptr<file_handle> log_file;
  std::filesystem::path log_path;
  bool sync_log = false;
  index_write time_entries;
  index_write offset_entries;
  std::error_code run(file_system& fs) const;
};

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
    int32_t partition_leader_epoch = -1;
  };

  struct recovery_result {
    int64_t truncated_bytes = 0;
    std::string reason;        // why the first invalid batch was rejected, when truncated_bytes > 0
    int64_t scanned_from = 0;  // the byte the check started at (what lies before was trusted)
    int64_t scanned_bytes = 0;  // bytes read and checked
  };

  // Reports recovery progress: bytes of this segment checked so far, and the segment's size.
  using progress_fn = std::function<void(int64_t scanned, int64_t total)>;

  // Creates the three files of a segment starting at `base_offset` (left-overs with those names
  // are truncated) and returns the .log's descriptor. Blocking: the log calls it on a disk thread
  // when it rolls, and through create() when it is opened.
  static std::error_code create_files(file_system& fs, const std::filesystem::path& dir,
                                      int64_t base_offset, std::shared_ptr<file_handle>& out);
  // A new, empty segment around files create_files() made. `created_ms` is what segment.ms
  // measures from while no batch carries a timestamp (Kafka's LogSegment.created).
  static std::unique_ptr<segment> adopt(file_system& fs, const std::filesystem::path& dir,
                                        int64_t base_offset, int64_t created_ms,
                                        std::shared_ptr<file_handle> log_file);
  // create_files() then adopt(), in one blocking call.
  static std::unique_ptr<segment> create(file_system& fs, const std::filesystem::path& dir,
                                         int64_t base_offset, int64_t created_ms,
                                         std::error_code& ec);
  // Opens the files of an existing segment; follow with load() or recover().
  static std::unique_ptr<segment> open(file_system& fs, const std::filesystem::path& dir,
                                       int64_t base_offset, int64_t created_ms,
                                       std::error_code& ec);

  // Trusted load (every batch was fsynced): reads the indexes and derives the in-memory state by
  // scanning batch headers after the last index entry. Sets `needs_recovery` when an index is
  // missing or inconsistent, or the scanned tail is bad; the caller then runs recover().
  std::error_code load(bool& needs_recovery);
  // Trusted load of an inactive segment, one that ends where the next one starts (`next_offset`):
  // maps its indexes after Kafka's sanity check, reads nothing else (the largest timestamp is the
  // time index's last entry). `needs_recovery` as for load().
  std::error_code load_inactive(int64_t next_offset, bool& needs_recovery);
  // Kafka's LogSegment.recover, made aware of the recovery point: checks batches (framing,
  // CRC-32C, offsets in range, increasing and within the segment), rebuilds both indexes, and
  // truncates the .log at the first bad batch.
  //
  // `recovery_point`: every offset below it was fsynced (and acknowledged). A bad batch there is
  // corruption, never a torn write: recover() then returns errc::corrupt_log and changes
  // nothing. The head of the segment below the last offset index entry under the recovery point
  // is trusted without reading it (the indexes are written after the data they describe, and the
  // time index before the offset index: see segment_flush); if what follows that entry does not
  // check out, the whole segment is checked from byte 0 before anything is called corrupt.
  std::error_code recover(int32_t index_interval_bytes, int64_t recovery_point,
                          recovery_result& out, const progress_fn& progress = {});

  int64_t base_offset() const { return base_; }
  int64_t size() const { return size_; }
  int64_t next_offset() const { return next_offset_; }
  // {largest batch maxTimestamp, last offset of the first batch carrying it}; {-1, base} if none.
  timestamp_offset max_timestamp() const { return max_ts_; }
  int fd() const { return log_file_ ? log_file_->fd() : -1; }
  std::shared_ptr<const void> keep_alive() const { return log_file_; }
  // The .log descriptor, for jobs on the disk executor.
  const std::shared_ptr<file_handle>& shared_file() const { return log_file_; }
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
  // a v2 header, its offsets are out of range, or the batch does not fit in the segment;
  // errc::would_block in cached_only mode when the header is not in the page cache).
  std::error_code batch_at(int64_t position, batch_info& out,
                           read_mode mode = read_mode::may_block) const;
  // The first batch whose last offset is >= `offset`, scanning headers forward from the offset
  // index's entry (or `from`, if further). `position` == size() when there is none.
  std::error_code find(int64_t offset, int64_t from, int64_t& position, batch_info& first,
                       read_mode mode = read_mode::may_block) const;
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

  // Drops batches whose last offset is >= `offset` (and their index entries); fsyncs the .log,
  // after which all of it counts as synced. Blocking (start-up).
  std::error_code truncate_to(int64_t offset);
  // The same on a detached_copy(), in a truncation job: the .log is cut in place (its owner's
  // reads stop below the cut meanwhile), but each index file is replaced by one holding the
  // entries left, written aside and renamed over it, because the original segment may still
  // read a mapping of the old file, whose pages past a cut would fault (SIGBUS). The directory
  // sync that makes the renames durable is the caller's. Blocking.
  std::error_code truncate_copy_to(int64_t offset);
  // A copy of this segment's state sharing its .log descriptor and index mappings (heap index
  // entries are copied), for a disk job to work on: a truncation job cuts the copy, and the owner
  // installs it in place of this one when the job is done. Whoever holds the copy owns it; the
  // two never see each other's changes, and the job never touches this one.
  std::unique_ptr<segment> detached_copy() const;
  // Kafka's onBecomeInactiveSegment: the final time index entry (in memory; a flush writes it).
  void append_final_time_entry();
  // What makes this segment's appends durable so far (see segment_flush); the index entries in it
  // count as written from now on. `sync_log` false: only the index entries.
  segment_flush take_flush(bool sync_log);
  // Only the fdatasync of the .log (a group commit): index entries wait for the next flush.
  segment_flush take_sync();
  // take_flush(true) run here: blocking (close, tests, truncation).
  std::error_code flush();
  // Bytes of the .log not yet fdatasynced by a flush taken from this segment.
  bool has_unsynced_data() const { return synced_size_ < size_; }
  // Index entries not yet taken for writing.
  bool has_unwritten_index_entries() const {
    return offset_index_.has_unwritten() || time_index_.has_unwritten();
  }
  // The segment became inactive and its index files hold every entry: read them through these
  // mappings (made by a disk job) instead of the heap from now on.
  void adopt_index_mappings(std::shared_ptr<const index_mapping> offsets,
                            std::shared_ptr<const index_mapping> times);
  // Whether looking an offset up in this segment's index can be done without waiting for the
  // disk (always for an active segment, whose entries are on the heap).
  bool index_resident() const { return offset_index_.resident() && time_index_.resident(); }
  std::filesystem::path offset_index_path() const { return offset_index_.path(); }
  std::filesystem::path time_index_path() const { return time_index_.path(); }
  // Heap bytes of index entries (mapped indexes take none).
  size_t index_heap_bytes() const { return offset_index_.heap_bytes() + time_index_.heap_bytes(); }
  // Drops this segment's descriptor; slices and jobs already holding it keep theirs.
  void close();
  // The three file paths, for deletion by a job.
  std::vector<std::filesystem::path> file_paths() const;
  // Unlinks the three files (open descriptors stay valid). Blocking.
  std::error_code remove_files();

 private:
  segment(file_system& fs, const std::filesystem::path& dir, int64_t base_offset,
          int64_t created_ms);
  // For detached_copy() only.
  segment(const segment&) = default;
  segment& operator=(const segment&) = delete;
  std::error_code open_file();
  // Cuts the .log at `position` (a batch boundary), fdatasyncs it and derives the tail state.
  std::error_code cut_log(int64_t position);
  // Recomputes next offset, max timestamp and bytes since the last index entry from the indexes
  // plus a header scan of the batches after the last offset index entry.
  std::error_code derive_tail_state();
  // The checking scan of recover(), from `position` (a batch boundary) with the indexes already
  // holding the entries below it. `strict_below`: see recover().
  std::error_code scan(int64_t position, int32_t index_interval_bytes, int64_t strict_below,
                       recovery_result& out, const progress_fn& progress);

  file_system& fs_;
  int64_t base_;
  std::filesystem::path log_path_;
  std::shared_ptr<file_handle> log_file_;
  offset_index offset_index_;
  time_index time_index_;
  // Bytes of the .log covered by a flush taken so far: a flush of a clean segment costs nothing.
  int64_t synced_size_ = 0;

  int64_t size_ = 0;
  int64_t next_offset_;
  timestamp_offset max_ts_;
  int64_t bytes_since_last_index_entry_ = 0;
  int64_t created_ms_;
  // nullopt until known: set by the first append, or read from disk on first use after a load.
  std::optional<int64_t> rolling_base_ts_;
};

}  // namespace sluice::storage

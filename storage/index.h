#pragma once
// The sparse per-segment indexes, Kafka's `.index` and `.timeindex`. Internal to storage/.
//
//   .index      8-byte entries, big-endian:  relative offset int32 | position int32
//   .timeindex 12-byte entries, big-endian:  timestamp int64      | relative offset int32
//
// Relative offset = offset - segment base offset. An offset entry maps the last offset of an
// append to the byte position where that append starts in the .log; a time entry says that the
// largest timestamp of all batches up to and including the batch ending at that offset is
// `timestamp`. Both are appended every index_interval_bytes of log (segment.cc decides when).
//
// Deviation from Kafka: the files are not preallocated or memory-mapped. Entries live in a vector
// (lookups are binary searches in memory) and the files are written append-only with their exact
// size, so there is never a zero-filled tail to trim or to mistake for entries after a crash.
//
// Threading: owned by one segment, on the io thread.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <system_error>
#include <vector>

#include "storage/file_io.h"

namespace sluice::storage {

struct offset_position {
  int64_t offset;
  int64_t position;
};

struct timestamp_offset {
  int64_t timestamp;
  int64_t offset;
};

// File plumbing shared by both index kinds: the descriptor and how many entries are on disk.
class index_file {
 public:
  // Opens or creates the file; `truncate` empties it.
  std::error_code open(const std::filesystem::path& path, bool truncate);
  std::error_code read_all(std::vector<uint8_t>& out) const;
  // Writes `entries_bytes` (whole entries) at the end of what is on disk.
  std::error_code append(std::span<const uint8_t> entries_bytes);
  std::error_code truncate(int64_t size);
  std::error_code sync();
  void close() { fd_.close(); }
  const std::filesystem::path& path() const { return path_; }
  int64_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  file_handle fd_;
  int64_t size_ = 0;
};

class offset_index {
 public:
  static constexpr int64_t entry_size = 8;

  explicit offset_index(int64_t base_offset) : base_(base_offset) {}

  std::error_code open(const std::filesystem::path& path, bool truncate) {
    return file_.open(path, truncate);
  }
  // Reads the file into memory. False (entries cleared) if it is inconsistent: a partial entry,
  // offsets or positions not strictly increasing, or a position at/after `log_size`.
  bool load(int64_t log_size, std::error_code& ec);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  offset_position entry(size_t i) const {
    return {base_ + entries_[i].relative_offset, entries_[i].position};
  }
  // The entry with the largest offset <= target, or {base offset, 0} if there is none.
  offset_position lookup(int64_t target) const;
  // The largest entry position in (from, max_position] whose offset is <= max_offset, or `from`.
  // Everything in [from, that position) is whole batches with offsets < max_offset.
  int64_t skip_ahead(int64_t from, int64_t max_position, int64_t max_offset) const;

  // In memory; written by flush_entries(). Offsets must increase and fit the segment (the caller
  // rolls before the relative offset would overflow).
  void append(int64_t offset, int64_t position);
  std::error_code flush_entries();
  // Drops entries with offset >= `offset`, in memory and on disk.
  std::error_code truncate_to(int64_t offset);
  // Drops every entry and empties the file.
  std::error_code reset();
  std::error_code sync() { return file_.sync(); }
  void close() { file_.close(); }

 private:
  struct entry_t {
    int32_t relative_offset;
    int32_t position;
  };
  int64_t base_;
  std::vector<entry_t> entries_;
  size_t on_disk_ = 0;
  index_file file_;
};

class time_index {
 public:
  static constexpr int64_t entry_size = 12;

  explicit time_index(int64_t base_offset) : base_(base_offset) {}

  std::error_code open(const std::filesystem::path& path, bool truncate) {
    return file_.open(path, truncate);
  }
  // False (entries cleared) if inconsistent: a partial entry, timestamps not strictly increasing,
  // offsets decreasing or below the base offset.
  bool load(std::error_code& ec);

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  timestamp_offset entry(size_t i) const {
    return {entries_[i].timestamp, base_ + entries_[i].relative_offset};
  }
  // The last entry, or {-1, base offset} when empty (Kafka's lastEntry()).
  timestamp_offset last() const;
  // The entry with the largest timestamp strictly below `ts`, if any. Everything up to and
  // including that entry's offset has timestamps < ts, so a search for ts can start after it.
  std::optional<timestamp_offset> last_below(int64_t ts) const;

  // Kafka's maybeAppend: appends only when `timestamp` is larger than the last entry's.
  void maybe_append(int64_t timestamp, int64_t offset);
  std::error_code flush_entries();
  std::error_code truncate_to(int64_t offset);
  std::error_code reset();
  std::error_code sync() { return file_.sync(); }
  void close() { file_.close(); }

 private:
  struct entry_t {
    int64_t timestamp;
    int32_t relative_offset;
  };
  int64_t base_;
  std::vector<entry_t> entries_;
  size_t on_disk_ = 0;
  index_file file_;
};

}  // namespace sluice::storage

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
// Memory: an active segment's entries live in a vector (lookups are binary searches in memory).
// Once a segment is inactive (rolled, or loaded trusted at start) its indexes are read through a
// read-only memory mapping of their files instead (Kafka maps every index): their pages are page
// cache, kept while used and dropped by the kernel under pressure, so the heap holds only the
// active segments' entries however much log there is. A lookup in a mapped index may fault a page
// in from disk; callers that must not block ask resident() first (the fetch path warms the file
// on the disk executor when it is not).
//
// Deviation from Kafka: the files are not preallocated. They are written append-only with their
// exact size, so there is never a zero-filled tail to trim or to mistake for entries after a
// crash. No descriptor is held: new entries reach the file in an `index_write` (open with O_APPEND,
// write, optionally fdatasync, close), which the log runs on its disk executor: periodically
// without a sync, and with one when the segment rolls or the log closes. A partition then costs
// one descriptor (its active .log) instead of three, and appends make no index system calls.
// Entries written without a sync may be missing or damaged after a power loss, which is fine:
// recovery checks what it uses from an index against the .log and rebuilds whatever disagrees.
//
// Threading: owned by one segment, on the thread that owns the log. An `index_write` holds only
// a path and bytes, so any thread may run it.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <system_error>
#include <utility>
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

// A read-only mapping of an index file. Blocking to make (open, fstat, mmap); any thread may make
// it and hand it to the segment's owner.
class index_mapping {
 public:
  static std::shared_ptr<const index_mapping> map(file_system& fs,
                                                  const std::filesystem::path& path,
                                                  std::error_code& ec);
  ~index_mapping();
  index_mapping(const index_mapping&) = delete;
  index_mapping& operator=(const index_mapping&) = delete;

  std::span<const uint8_t> bytes() const { return {static_cast<const uint8_t*>(addr_), size_}; }
  // Whether every page is in memory (mincore), so that reading the mapping does not wait for the
  // disk.
  bool resident() const;

 private:
  index_mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  void* addr_;
  size_t size_;
};

// Entries taken from an index for writing, on whatever thread runs run(): appended to the file
// (which is emptied first when `truncate_first`), then made durable when `durable`.
struct index_write {
  std::filesystem::path path;
  std::vector<uint8_t> bytes;
  bool truncate_first = false;
  bool empty() const { return bytes.empty(); }
  std::error_code run(file_system& fs, bool durable) const;
};

// File plumbing shared by both index kinds: the path, and how many bytes are on disk. Holds no
// descriptor between calls.
class index_file {
 public:
  index_file(file_system& fs, std::filesystem::path path) : fs_(fs), path_(std::move(path)) {}

  // Creates the file empty (truncating a left-over).
  std::error_code create();
  // Reads the whole file. A missing file sets `missing` and is not an error.
  std::error_code read_all(std::vector<uint8_t>& out, bool& missing);
  // The write of `entries_bytes` (whole entries) after what is on disk; not run yet.
  index_write prepare_append(std::vector<uint8_t> entries_bytes);
  // Cuts the file to `size` bytes and makes that durable.
  std::error_code truncate(int64_t size);
  // Replaces the file with `content` (replace_file without the directory sync, which is the
  // caller's): a new inode, so a mapping of the old file stays whole.
  std::error_code replace(std::span<const uint8_t> content);
  // Treats the file as empty without touching it: the next write truncates it. Saves system calls
  // for the many empty segments found at start.
  void empty_on_next_write() { empty_on_next_write_ = true; }
  const std::filesystem::path& path() const { return path_; }
  file_system& fs() const { return fs_; }

 private:
  file_system& fs_;
  std::filesystem::path path_;
  bool empty_on_next_write_ = false;
};

class offset_index {
 public:
  static constexpr int64_t entry_size = 8;

  offset_index(file_system& fs, std::filesystem::path path, int64_t base_offset)
      : base_(base_offset), file_(fs, std::move(path)) {}

  std::error_code create() { return file_.create(); }
  const std::filesystem::path& path() const { return file_.path(); }
  // Reads the file into memory. False (entries cleared) if it is missing or inconsistent: a
  // partial entry, offsets or positions not strictly increasing, or a position at/after
  // `log_size`.
  bool load(int64_t log_size, std::error_code& ec);
  // Maps the file instead, for an inactive segment: blocking. False (nothing mapped) if it is
  // missing or fails Kafka's sanity check (whole entries, the last one inside the log and the
  // segment); entries in between are trusted, as Kafka trusts them.
  bool map(int64_t log_size, int64_t next_offset, std::error_code& ec);
  // Reads through `mapping` (of this index's file, with every entry written) from now on and
  // frees the vector.
  void adopt(std::shared_ptr<const index_mapping> mapping);
  bool mapped() const { return mapping_ != nullptr; }
  // Whether a lookup can be made without waiting for the disk.
  bool resident() const { return !mapping_ || mapping_->resident(); }
  // Heap bytes the entries take (a mapping takes none).
  size_t heap_bytes() const { return entries_.capacity() * sizeof(entry_t); }

  bool empty() const { return size() == 0; }
  size_t size() const { return mapping_ ? mapping_->bytes().size() / entry_size : entries_.size(); }
  offset_position entry(size_t i) const;
  // The entry with the largest offset <= target, or {base offset, 0} if there is none.
  offset_position lookup(int64_t target) const;
  // The largest entry position in (from, max_position] whose offset is <= max_offset, or `from`.
  // Everything in [from, that position) is whole batches with offsets < max_offset.
  int64_t skip_ahead(int64_t from, int64_t max_position, int64_t max_offset) const;

  // In memory (an active segment's index is never mapped); written by flush_entries() or
  // take_write(). Offsets must increase and fit the segment (the caller rolls before the relative
  // offset would overflow).
  void append(int64_t offset, int64_t position);
  // The entries not yet handed out for writing (they count as written from now on).
  index_write take_write();
  bool has_unwritten() const { return on_disk_ < entries_.size(); }
  // take_write(), run here and made durable; nothing at all when there are no new entries.
  std::error_code flush_entries();
  // Drops entries with offset >= `offset`, in memory and on disk.
  std::error_code truncate_to(int64_t offset);
  // The same, but the file is replaced by one holding every entry left (unwritten ones too)
  // instead of being cut in place, for a copy of the index whose original may still read a
  // mapping of the file: cut in place, the mapping's pages past the new end would fault (SIGBUS).
  std::error_code truncate_by_replacing(int64_t offset);
  // Drops every entry and empties the file.
  std::error_code reset();
  // Drops every entry; the file is emptied by the next write.
  void reset_lazily() {
    mapping_.reset();
    entries_.clear();
    on_disk_ = 0;
    file_.empty_on_next_write();
  }

 private:
  struct entry_t {
    int32_t relative_offset;
    int32_t position;
  };
  // Drops entries with offset >= `offset` from memory (a mapping is read into the heap first).
  void drop_from(int64_t offset);
  // Back to a vector (truncation changes the entries): blocking when mapped pages are cold.
  void unmap();
  int64_t base_;
  std::vector<entry_t> entries_;
  std::shared_ptr<const index_mapping> mapping_;
  size_t on_disk_ = 0;
  index_file file_;
};

class time_index {
 public:
  static constexpr int64_t entry_size = 12;

  time_index(file_system& fs, std::filesystem::path path, int64_t base_offset)
      : base_(base_offset), file_(fs, std::move(path)) {}

  std::error_code create() { return file_.create(); }
  const std::filesystem::path& path() const { return file_.path(); }
  // False (entries cleared) if missing or inconsistent: a partial entry, timestamps not strictly
  // increasing, offsets decreasing or below the base offset.
  bool load(std::error_code& ec);
  // See offset_index::map: whole entries, the last one's offset inside the segment.
  bool map(int64_t next_offset, std::error_code& ec);
  void adopt(std::shared_ptr<const index_mapping> mapping);
  bool mapped() const { return mapping_ != nullptr; }
  bool resident() const { return !mapping_ || mapping_->resident(); }
  size_t heap_bytes() const { return entries_.capacity() * sizeof(entry_t); }

  bool empty() const { return size() == 0; }
  size_t size() const { return mapping_ ? mapping_->bytes().size() / entry_size : entries_.size(); }
  timestamp_offset entry(size_t i) const;
  // The last entry, or {-1, base offset} when empty (Kafka's lastEntry()).
  timestamp_offset last() const;
  // The entry with the largest timestamp strictly below `ts`, if any. Everything up to and
  // including that entry's offset has timestamps < ts, so a search for ts can start after it.
  std::optional<timestamp_offset> last_below(int64_t ts) const;

  // Kafka's maybeAppend: appends only when `timestamp` is larger than the last entry's.
  void maybe_append(int64_t timestamp, int64_t offset);
  index_write take_write();
  bool has_unwritten() const { return on_disk_ < entries_.size(); }
  std::error_code flush_entries();
  std::error_code truncate_to(int64_t offset);
  std::error_code truncate_by_replacing(int64_t offset);
  std::error_code reset();
  void reset_lazily() {
    mapping_.reset();
    entries_.clear();
    on_disk_ = 0;
    file_.empty_on_next_write();
  }

 private:
  struct entry_t {
    int64_t timestamp;
    int32_t relative_offset;
  };
  void unmap();
  void drop_from(int64_t offset);
  int64_t base_;
  std::vector<entry_t> entries_;
  std::shared_ptr<const index_mapping> mapping_;
  size_t on_disk_ = 0;
  index_file file_;
};

}  // namespace sluice::storage

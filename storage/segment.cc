#include "storage/segment.h"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>

#include "storage/errc.h"
#include "wire/record_batch.h"

namespace sluice::storage {

namespace {

constexpr int64_t max_relative_offset = INT32_MAX;

// Reads a file front to back in large chunks, so recovery costs one pread per MiB rather than
// two per batch.
class chunk_reader {
 public:
  chunk_reader(file_system& fs, int fd, const std::filesystem::path& path)
      : fs_(fs), fd_(fd), path_(path) {}

  // [position, position + n) of the file, or a short span at end of file.
  std::error_code view(int64_t position, size_t n, std::span<const uint8_t>& out) {
    if (position >= start_ && static_cast<uint64_t>(position - start_) + n <= len_) {
      out = std::span<const uint8_t>(buf_).subspan(static_cast<size_t>(position - start_), n);
      return {};
    }
    size_t want = std::max(n, chunk);
    if (buf_.size() < want) buf_.resize(want);
    size_t got = 0;
    if (auto ec = fs_.read(fd_, std::span<uint8_t>(buf_).first(want), position, got, path_)) {
      return ec;
    }
    start_ = position;
    len_ = got;
    out = std::span<const uint8_t>(buf_).first(std::min(n, got));
    return {};
  }

 private:
  static constexpr size_t chunk = 1 << 20;
  file_system& fs_;
  int fd_;
  const std::filesystem::path& path_;
  std::vector<uint8_t> buf_;
  int64_t start_ = 0;
  size_t len_ = 0;
};

}  // namespace

bool parse_segment_file_name(std::string_view name, int64_t& offset, std::string_view& kind) {
  if (name.size() < 21 || name[20] != '.') return false;
  offset = 0;
  for (size_t i = 0; i < 20; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    if (offset > (INT64_MAX - 9) / 10) return false;
    offset = offset * 10 + (name[i] - '0');
  }
  kind = name.substr(21);
  return true;
}

std::string segment_file_name(int64_t base_offset, std::string_view suffix) {
  char digits[32];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(base_offset));
  std::string name(digits);
  name.append(suffix);
  return name;
}

std::error_code segment_flush::run(file_system& fs) const {
  // The .log first: an index entry must never point past what is durable in the .log. Then the
  // time index before the offset index (see the header).
  if (sync_log && log_file) {
    if (auto ec = fs.sync(log_file->fd(), log_path)) return ec;
  }
  if (auto ec = time_entries.run(fs, /*durable=*/true)) return ec;
  return offset_entries.run(fs, /*durable=*/true);
}

segment::segment(file_system& fs, const std::filesystem::path& dir, int64_t base_offset,
                 int64_t created_ms)
    : fs_(fs),
      base_(base_offset),
      log_path_(dir / segment_file_name(base_offset, ".log")),
      offset_index_(fs, dir / segment_file_name(base_offset, ".index"), base_offset),
      time_index_(fs, dir / segment_file_name(base_offset, ".timeindex"), base_offset),
      next_offset_(base_offset),
      max_ts_{-1, base_offset},
      created_ms_(created_ms) {}

std::error_code segment::create_files(file_system& fs, const std::filesystem::path& dir,
                                      int64_t base_offset, std::shared_ptr<file_handle>& out) {
  file_handle log_fd;
  if (auto ec = fs.open(dir / segment_file_name(base_offset, ".log"), O_RDWR | O_CREAT | O_TRUNC,
                        log_fd)) {
    return ec;
  }
  // Kafka's layout has all three files from the start; tools listing a partition expect them.
  for (const char* suffix : {".index", ".timeindex"}) {
    file_handle index_fd;
    if (auto ec = fs.open(dir / segment_file_name(base_offset, suffix),
                          O_WRONLY | O_CREAT | O_TRUNC, index_fd)) {
      return ec;
    }
  }
  out = std::make_shared<file_handle>(std::move(log_fd));
  return {};
}

std::unique_ptr<segment> segment::adopt(file_system& fs, const std::filesystem::path& dir,
                                        int64_t base_offset, int64_t created_ms,
                                        std::shared_ptr<file_handle> log_file) {
  std::unique_ptr<segment> s(new segment(fs, dir, base_offset, created_ms));
  s->log_file_ = std::move(log_file);
  return s;
}

std::unique_ptr<segment> segment::create(file_system& fs, const std::filesystem::path& dir,
                                         int64_t base_offset, int64_t created_ms,
                                         std::error_code& ec) {
  std::shared_ptr<file_handle> file;
  if ((ec = create_files(fs, dir, base_offset, file))) return nullptr;
  return adopt(fs, dir, base_offset, created_ms, std::move(file));
}

std::unique_ptr<segment> segment::open(file_system& fs, const std::filesystem::path& dir,
                                       int64_t base_offset, int64_t created_ms,
                                       std::error_code& ec) {
  std::unique_ptr<segment> s(new segment(fs, dir, base_offset, created_ms));
  if ((ec = s->open_file())) return nullptr;
  return s;
}

std::error_code segment::open_file() {
  file_handle log_fd;
  if (auto ec = fs_.open(log_path_, O_RDWR, log_fd)) return ec;
  log_file_ = std::make_shared<file_handle>(std::move(log_fd));
  if (auto ec = fs_.size(log_file_->fd(), log_path_, size_)) return ec;
  // What is on disk at open counts as synced: recovery decides what to trust of it.
  synced_size_ = size_;
  return {};
}

std::error_code segment::load(bool& needs_recovery) {
  needs_recovery = false;
  // An empty .log has nothing to index, whatever its index files say (or whether they exist).
  if (size_ == 0) {
    offset_index_.reset_lazily();
    time_index_.reset_lazily();
    return {};
  }
  std::error_code ec;
  bool offsets_ok = offset_index_.load(size_, ec);
  if (ec) return ec;
  bool times_ok = time_index_.load(ec);
  if (ec) return ec;
  if (!offsets_ok || !times_ok) {
    needs_recovery = true;
    return {};
  }
  ec = derive_tail_state();
  if (ec == errc::corrupt_message ||
      (!time_index_.empty() && time_index_.last().offset >= next_offset_)) {
    needs_recovery = true;
    return {};
  }
  return ec;
}

std::error_code segment::load_inactive(int64_t next_offset, bool& needs_recovery) {
  needs_recovery = false;
  if (size_ == 0) {
    // An empty segment that is not the last one: only a crash between a roll's file creation and
    // its first append leaves one. Nothing to index.
    offset_index_.reset_lazily();
    time_index_.reset_lazily();
    return {};
  }
  std::error_code ec;
  if (!offset_index_.map(size_, next_offset, ec) || !time_index_.map(next_offset, ec)) {
    needs_recovery = true;
    return ec;
  }
  next_offset_ = next_offset;
  max_ts_ = time_index_.last();
  bytes_since_last_index_entry_ = 0;
  return {};
}

void segment::adopt_index_mappings(std::shared_ptr<const index_mapping> offsets,
                                   std::shared_ptr<const index_mapping> times) {
  // Nothing was added since the entries were written (an inactive segment takes no appends).
  if (offset_index_.has_unwritten() || time_index_.has_unwritten()) return;
  if (offsets->bytes().size() / offset_index::entry_size != offset_index_.size() ||
      times->bytes().size() / time_index::entry_size != time_index_.size()) {
    return;
  }
  offset_index_.adopt(std::move(offsets));
  time_index_.adopt(std::move(times));
}

std::error_code segment::derive_tail_state() {
  int64_t position = 0;
  next_offset_ = base_;
  if (!offset_index_.empty()) {
    position = offset_index_.entry(offset_index_.size() - 1).position;
  }
  max_ts_ = time_index_.last();
  bytes_since_last_index_entry_ = size_ - position;
  while (position < size_) {
    batch_info b;
    if (auto ec = batch_at(position, b)) return ec;
    if (b.base_offset < next_offset_ || b.last_offset - base_ > max_relative_offset) {
      return errc::corrupt_message;
    }
    next_offset_ = b.last_offset + 1;
    if (b.max_timestamp > max_ts_.timestamp) max_ts_ = {b.max_timestamp, b.last_offset};
    position += b.size;
  }
  return {};
}

std::error_code segment::recover(int32_t index_interval_bytes, int64_t recovery_point,
                                 recovery_result& out, const progress_fn& progress) {
  out = {};
  if (auto ec = fs_.size(log_file_->fd(), log_path_, size_)) return ec;
  // Recovered bytes may be in the page cache only (a process crash, not a machine crash).
  synced_size_ = 0;

  // The head below the last offset index entry under the recovery point was fsynced with its
  // index entries (segment_flush), so it is trusted as it stands; only what follows is read.
  int64_t start = 0;
  if (recovery_point > base_ && size_ > 0) {
    std::error_code ec;
    bool offsets_ok = offset_index_.load(size_, ec);
    if (ec) return ec;
    bool times_ok = time_index_.load(ec);
    if (ec) return ec;
    if (offsets_ok && times_ok) {
      std::optional<offset_position> below;
      for (size_t i = offset_index_.size(); i-- > 0;) {
        offset_position e = offset_index_.entry(i);
        if (e.offset < recovery_point) {
          below = e;
          break;
        }
      }
      // The entry must point at the first batch of the append it describes.
      batch_info first;
      if (below && !batch_at(below->position, first) && first.base_offset <= below->offset) {
        // Entries after it describe data that was not known to be durable: rebuilt by the scan.
        if (auto e = offset_index_.truncate_to(below->offset + 1)) return e;
        if (auto e = time_index_.truncate_to(below->offset + 1)) return e;
        start = below->position;
      }
    }
  }
  if (start > 0) {
    recovery_result trial;
    std::error_code ec = scan(start, index_interval_bytes, recovery_point, trial, progress);
    if (ec != errc::corrupt_log) {
      out = trial;
      return ec;
    }
    // The indexes pointed somewhere that does not check out: they are only hints, so read the
    // whole segment before calling anything corrupt.
  }
  if (auto ec = offset_index_.reset()) return ec;
  if (auto ec = time_index_.reset()) return ec;
  return scan(0, index_interval_bytes, recovery_point, out, progress);
}

std::error_code segment::scan(int64_t position, int32_t index_interval_bytes, int64_t strict_below,
                              recovery_result& out, const progress_fn& progress) {
  out = {};
  int64_t file_bytes = size_;
  chunk_reader reader(fs_, log_file_->fd(), log_path_);
  int64_t valid = position;
  int64_t last_index_entry = position;
  // The kept time index entries hold the largest timestamp of the head (see segment_flush).
  timestamp_offset max_ts = time_index_.last();
  int64_t next = base_;
  std::string reason;
  int64_t next_report = position + (256 << 20);
  while (valid < file_bytes) {
    if (progress && valid >= next_report) {
      progress(valid, file_bytes);
      next_report = valid + (256 << 20);
    }
    if (file_bytes - valid < static_cast<int64_t>(wire::record_batch_header_size)) {
      reason = "torn batch header";
      break;
    }
    std::span<const uint8_t> bytes;
    if (auto ec = reader.view(valid, wire::record_batch_header_size, bytes)) return ec;
    wire::record_batch header(bytes);
    if (bytes.size() < wire::record_batch_header_size) {
      reason = "torn batch header";
      break;
    }
    if (header.magic() != wire::current_magic) {
      reason = "magic is not 2";
      break;
    }
    if (header.batch_length() < wire::min_batch_length) {
      reason = "invalid batch length";
      break;
    }
    int64_t size = header.size_bytes();
    if (size > file_bytes - valid) {
      reason = "torn batch (file ends inside it)";
      break;
    }
    if (auto ec = reader.view(valid, static_cast<size_t>(size), bytes)) return ec;
    wire::record_batch batch(bytes);
    if (wire::batch_error e = batch.validate(/*check_record_count=*/false);
        e != wire::batch_error::ok) {
      reason = make_error_code(e).message();
      break;
    }
    if (batch.base_offset() < next || batch.last_offset() - base_ > max_relative_offset) {
      reason = "offsets out of order for the segment";
      break;
    }
    // Kafka's recover(): the same cadence as appends, one batch at a time.
    if (batch.max_timestamp() > max_ts.timestamp) {
      max_ts = {batch.max_timestamp(), batch.last_offset()};
    }
    if (valid - last_index_entry > index_interval_bytes) {
      offset_index_.append(batch.last_offset(), valid);
      time_index_.maybe_append(max_ts.timestamp, max_ts.offset);
      last_index_entry = valid;
    }
    valid += size;
    next = batch.last_offset() + 1;
  }
  out.scanned_from = position;
  out.scanned_bytes = valid - position;
  if (valid < file_bytes && next < strict_below) {
    // Below the recovery point: fsynced and acknowledged, so not a torn write.
    out.reason = reason;
    return errc::corrupt_log;
  }
  out.truncated_bytes = file_bytes - valid;
  out.reason = out.truncated_bytes > 0 ? reason : std::string();
  if (out.truncated_bytes > 0) {
    if (auto ec = fs_.truncate(log_file_->fd(), valid, log_path_)) return ec;
  }
  size_ = valid;
  next_offset_ = next;
  max_ts_ = max_ts;
  bytes_since_last_index_entry_ = valid - last_index_entry;
  rolling_base_ts_.reset();
  // As after a clean close, the time index ends with the segment's largest timestamp.
  time_index_.maybe_append(max_ts_.timestamp, max_ts_.offset);
  if (auto ec = time_index_.flush_entries()) return ec;
  return offset_index_.flush_entries();
}

std::error_code segment::append(std::span<const uint8_t> bytes, int64_t last_offset,
                                int64_t max_timestamp, int64_t offset_of_max_timestamp,
                                int32_t index_interval_bytes) {
  int64_t position = size_;
  if (auto ec = fs_.write(log_file_->fd(), bytes, position, log_path_)) {
    // Cut off whatever part of the write landed, so the file never holds a torn batch that a
    // later append would bury. If even that fails, size_ still bounds every read, and the log
    // takes no more appends (it goes offline).
    (void)fs_.truncate(log_file_->fd(), position, log_path_);
    return ec;
  }
  if (position == 0) rolling_base_ts_ = max_timestamp;
  size_ += static_cast<int64_t>(bytes.size());
  next_offset_ = last_offset + 1;
  if (max_timestamp > max_ts_.timestamp) max_ts_ = {max_timestamp, offset_of_max_timestamp};
  if (bytes_since_last_index_entry_ > index_interval_bytes) {
    offset_index_.append(last_offset, position);
    time_index_.maybe_append(max_ts_.timestamp, max_ts_.offset);
    bytes_since_last_index_entry_ = 0;
  }
  bytes_since_last_index_entry_ += static_cast<int64_t>(bytes.size());
  return {};
}

std::error_code segment::batch_at(int64_t position, batch_info& out, read_mode mode) const {
  constexpr auto header_size = static_cast<int64_t>(wire::record_batch_header_size);
  if (position < 0 || size_ - position < header_size) return errc::corrupt_message;
  std::array<uint8_t, wire::record_batch_header_size> buf;
  size_t got = 0;
  if (mode == read_mode::cached_only) {
    bool would_block = false;
    if (auto ec = fs_.read_cached(log_file_->fd(), buf, position, got, log_path_, would_block)) {
      return ec;
    }
    if (would_block) return errc::would_block;
  } else if (auto ec = fs_.read(log_file_->fd(), buf, position, got, log_path_)) {
    return ec;
  }
  if (got < buf.size()) return errc::corrupt_message;
  wire::record_batch h(buf);
  if (h.magic() != wire::current_magic || h.batch_length() < wire::min_batch_length ||
      h.size_bytes() > size_ - position || !h.offsets_in_range()) {
    return errc::corrupt_message;
  }
  out.position = position;
  out.size = h.size_bytes();
  out.base_offset = h.base_offset();
  out.last_offset = h.last_offset();
  out.max_timestamp = h.max_timestamp();
  out.attributes = h.attributes();
  out.partition_leader_epoch = h.partition_leader_epoch();
  return {};
}

std::error_code segment::find(int64_t offset, int64_t from, int64_t& position, batch_info& first,
                              read_mode mode) const {
  int64_t p = std::max(offset_index_.lookup(offset).position, from);
  while (p < size_) {
    if (auto ec = batch_at(p, first, mode)) return ec;
    if (first.last_offset >= offset) {
      position = p;
      return {};
    }
    p += first.size;
  }
  position = size_;
  return {};
}

std::error_code segment::read_batch(const batch_info& b, std::vector<uint8_t>& out) const {
  out.resize(static_cast<size_t>(b.size));
  size_t got = 0;
  if (auto ec = fs_.read(log_file_->fd(), out, b.position, got, log_path_)) return ec;
  if (got < out.size()) return errc::corrupt_message;
  return {};
}

std::error_code segment::for_each_batch(
    int64_t from_offset, const std::function<void(const wire::record_batch&)>& fn) const {
  int64_t position = 0;
  batch_info first;
  if (auto ec = find(from_offset, 0, position, first)) return ec;
  chunk_reader reader(fs_, log_file_->fd(), log_path_);
  while (position < size_) {
    std::span<const uint8_t> bytes;
    if (auto ec = reader.view(position, wire::record_batch_header_size, bytes)) return ec;
    wire::record_batch header(bytes);
    if (!header.has_header() || header.magic() != wire::current_magic ||
        !header.offsets_in_range() || header.batch_length() < wire::min_batch_length ||
        header.size_bytes() > size_ - position) {
      return errc::corrupt_message;
    }
    int64_t size = header.size_bytes();
    if (auto ec = reader.view(position, static_cast<size_t>(size), bytes)) return ec;
    if (static_cast<int64_t>(bytes.size()) < size) return errc::corrupt_message;
    fn(wire::record_batch(bytes));
    position += size;
  }
  return {};
}

std::error_code segment::rolling_base_timestamp(int64_t& out) {
  if (!rolling_base_ts_) {
    if (size_ == 0) {
      out = -1;
      return {};
    }
    batch_info b;
    if (auto ec = batch_at(0, b)) return ec;
    rolling_base_ts_ = b.max_timestamp;
  }
  out = *rolling_base_ts_;
  return {};
}

std::error_code segment::largest_timestamp(int64_t& out) const {
  if (max_ts_.timestamp >= 0) {
    out = max_ts_.timestamp;
    return {};
  }
  return fs_.modified_ms(log_file_->fd(), log_path_, out);
}

std::error_code segment::find_timestamp(int64_t ts, int64_t min_offset,
                                        std::optional<timestamp_offset>& out) const {
  out.reset();
  // Every batch up to the offset of the last time entry below ts holds only smaller timestamps
  // (entries record the running maximum), so the search starts after it. Kafka starts at the last
  // entry <= ts instead, which can miss an equal timestamp in an earlier batch.
  int64_t from_offset = min_offset;
  if (auto below = time_index_.last_below(ts))
    from_offset = std::max(from_offset, below->offset + 1);
  int64_t position = offset_index_.lookup(from_offset).position;
  std::vector<uint8_t> bytes;
  while (position < size_) {
    batch_info b;
    if (auto ec = batch_at(position, b)) return ec;
    position += b.size;
    if (b.last_offset < from_offset || b.max_timestamp < ts) continue;
    bool compressed = (b.attributes & wire::batch_attribute::compression_mask) != 0;
    bool log_append_time = (b.attributes & wire::batch_attribute::log_append_time) != 0;
    if (compressed || log_append_time) {
      // Under LogAppendTime every record carries maxTimestamp, so the first record matches.
      out = timestamp_offset{b.max_timestamp, std::max(b.base_offset, from_offset)};
      return {};
    }
    if (auto ec = read_batch(b, bytes)) return ec;
    wire::record_batch batch(bytes);
    wire::record_reader records(batch);
    while (auto r = records.next()) {
      int64_t offset = batch.base_offset() + r->offset_delta;
      int64_t record_ts = batch.base_timestamp() + r->timestamp_delta;
      if (offset >= from_offset && record_ts >= ts) {
        out = timestamp_offset{record_ts, offset};
        return {};
      }
    }
  }
  return {};
}

std::error_code segment::max_timestamp_record(timestamp_offset& out) const {
  out = max_ts_;
  batch_info b;
  int64_t position = 0;
  if (auto ec = find(max_ts_.offset, 0, position, b)) return ec;
  if (position >= size_) return {};
  out.offset = b.base_offset;
  bool compressed = (b.attributes & wire::batch_attribute::compression_mask) != 0;
  bool log_append_time = (b.attributes & wire::batch_attribute::log_append_time) != 0;
  if (compressed || log_append_time) return {};
  std::vector<uint8_t> bytes;
  if (auto ec = read_batch(b, bytes)) return ec;
  wire::record_batch batch(bytes);
  wire::record_reader records(batch);
  while (auto r = records.next()) {
    if (batch.base_timestamp() + r->timestamp_delta == max_ts_.timestamp) {
      out.offset = batch.base_offset() + r->offset_delta;
      return {};
    }
  }
  return {};
}

std::error_code segment::truncate_to(int64_t offset) {
  int64_t position = 0;
  batch_info first;
  if (auto ec = find(offset, 0, position, first)) return ec;
  if (position >= size_) return {};
  if (auto ec = offset_index_.truncate_to(offset)) return ec;
  if (auto ec = time_index_.truncate_to(offset)) return ec;
  return cut_log(position);
}

std::error_code segment::truncate_copy_to(int64_t offset) {
  int64_t position = 0;
  batch_info first;
  if (auto ec = find(offset, 0, position, first)) return ec;
  if (position >= size_) return {};
  // The indexes first, as in truncate_to: fewer entries than the .log has batches is a valid
  // index, whichever step a crash stops at.
  if (auto ec = offset_index_.truncate_by_replacing(offset)) return ec;
  if (auto ec = time_index_.truncate_by_replacing(offset)) return ec;
  return cut_log(position);
}

std::error_code segment::cut_log(int64_t position) {
  if (auto ec = fs_.truncate(log_file_->fd(), position, log_path_)) return ec;
  size_ = position;
  if (size_ == 0) rolling_base_ts_.reset();
  if (auto ec = fs_.sync(log_file_->fd(), log_path_)) return ec;
  synced_size_ = size_;  // fdatasync covered everything the file still holds
  return derive_tail_state();
}

std::unique_ptr<segment> segment::detached_copy() const {
  return std::unique_ptr<segment>(new segment(*this));
}

void segment::append_final_time_entry() {
  time_index_.maybe_append(max_ts_.timestamp, max_ts_.offset);
}

segment_flush segment::take_flush(bool sync_log) {
  segment_flush f;
  f.log_file = log_file_;
  f.log_path = log_path_;
  f.sync_log = sync_log && synced_size_ < size_;
  if (sync_log) synced_size_ = size_;
  f.time_entries = time_index_.take_write();
  f.offset_entries = offset_index_.take_write();
  return f;
}

segment_flush segment::take_sync() {
  segment_flush f;
  f.log_file = log_file_;
  f.log_path = log_path_;
  f.sync_log = true;
  synced_size_ = size_;
  return f;
}

std::error_code segment::flush() {
  if (!log_file_) return {};
  return take_flush(/*sync_log=*/true).run(fs_);
}

void segment::close() {
  log_file_.reset();
}

std::vector<std::filesystem::path> segment::file_paths() const {
  return {log_path_, offset_index_.path(), time_index_.path()};
}

std::error_code segment::remove_files() {
  std::error_code first;
  for (const auto& p : file_paths()) {
    if (auto ec = fs_.remove(p); ec && !first) first = ec;
  }
  return first;
}

}  // namespace sluice::storage

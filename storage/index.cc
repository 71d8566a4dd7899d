#include "storage/index.h"

#include <fcntl.h>

#include <algorithm>

namespace sluice::storage {

namespace {

void put_be(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i)
    out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

uint64_t get_be(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i)
    v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::error_code index_write::run(file_system& fs, bool durable) const {
  if (empty()) return {};
  file_handle fd;
  int flags = O_WRONLY | O_CREAT | O_APPEND | (truncate_first ? O_TRUNC : 0);
  if (auto ec = fs.open(path, flags, fd)) return ec;
  if (!bytes.empty()) {
    // O_APPEND: the position is ignored; writes of one index stay in order because the log
    // submits them to one queue.
    if (auto ec = fs.write(fd.fd(), bytes, 0, path)) return ec;
  }
  if (durable) return fs.sync(fd.fd(), path);
  return {};
}

std::error_code index_file::create() {
  file_handle fd;
  if (auto ec = fs_.open(path_, O_WRONLY | O_CREAT | O_TRUNC, fd)) return ec;
  empty_on_next_write_ = false;
  return {};
}

std::error_code index_file::read_all(std::vector<uint8_t>& out, bool& missing) {
  out.clear();
  file_handle fd;
  if (auto ec = fs_.open(path_, O_RDONLY, fd, &missing)) return ec;
  if (missing) return {};
  int64_t size = 0;
  if (auto ec = fs_.size(fd.fd(), path_, size)) return ec;
  out.resize(static_cast<size_t>(size));
  size_t got = 0;
  if (auto ec = fs_.read(fd.fd(), out, 0, got, path_)) return ec;
  out.resize(got);
  return {};
}

index_write index_file::prepare_append(std::vector<uint8_t> entries_bytes) {
  // Nothing to write leaves the file alone, a pending lazy reset included.
  if (entries_bytes.empty()) return {path_, {}, false};
  index_write w{path_, std::move(entries_bytes), empty_on_next_write_};
  empty_on_next_write_ = false;
  return w;
}

std::error_code index_file::truncate(int64_t size) {
  file_handle fd;
  if (auto ec = fs_.open(path_, O_WRONLY | O_CREAT, fd)) return ec;
  empty_on_next_write_ = false;
  if (auto ec = fs_.truncate(fd.fd(), size, path_)) return ec;
  return fs_.sync(fd.fd(), path_);
}

// ---- offset index ----

bool offset_index::load(int64_t log_size, std::error_code& ec) {
  entries_.clear();
  on_disk_ = 0;
  std::vector<uint8_t> bytes;
  bool missing = false;
  if ((ec = file_.read_all(bytes, missing))) return false;
  if (missing || bytes.size() % entry_size != 0) return false;
  entries_.reserve(bytes.size() / entry_size);
  for (size_t at = 0; at < bytes.size(); at += entry_size) {
    entry_t e{static_cast<int32_t>(get_be(&bytes[at], 4)),
              static_cast<int32_t>(get_be(&bytes[at + 4], 4))};
    bool increasing = entries_.empty() || (e.relative_offset > entries_.back().relative_offset &&
                                           e.position > entries_.back().position);
    if (e.relative_offset < 0 || e.position < 0 || e.position >= log_size || !increasing) {
      entries_.clear();
      return false;
    }
    entries_.push_back(e);
  }
  on_disk_ = entries_.size();
  return true;
}

offset_position offset_index::lookup(int64_t target) const {
  int64_t rel = target - base_;
  auto it = std::upper_bound(entries_.begin(), entries_.end(), rel,
                             [](int64_t r, const entry_t& e) { return r < e.relative_offset; });
  if (it == entries_.begin()) return {base_, 0};
  --it;
  return {base_ + it->relative_offset, it->position};
}

int64_t offset_index::skip_ahead(int64_t from, int64_t max_position, int64_t max_offset) const {
  auto by_position = std::upper_bound(entries_.begin(), entries_.end(), max_position,
                                      [](int64_t p, const entry_t& e) { return p < e.position; });
  auto by_offset =
      std::upper_bound(entries_.begin(), entries_.end(), max_offset - base_,
                       [](int64_t r, const entry_t& e) { return r < e.relative_offset; });
  auto end = std::min(by_position, by_offset);
  if (end == entries_.begin()) return from;
  return std::max<int64_t>(from, std::prev(end)->position);
}

void offset_index::append(int64_t offset, int64_t position) {
  entries_.push_back({static_cast<int32_t>(offset - base_), static_cast<int32_t>(position)});
}

index_write offset_index::take_write() {
  std::vector<uint8_t> bytes;
  bytes.reserve((entries_.size() - on_disk_) * entry_size);
  for (size_t i = on_disk_; i < entries_.size(); ++i) {
    put_be(bytes, static_cast<uint32_t>(entries_[i].relative_offset), 4);
    put_be(bytes, static_cast<uint32_t>(entries_[i].position), 4);
  }
  on_disk_ = entries_.size();
  return file_.prepare_append(std::move(bytes));
}

std::error_code offset_index::flush_entries() {
  return take_write().run(file_.fs(), /*durable=*/true);
}

std::error_code offset_index::truncate_to(int64_t offset) {
  int64_t rel = offset - base_;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), rel,
                             [](const entry_t& e, int64_t r) { return e.relative_offset < r; });
  entries_.erase(it, entries_.end());
  on_disk_ = std::min(on_disk_, entries_.size());
  return file_.truncate(static_cast<int64_t>(on_disk_) * entry_size);
}

std::error_code offset_index::reset() {
  entries_.clear();
  on_disk_ = 0;
  return file_.truncate(0);
}

// ---- time index ----

bool time_index::load(std::error_code& ec) {
  entries_.clear();
  on_disk_ = 0;
  std::vector<uint8_t> bytes;
  bool missing = false;
  if ((ec = file_.read_all(bytes, missing))) return false;
  if (missing || bytes.size() % entry_size != 0) return false;
  entries_.reserve(bytes.size() / entry_size);
  for (size_t at = 0; at < bytes.size(); at += entry_size) {
    entry_t e{static_cast<int64_t>(get_be(&bytes[at], 8)),
              static_cast<int32_t>(get_be(&bytes[at + 8], 4))};
    bool increasing = entries_.empty() || (e.timestamp > entries_.back().timestamp &&
                                           e.relative_offset >= entries_.back().relative_offset);
    if (e.relative_offset < 0 || !increasing) {
      entries_.clear();
      return false;
    }
    entries_.push_back(e);
  }
  on_disk_ = entries_.size();
  return true;
}

timestamp_offset time_index::last() const {
  if (entries_.empty()) return {-1, base_};
  return {entries_.back().timestamp, base_ + entries_.back().relative_offset};
}

std::optional<timestamp_offset> time_index::last_below(int64_t ts) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), ts,
                             [](const entry_t& e, int64_t t) { return e.timestamp < t; });
  if (it == entries_.begin()) return std::nullopt;
  --it;
  return timestamp_offset{it->timestamp, base_ + it->relative_offset};
}

void time_index::maybe_append(int64_t timestamp, int64_t offset) {
  if (timestamp > last().timestamp) {
    entries_.push_back({timestamp, static_cast<int32_t>(offset - base_)});
  }
}

index_write time_index::take_write() {
  std::vector<uint8_t> bytes;
  bytes.reserve((entries_.size() - on_disk_) * entry_size);
  for (size_t i = on_disk_; i < entries_.size(); ++i) {
    put_be(bytes, static_cast<uint64_t>(entries_[i].timestamp), 8);
    put_be(bytes, static_cast<uint32_t>(entries_[i].relative_offset), 4);
  }
  on_disk_ = entries_.size();
  return file_.prepare_append(std::move(bytes));
}

std::error_code time_index::flush_entries() {
  return take_write().run(file_.fs(), /*durable=*/true);
}

std::error_code time_index::truncate_to(int64_t offset) {
  int64_t rel = offset - base_;
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [rel](const entry_t& e) { return e.relative_offset >= rel; });
  entries_.erase(it, entries_.end());
  on_disk_ = std::min(on_disk_, entries_.size());
  return file_.truncate(static_cast<int64_t>(on_disk_) * entry_size);
}

std::error_code time_index::reset() {
  entries_.clear();
  on_disk_ = 0;
  return file_.truncate(0);
}

}  // namespace sluice::storage

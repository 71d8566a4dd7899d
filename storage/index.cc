#include "storage/index.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

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

std::shared_ptr<const index_mapping> index_mapping::map(file_system& fs,
                                                        const std::filesystem::path& path,
                                                        std::error_code& ec) {
  ec.clear();
  file_handle fd;
  if ((ec = fs.open(path, O_RDONLY, fd))) return nullptr;
  int64_t size = 0;
  if ((ec = fs.size(fd.fd(), path, size))) return nullptr;
  if (size == 0) return std::shared_ptr<const index_mapping>(new index_mapping(nullptr, 0));
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_SHARED, fd.fd(), 0);
  if (addr == MAP_FAILED) {
    ec = io_failure("cannot map", path, errno);
    return nullptr;
  }
  // The mapping keeps the file; the descriptor can go.
  return std::shared_ptr<const index_mapping>(new index_mapping(addr, static_cast<size_t>(size)));
}

index_mapping::~index_mapping() {
  if (addr_ != nullptr) ::munmap(addr_, size_);
}

bool index_mapping::resident() const {
  if (size_ == 0) return true;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> pages((size_ + page - 1) / page);
  if (::mincore(addr_, size_, pages.data()) != 0) return false;
  return std::all_of(pages.begin(), pages.end(), [](unsigned char p) { return p & 1; });
}

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

std::error_code index_file::replace(std::span<const uint8_t> content) {
  if (auto ec = replace_file(
          fs_, path_,
          std::string_view(reinterpret_cast<const char*>(content.data()), content.size()),
          /*sync_parent=*/false)) {
    return ec;
  }
  empty_on_next_write_ = false;
  return {};
}

// ---- offset index ----

bool offset_index::load(int64_t log_size, std::error_code& ec) {
  mapping_.reset();
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

namespace {

// The number of entries i in [0, n) for which `below(i)` holds, for a `below` that is true on a
// prefix: std::partition_point over indexes, for vectors and mappings alike.
template <class Below>
size_t count_below(size_t n, Below below) {
  size_t lo = 0;
  size_t hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (below(mid)) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

}  // namespace

offset_position offset_index::entry(size_t i) const {
  if (mapping_) {
    const uint8_t* p = mapping_->bytes().data() + i * entry_size;
    return {base_ + static_cast<int32_t>(get_be(p, 4)), static_cast<int32_t>(get_be(p + 4, 4))};
  }
  return {base_ + entries_[i].relative_offset, entries_[i].position};
}

bool offset_index::map(int64_t log_size, int64_t next_offset, std::error_code& ec) {
  std::shared_ptr<const index_mapping> m = index_mapping::map(file_.fs(), file_.path(), ec);
  if (ec || m->bytes().size() % entry_size != 0) {
    ec.clear();  // a missing or torn file is a rebuild, not an I/O failure
    return false;
  }
  mapping_ = std::move(m);
  std::vector<entry_t>().swap(entries_);  // frees the capacity too
  on_disk_ = 0;
  if (!empty()) {
    // Kafka's OffsetIndex.sanityCheck: the last entry lies inside the log and the segment.
    offset_position last = entry(size() - 1);
    if (last.offset < base_ || last.offset >= next_offset || last.position < 0 ||
        last.position >= log_size) {
      mapping_.reset();
      return false;
    }
  }
  return true;
}

void offset_index::adopt(std::shared_ptr<const index_mapping> mapping) {
  mapping_ = std::move(mapping);
  std::vector<entry_t>().swap(entries_);  // frees the capacity too
  on_disk_ = 0;
}

void offset_index::unmap() {
  if (!mapping_) return;
  std::vector<entry_t> entries;
  entries.reserve(size());
  for (size_t i = 0; i < size(); ++i) {
    offset_position e = entry(i);
    entries.push_back({static_cast<int32_t>(e.offset - base_), static_cast<int32_t>(e.position)});
  }
  mapping_.reset();
  entries_ = std::move(entries);
  on_disk_ = entries_.size();
}

offset_position offset_index::lookup(int64_t target) const {
  size_t n = count_below(size(), [&](size_t i) { return entry(i).offset <= target; });
  if (n == 0) return {base_, 0};
  return entry(n - 1);
}

int64_t offset_index::skip_ahead(int64_t from, int64_t max_position, int64_t max_offset) const {
  size_t by_position =
      count_below(size(), [&](size_t i) { return entry(i).position <= max_position; });
  size_t by_offset = count_below(size(), [&](size_t i) { return entry(i).offset <= max_offset; });
  size_t end = std::min(by_position, by_offset);
  if (end == 0) return from;
  return std::max<int64_t>(from, entry(end - 1).position);
}

void offset_index::append(int64_t offset, int64_t position) {
  unmap();
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

void offset_index::drop_from(int64_t offset) {
  unmap();
  int64_t rel = offset - base_;
  auto it = std::lower_bound(entries_.begin(), entries_.end(), rel,
                             [](const entry_t& e, int64_t r) { return e.relative_offset < r; });
  entries_.erase(it, entries_.end());
  on_disk_ = std::min(on_disk_, entries_.size());
}

std::error_code offset_index::truncate_to(int64_t offset) {
  drop_from(offset);
  return file_.truncate(static_cast<int64_t>(on_disk_) * entry_size);
}

std::error_code offset_index::truncate_by_replacing(int64_t offset) {
  drop_from(offset);
  on_disk_ = 0;
  index_write all = take_write();
  if (auto ec = file_.replace(all.bytes)) {
    on_disk_ = 0;
    return ec;
  }
  return {};
}

std::error_code offset_index::reset() {
  mapping_.reset();
  entries_.clear();
  on_disk_ = 0;
  return file_.truncate(0);
}

// ---- time index ----

bool time_index::load(std::error_code& ec) {
  mapping_.reset();
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

timestamp_offset time_index::entry(size_t i) const {
  if (mapping_) {
    const uint8_t* p = mapping_->bytes().data() + i * entry_size;
    return {static_cast<int64_t>(get_be(p, 8)), base_ + static_cast<int32_t>(get_be(p + 8, 4))};
  }
  return {entries_[i].timestamp, base_ + entries_[i].relative_offset};
}

bool time_index::map(int64_t next_offset, std::error_code& ec) {
  std::shared_ptr<const index_mapping> m = index_mapping::map(file_.fs(), file_.path(), ec);
  if (ec || m->bytes().size() % entry_size != 0) {
    ec.clear();
    return false;
  }
  mapping_ = std::move(m);
  std::vector<entry_t>().swap(entries_);  // frees the capacity too
  on_disk_ = 0;
  if (!empty()) {
    // Kafka's TimeIndex.sanityCheck: the last entry's offset lies inside the segment.
    timestamp_offset last_entry = entry(size() - 1);
    if (last_entry.offset < base_ || last_entry.offset >= next_offset) {
      mapping_.reset();
      return false;
    }
  }
  return true;
}

void time_index::adopt(std::shared_ptr<const index_mapping> mapping) {
  mapping_ = std::move(mapping);
  std::vector<entry_t>().swap(entries_);  // frees the capacity too
  on_disk_ = 0;
}

void time_index::unmap() {
  if (!mapping_) return;
  std::vector<entry_t> entries;
  entries.reserve(size());
  for (size_t i = 0; i < size(); ++i) {
    timestamp_offset e = entry(i);
    entries.push_back({e.timestamp, static_cast<int32_t>(e.offset - base_)});
  }
  mapping_.reset();
  entries_ = std::move(entries);
  on_disk_ = entries_.size();
}

timestamp_offset time_index::last() const {
  if (empty()) return {-1, base_};
  return entry(size() - 1);
}

std::optional<timestamp_offset> time_index::last_below(int64_t ts) const {
  size_t n = count_below(size(), [&](size_t i) { return entry(i).timestamp < ts; });
  if (n == 0) return std::nullopt;
  return entry(n - 1);
}

void time_index::maybe_append(int64_t timestamp, int64_t offset) {
  if (timestamp > last().timestamp) {
    unmap();
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

void time_index::drop_from(int64_t offset) {
  unmap();
  int64_t rel = offset - base_;
  auto it = std::find_if(entries_.begin(), entries_.end(),
                         [rel](const entry_t& e) { return e.relative_offset >= rel; });
  entries_.erase(it, entries_.end());
  on_disk_ = std::min(on_disk_, entries_.size());
}

std::error_code time_index::truncate_to(int64_t offset) {
  drop_from(offset);
  return file_.truncate(static_cast<int64_t>(on_disk_) * entry_size);
}

std::error_code time_index::truncate_by_replacing(int64_t offset) {
  drop_from(offset);
  on_disk_ = 0;
  index_write all = take_write();
  if (auto ec = file_.replace(all.bytes)) {
    on_disk_ = 0;
    return ec;
  }
  return {};
}

std::error_code time_index::reset() {
  mapping_.reset();
  entries_.clear();
  on_disk_ = 0;
  return file_.truncate(0);
}

}  // namespace sluice::storage

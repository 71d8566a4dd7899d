#include "storage/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "storage/errc.h"
#include "storage/log_sink.h"

namespace sluice::storage {

file_handle& file_handle::operator=(file_handle&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.release();
  }
  return *this;
}

file_handle::~file_handle() {
  close();
}

int file_handle::release() {
  int fd = fd_;
  fd_ = -1;
  return fd;
}

void file_handle::close() {
  // Linux always releases the descriptor, even when close(2) reports EINTR: never retry.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::error_code io_failure(std::string_view what, const std::filesystem::path& path, int err) {
  std::string line = "storage: ";
  line.append(what);
  line.append(" ");
  line.append(path.string());
  line.append(": ");
  line.append(std::strerror(err));
  log_event(line);
  return errc::io_error;
}

std::error_code posix_file_system::open(const std::filesystem::path& path, int flags,
                                        file_handle& out, bool* missing) {
  if (missing != nullptr) *missing = false;
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (missing != nullptr && errno == ENOENT) {
      *missing = true;
      return {};
    }
    return io_failure("cannot open", path, errno);
  }
  out = file_handle(fd);
  return {};
}

std::error_code posix_file_system::write(int fd, std::span<const uint8_t> data, int64_t position,
                                         const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), position);
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_failure("cannot write", path, errno);
    }
    if (n == 0) return io_failure("cannot write", path, EIO);
    data = data.subspan(static_cast<size_t>(n));
    position += n;
  }
  return {};
}

std::error_code posix_file_system::read(int fd, std::span<uint8_t> data, int64_t position,
                                        size_t& got, const std::filesystem::path& path) {
  got = 0;
  while (got < data.size()) {
    ssize_t n =
        ::pread(fd, data.data() + got, data.size() - got, position + static_cast<int64_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_failure("cannot read", path, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return {};
}

std::error_code posix_file_system::read_cached(int fd, std::span<uint8_t> data, int64_t position,
                                               size_t& got, const std::filesystem::path& path,
                                               bool& would_block) {
  got = 0;
  would_block = false;
  while (got < data.size()) {
    iovec iov{data.data() + got, data.size() - got};
    // RWF_NOWAIT: EAGAIN instead of waiting for the disk (buffered reads: Linux 5.9+).
    ssize_t n = ::preadv2(fd, &iov, 1, position + static_cast<int64_t>(got), RWF_NOWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        would_block = true;
        got = 0;
        return {};
      }
      // A kernel without RWF_NOWAIT for this file: the plain read, as before.
      if (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS) {
        return read(fd, data, position, got, path);
      }
      return io_failure("cannot read", path, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return {};
}

namespace {

#ifndef SYS_cachestat
#define SYS_cachestat 451  // Linux 6.5+, all architectures
#endif

struct cachestat_range {
  uint64_t off;
  uint64_t len;
};
struct cachestat_result {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

}  // namespace

namespace {

// Whether the pages exist in the page cache (cachestat on Linux 6.5+, mmap + mincore before).
// A page counts from the moment readahead inserts it, before its read completes.
bool pages_present(int fd, int64_t first, int64_t end, int64_t page) {
  const uint64_t pages = static_cast<uint64_t>((end - first + page - 1) / page);
  static std::atomic<bool> have_cachestat = true;
  if (have_cachestat) {
    cachestat_range range{static_cast<uint64_t>(first), static_cast<uint64_t>(end - first)};
    cachestat_result result{};
    if (::syscall(SYS_cachestat, fd, &range, &result, 0) == 0) return result.nr_cache >= pages;
    if (errno == ENOSYS) have_cachestat = false;
  }
  void* addr = ::mmap(nullptr, static_cast<size_t>(end - first), PROT_READ, MAP_SHARED, fd, first);
  if (addr == MAP_FAILED) return true;  // cannot tell: read as if it were cached
  std::vector<unsigned char> vec(pages);
  bool all = ::mincore(addr, static_cast<size_t>(end - first), vec.data()) == 0 &&
             std::all_of(vec.begin(), vec.end(), [](unsigned char v) { return v & 1; });
  ::munmap(addr, static_cast<size_t>(end - first));
  return all;
}

// Whether one byte reads without waiting: RWF_NOWAIT fails with EAGAIN on a page whose read is
// still in flight. Kernels without it for buffered reads answer yes (the old behaviour).
bool byte_readable_now(int fd, int64_t position) {
  char byte;
  iovec iov{&byte, 1};
  for (;;) {
    ssize_t n = ::preadv2(fd, &iov, 1, position, RWF_NOWAIT);
    if (n >= 0) return true;
    if (errno == EINTR) continue;
    return errno != EAGAIN;
  }
}

}  // namespace

bool posix_file_system::cached(int fd, int64_t position, int64_t length) {
  if (length <= 0) return true;
  const int64_t page = ::sysconf(_SC_PAGESIZE);
  const int64_t first = position / page * page;
  const int64_t end = position + length;
  if (!pages_present(fd, first, end, page)) return false;
  // A sequential reader keeps the device's readahead (often several MiB) ahead of itself, so the
  // next slice is usually present but partly still being read, and a sendfile from it would wait
  // for the disk (measured: 33 of 512 1-MiB sendfiles after a fadvise(DONTNEED) took 1-8 ms).
  // One RWF_NOWAIT byte per 256 KiB, back to front, finds such pages: readahead fills a window
  // in a few large reads, and a probe per quarter MiB removed every such wait in the same test.
  constexpr int64_t probe_step = 256 << 10;
  for (int64_t p = end - 1; p > position; p -= probe_step) {
    if (!byte_readable_now(fd, p)) return false;
  }
  return byte_readable_now(fd, position);
}

std::error_code posix_file_system::load_into_cache(int fd, int64_t position, int64_t length,
                                                   const std::filesystem::path& path) {
  // sendfile to /dev/null reads the pages into the cache without a copy to user space.
  static const int dev_null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  off_t offset = position;
  int64_t left = length;
  while (left > 0) {
    ssize_t n = dev_null >= 0 ? ::sendfile(dev_null, fd, &offset,
                                           static_cast<size_t>(std::min<int64_t>(left, 1 << 30)))
                              : -1;
    if (n < 0) {
      if (errno == EINTR) continue;
      // No sendfile for this file system: read through a buffer instead.
      std::vector<uint8_t> chunk(static_cast<size_t>(std::min<int64_t>(left, 1 << 20)));
      size_t got = 0;
      if (auto ec = read(fd, chunk, offset, got, path)) return ec;
      if (got == 0) return {};
      offset += static_cast<off_t>(got);
      left -= static_cast<int64_t>(got);
      continue;
    }
    if (n == 0) return {};  // end of file
    left -= n;
  }
  return {};
}

std::error_code posix_file_system::truncate(int fd, int64_t size,
                                            const std::filesystem::path& path) {
  while (::ftruncate(fd, size) != 0) {
    if (errno != EINTR) return io_failure("cannot truncate", path, errno);
  }
  return {};
}

std::error_code posix_file_system::sync(int fd, const std::filesystem::path& path) {
  // EINTR is retried; any other failure is final. After a failed fdatasync Linux may already have
  // dropped the dirty pages it could not write, so a retry that succeeds proves nothing: the
  // caller must treat the data as lost.
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return io_failure("cannot fsync", path, errno);
  }
  return {};
}

std::error_code posix_file_system::sync_dir(const std::filesystem::path& dir_or_empty) {
  // parent_path() of a bare file name is empty: that file lives in the working directory.
  std::filesystem::path dir = dir_or_empty.empty() ? std::filesystem::path(".") : dir_or_empty;
  file_handle h;
  if (auto ec = open(dir, O_RDONLY | O_DIRECTORY, h)) return ec;
  while (::fsync(h.fd()) != 0) {
    if (errno != EINTR) return io_failure("cannot fsync directory", dir, errno);
  }
  return {};
}

std::error_code posix_file_system::rename(const std::filesystem::path& from,
                                          const std::filesystem::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return io_failure("cannot rename onto", to, errno);
  return {};
}

std::error_code posix_file_system::remove(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return io_failure("cannot delete", path, errno);
  }
  return {};
}

std::error_code posix_file_system::create_directories(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) return io_failure("cannot create directory", path, ec.value());
  return {};
}

std::error_code posix_file_system::remove_all(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return io_failure("cannot delete", path, ec.value());
  return {};
}

std::error_code posix_file_system::list(const std::filesystem::path& dir,
                                        std::vector<dir_entry>& out) {
  out.clear();
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  for (; !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    out.push_back({it->path().filename().string(), it->is_directory(type_ec)});
  }
  if (ec) return io_failure("cannot list", dir, ec.value());
  return {};
}

std::error_code posix_file_system::size(int fd, const std::filesystem::path& path, int64_t& out) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_failure("cannot stat", path, errno);
  out = st.st_size;
  return {};
}

std::error_code posix_file_system::modified_ms(int fd, const std::filesystem::path& path,
                                               int64_t& out) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return io_failure("cannot stat", path, errno);
  out = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
  return {};
}

file_system& default_file_system() {
  static posix_file_system fs;
  return fs;
}

std::error_code read_small_file(file_system& fs, const std::filesystem::path& path,
                                std::string& out, bool& missing) {
  out.clear();
  file_handle h;
  if (auto ec = fs.open(path, O_RDONLY, h, &missing)) return ec;
  if (missing) return {};
  char buf[8192];
  int64_t pos = 0;
  for (;;) {
    size_t got = 0;
    auto span = std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf), sizeof buf);
    if (auto ec = fs.read(h.fd(), span, pos, got, path)) return ec;
    out.append(buf, got);
    pos += static_cast<int64_t>(got);
    if (got < sizeof buf) return {};
  }
}

std::error_code replace_file(file_system& fs, const std::filesystem::path& path,
                             std::string_view content, bool sync_parent) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    file_handle h;
    if (auto ec = fs.open(tmp, O_WRONLY | O_CREAT | O_TRUNC, h)) return ec;
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()), content.size());
    if (auto ec = fs.write(h.fd(), bytes, 0, tmp)) return ec;
    if (auto ec = fs.sync(h.fd(), tmp)) return ec;
  }
  if (auto ec = fs.rename(tmp, path)) return ec;
  if (sync_parent) return fs.sync_dir(path.parent_path());
  return {};
}

}  // namespace sluice::storage

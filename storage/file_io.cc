#include "storage/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

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

std::error_code open_file(const std::filesystem::path& path, int flags, file_handle& out) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return io_failure("cannot open", path, errno);
  out = file_handle(fd);
  return {};
}

std::error_code file_size(int fd, const std::filesystem::path& path, int64_t& out) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return io_failure("cannot stat", path, errno);
  out = st.st_size;
  return {};
}

std::error_code pwrite_all(int fd, std::span<const uint8_t> data, int64_t position,
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

std::error_code pread_some(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                           const std::filesystem::path& path) {
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

std::error_code truncate_file(int fd, int64_t size, const std::filesystem::path& path) {
  while (::ftruncate(fd, size) != 0) {
    if (errno != EINTR) return io_failure("cannot truncate", path, errno);
  }
  return {};
}

std::error_code sync_file(int fd, const std::filesystem::path& path) {
  while (::fdatasync(fd) != 0) {
    if (errno != EINTR) return io_failure("cannot fsync", path, errno);
  }
  return {};
}

std::error_code sync_dir(const std::filesystem::path& dir_or_empty) {
  // parent_path() of a bare file name is empty: that file lives in the working directory.
  std::filesystem::path dir = dir_or_empty.empty() ? std::filesystem::path(".") : dir_or_empty;
  file_handle h;
  if (auto ec = open_file(dir, O_RDONLY | O_DIRECTORY, h)) return ec;
  while (::fsync(h.fd()) != 0) {
    if (errno != EINTR) return io_failure("cannot fsync directory", dir, errno);
  }
  return {};
}

std::error_code read_small_file(const std::filesystem::path& path, std::string& out,
                                bool& missing) {
  out.clear();
  missing = false;
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    if (errno == ENOENT) {
      missing = true;
      return {};
    }
    return io_failure("cannot open", path, errno);
  }
  file_handle h(fd);
  char buf[8192];
  int64_t pos = 0;
  for (;;) {
    size_t got = 0;
    auto span = std::span<uint8_t>(reinterpret_cast<uint8_t*>(buf), sizeof buf);
    if (auto ec = pread_some(h.fd(), span, pos, got, path)) return ec;
    out.append(buf, got);
    pos += static_cast<int64_t>(got);
    if (got < sizeof buf) return {};
  }
}

std::error_code replace_file(const std::filesystem::path& path, std::string_view content,
                             bool sync_parent) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    file_handle h;
    if (auto ec = open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC, h)) return ec;
    auto bytes =
        std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(content.data()), content.size());
    if (auto ec = pwrite_all(h.fd(), bytes, 0, tmp)) return ec;
    while (::fsync(h.fd()) != 0) {
      if (errno != EINTR) return io_failure("cannot fsync", tmp, errno);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return io_failure("cannot rename onto", path, errno);
  if (sync_parent) return sync_dir(path.parent_path());
  return {};
}

std::error_code remove_file(const std::filesystem::path& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return io_failure("cannot delete", path, errno);
  }
  return {};
}

}  // namespace sluice::storage

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

#pragma once
// Small POSIX file helpers for storage: an owning descriptor, full-length pread/pwrite, fsync of
// files and directories, and the write-to-.tmp-then-rename pattern of Kafka's checkpoint files.
// Internal to storage/.
//
// Every failure is logged through the log sink with the path and strerror, and returned as
// errc::io_error, so callers can propagate it without composing messages.
//
// Threading: no shared state.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace sluice::storage {

// Owns one file descriptor; closes it on destruction. Move-only.
class file_handle {
 public:
  file_handle() = default;
  explicit file_handle(int fd) : fd_(fd) {}
  file_handle(file_handle&& o) noexcept : fd_(o.release()) {}
  file_handle& operator=(file_handle&& o) noexcept;
  file_handle(const file_handle&) = delete;
  file_handle& operator=(const file_handle&) = delete;
  ~file_handle();

  int fd() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  int release();
  void close();

 private:
  int fd_ = -1;
};

// Logs "storage: <what> <path>: <strerror(err)>" and returns errc::io_error.
std::error_code io_failure(std::string_view what, const std::filesystem::path& path, int err);

// Opens (O_CLOEXEC added) with mode 0644.
std::error_code open_file(const std::filesystem::path& path, int flags, file_handle& out);
std::error_code file_size(int fd, const std::filesystem::path& path, int64_t& out);
std::error_code pwrite_all(int fd, std::span<const uint8_t> data, int64_t position,
                           const std::filesystem::path& path);
// Reads up to data.size() bytes; `got` < data.size() only at end of file.
std::error_code pread_some(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                           const std::filesystem::path& path);
std::error_code truncate_file(int fd, int64_t size, const std::filesystem::path& path);
// fdatasync: the data and the file size, which is all a reader needs after a crash.
std::error_code sync_file(int fd, const std::filesystem::path& path);
std::error_code sync_dir(const std::filesystem::path& dir);
// Whole file into `out`; a missing file sets `missing` and is not an error.
std::error_code read_small_file(const std::filesystem::path& path, std::string& out, bool& missing);
// Writes `content` to `<path>.tmp`, fsyncs it, renames it over `path`, then fsyncs the directory
// when `sync_parent` (skip it when several files are replaced together and synced once).
std::error_code replace_file(const std::filesystem::path& path, std::string_view content,
                             bool sync_parent = true);
// Unlinks `path`; a missing file is not an error.
std::error_code remove_file(const std::filesystem::path& path);

}  // namespace sluice::storage

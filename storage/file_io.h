#pragma once
// Every file system call storage makes goes through `file_system`, so that the storage tests can
// put a fault-injecting layer underneath (one that "loses power" and keeps only what was synced;
// storage/tests/fault_injection_fs.h). The POSIX implementation is what the broker uses.
//
// Every failure is logged through the log sink with the path and strerror, and returned as
// errc::io_error, so callers can propagate it without composing messages.
//
// Threading: `posix_file_system` has no state and may be called from any thread (the disk
// executor's threads included). Descriptors are plain ints: the network layer sends file slices
// from them with sendfile, whatever layer opened them.

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

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

// Whether a read may wait for the disk. The thread that serves sockets reads with cached_only:
// when the data is not in memory it gets errc::would_block and what to warm instead, warms it on
// the disk executor, and reads again.
enum class read_mode { may_block, cached_only };

struct dir_entry {
  std::string name;
  bool is_directory = false;
};

class file_system {
 public:
  virtual ~file_system() = default;

  // Opens (O_CLOEXEC added) with mode 0644. With `missing` given, a file that does not exist sets
  // it and is not an error (nothing is logged).
  virtual std::error_code open(const std::filesystem::path& path, int flags, file_handle& out,
                               bool* missing = nullptr) = 0;
  // All of `data` at `position` (a short write is retried).
  virtual std::error_code write(int fd, std::span<const uint8_t> data, int64_t position,
                                const std::filesystem::path& path) = 0;
  // Up to data.size() bytes; `got` < data.size() only at end of file.
  virtual std::error_code read(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                               const std::filesystem::path& path) = 0;
  // The same, but only from the page cache: sets `would_block` (and reads nothing) when the data
  // would have to come from the disk.
  virtual std::error_code read_cached(int fd, std::span<uint8_t> data, int64_t position,
                                      size_t& got, const std::filesystem::path& path,
                                      bool& would_block) = 0;
  // Whether [position, position + length) of the file is all in the page cache and readable
  // without waiting: pages that readahead has inserted but not yet filled do not count.
  virtual bool cached(int fd, int64_t position, int64_t length) = 0;
  // Reads [position, position + length) into the page cache and waits for it, without copying
  // the bytes through user space. Blocking: for the disk executor.
  virtual std::error_code load_into_cache(int fd, int64_t position, int64_t length,
                                          const std::filesystem::path& path) = 0;
  virtual std::error_code truncate(int fd, int64_t size, const std::filesystem::path& path) = 0;
  // fdatasync: the data and the file size, which is all a reader needs after a crash.
  virtual std::error_code sync(int fd, const std::filesystem::path& path) = 0;
  // fsync of a directory: makes the entries created, renamed or removed in it durable.
  virtual std::error_code sync_dir(const std::filesystem::path& dir) = 0;
  virtual std::error_code rename(const std::filesystem::path& from,
                                 const std::filesystem::path& to) = 0;
  // Unlinks a file; a missing file is not an error.
  virtual std::error_code remove(const std::filesystem::path& path) = 0;
  // Creates the directory and any missing parents; an existing directory is not an error.
  virtual std::error_code create_directories(const std::filesystem::path& path) = 0;
  // Deletes a directory tree; a missing one is not an error.
  virtual std::error_code remove_all(const std::filesystem::path& path) = 0;
  // The entries of a directory, in no particular order ("." and ".." left out).
  virtual std::error_code list(const std::filesystem::path& dir, std::vector<dir_entry>& out) = 0;
  virtual std::error_code size(int fd, const std::filesystem::path& path, int64_t& out) = 0;
  // Last modification time in ms since the epoch.
  virtual std::error_code modified_ms(int fd, const std::filesystem::path& path, int64_t& out) = 0;
};

// The real thing: POSIX calls, EINTR retried.
class posix_file_system : public file_system {
 public:
  std::error_code open(const std::filesystem::path& path, int flags, file_handle& out,
                       bool* missing = nullptr) override;
  std::error_code write(int fd, std::span<const uint8_t> data, int64_t position,
                        const std::filesystem::path& path) override;
  std::error_code read(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                       const std::filesystem::path& path) override;
  std::error_code read_cached(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                              const std::filesystem::path& path, bool& would_block) override;
  bool cached(int fd, int64_t position, int64_t length) override;
  std::error_code load_into_cache(int fd, int64_t position, int64_t length,
                                  const std::filesystem::path& path) override;
  std::error_code truncate(int fd, int64_t size, const std::filesystem::path& path) override;
  std::error_code sync(int fd, const std::filesystem::path& path) override;
  std::error_code sync_dir(const std::filesystem::path& dir) override;
  std::error_code rename(const std::filesystem::path& from,
                         const std::filesystem::path& to) override;
  std::error_code remove(const std::filesystem::path& path) override;
  std::error_code create_directories(const std::filesystem::path& path) override;
  std::error_code remove_all(const std::filesystem::path& path) override;
  std::error_code list(const std::filesystem::path& dir, std::vector<dir_entry>& out) override;
  std::error_code size(int fd, const std::filesystem::path& path, int64_t& out) override;
  std::error_code modified_ms(int fd, const std::filesystem::path& path, int64_t& out) override;
};

// The process-wide POSIX file system (stateless).
file_system& default_file_system();

// Whole file into `out`; a missing file sets `missing` and is not an error.
std::error_code read_small_file(file_system& fs, const std::filesystem::path& path,
                                std::string& out, bool& missing);
// Writes `content` to `<path>.tmp`, fsyncs it, renames it over `path`, then fsyncs the directory
// when `sync_parent` (skip it when several files are replaced together and synced once).
std::error_code replace_file(file_system& fs, const std::filesystem::path& path,
                             std::string_view content, bool sync_parent = true);

}  // namespace sluice::storage

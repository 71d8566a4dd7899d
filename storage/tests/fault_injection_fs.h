#pragma once
// A file system for the storage tests that can fail and "lose power", in the spirit of LevelDB's
// FaultInjectionTestEnv. It works on real files (descriptors stay real, so reads and sendfile
// work) and keeps, beside them, what a power loss would leave:
//
//  - a file keeps only the bytes it had at its last fdatasync (files present when the layer was
//    put in place count as synced);
//  - a directory entry made since the directory's last fsync (a file or directory created, a
//    rename's new name) is lost: a new file disappears, a file a rename replaced comes back with
//    its old content, and a renamed file reappears under its old name.
//
// Truncations and unlinks are taken as durable at once (the lenient side: a power loss may also
// undo them), and so are O_TRUNC opens of files that already existed.
//
// Faults: `crash_after(n)` lets n more mutating calls through and fails every later one with EIO
// without doing it, as if the machine had stopped there; `fail_sync_if` makes chosen fdatasyncs
// fail. lose_power() then rewrites the real files to what the model says survived.
//
// Threading: the storage tests run it on one thread (with the manual disk executor).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "storage/errc.h"
#include "storage/file_io.h"

namespace sluice::storage::testing {

class fault_injection_fs : public posix_file_system {
 public:
  // Lets `ops` more mutating calls through; every later one fails with EIO and does nothing.
  void crash_after(size_t ops) { crash_at_ = mutating_ops_ + ops; }
  bool crashed() const { return crash_at_ && mutating_ops_ >= *crash_at_; }
  // Mutating calls made so far (writes, syncs, creations, renames, removals, truncations).
  size_t mutating_ops() const { return mutating_ops_; }
  // fdatasyncs of files for which this returns true fail with EIO (and count as not done).
  std::function<bool(const std::filesystem::path&)> fail_sync_if;
  // A cold page cache: cached-only reads of a .log find nothing in memory except the ranges that
  // load_into_cache() brought in since.
  bool cold_logs = false;
  size_t loads_into_cache() const { return loads_; }

  // Rewrites the real files to what survives a power loss (see the header), then forgets every
  // fault: the layer behaves as after a reboot, with every file on disk counting as synced.
  void lose_power() {
    // Files where they are now: only their synced bytes, and only if their entry is durable.
    for (const auto& [path, f] : files_) {
      std::error_code ec;
      if (!std::filesystem::exists(path, ec)) continue;
      if (!f.entry_durable) {
        std::filesystem::remove(path, ec);
        continue;
      }
      std::filesystem::resize_file(path, static_cast<uintmax_t>(f.synced_size), ec);
    }
    // Then the renames whose directories were not synced, newest first, so that chains unwind.
    for (auto it = renames_.rbegin(); it != renames_.rend(); ++it) {
      if (it->durable) continue;
      std::error_code ec;
      if (it->is_directory) {
        if (std::filesystem::exists(it->to, ec)) std::filesystem::rename(it->to, it->from, ec);
        continue;
      }
      if (it->replaced) {
        write_whole(it->to, *it->replaced);
      } else {
        std::filesystem::remove(it->to, ec);
      }
      if (it->moved_content) write_whole(it->from, *it->moved_content);
    }
    for (const auto& dir : new_dirs_) {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
    files_.clear();
    renames_.clear();
    new_dirs_.clear();
    crash_at_.reset();
    fail_sync_if = {};
  }

  std::error_code read_cached(int fd, std::span<uint8_t> data, int64_t position, size_t& got,
                              const std::filesystem::path& path, bool& would_block) override {
    would_block = cold_logs && path.extension() == ".log" &&
                  !warm(key(path), position, static_cast<int64_t>(data.size()));
    if (would_block) {
      got = 0;
      return {};
    }
    return posix_file_system::read(fd, data, position, got, path);
  }
  bool cached(int fd, int64_t position, int64_t length) override {
    auto it = fd_paths_.find(fd);
    if (!cold_logs || it == fd_paths_.end() || !it->second.ends_with(".log")) return true;
    return warm(it->second, position, length);
  }
  std::error_code load_into_cache(int fd, int64_t position, int64_t length,
                                  const std::filesystem::path& path) override {
    ++loads_;
    warmed_[key(path)].push_back({position, position + length});
    return posix_file_system::load_into_cache(fd, position, length, path);
  }

  std::error_code open(const std::filesystem::path& path, int flags, file_handle& out,
                       bool* missing = nullptr) override {
    const std::string p = key(path);
    const bool creates = (flags & O_CREAT) != 0;
    const bool existed = exists(p);
    if (creates && (!existed || (flags & O_TRUNC))) {
      if (!step()) return fail(path);
    }
    std::error_code ec = posix_file_system::open(path, flags, out, missing);
    if (ec || (missing && *missing)) return ec;
    fd_paths_[out.fd()] = p;
    file& f = track(p, existed);
    if (!existed) {
      f.entry_durable = false;
      f.synced_size = 0;
    }
    if (flags & O_TRUNC) f.synced_size = 0;
    return {};
  }

  std::error_code write(int fd, std::span<const uint8_t> data, int64_t position,
                        const std::filesystem::path& path) override {
    if (!step()) return fail(path);
    track(key(path), true);
    return posix_file_system::write(fd, data, position, path);
  }

  std::error_code truncate(int fd, int64_t size, const std::filesystem::path& path) override {
    if (!step()) return fail(path);
    file& f = track(key(path), true);
    f.synced_size = std::min(f.synced_size, size);
    return posix_file_system::truncate(fd, size, path);
  }

  // Real fsyncs are skipped: the model, not the disk, decides what survives, and a test that
  // enumerates hundreds of crash points should not wait for the disk.
  std::error_code sync(int fd, const std::filesystem::path& path) override {
    if (!step()) return fail(path);
    if (fail_sync_if && fail_sync_if(path)) return io_failure("cannot fsync", path, EIO);
    file& f = track(key(path), true);
    int64_t size = 0;
    if (auto ec = posix_file_system::size(fd, path, size)) return ec;
    f.synced_size = size;
    return {};
  }

  std::error_code sync_dir(const std::filesystem::path& dir) override {
    if (!step()) return fail(dir);
    const std::string d = key(dir.empty() ? std::filesystem::path(".") : dir);
    for (auto& [path, f] : files_) {
      if (parent(path) == d) f.entry_durable = true;
    }
    for (auto& r : renames_) {
      // Both names must be durable: the new one's directory and the old one's.
      if (parent(r.to) == d) r.to_durable = true;
      if (parent(r.from) == d) r.from_durable = true;
      r.durable = r.to_durable && r.from_durable;
    }
    std::erase_if(new_dirs_, [&](const std::string& nd) { return parent(nd) == d; });
    return {};
  }

  std::error_code rename(const std::filesystem::path& from,
                         const std::filesystem::path& to) override {
    if (!step()) return fail(to);
    const std::string f = key(from);
    const std::string t = key(to);
    rename_record r;
    r.from = f;
    r.to = t;
    std::error_code ec;
    r.is_directory = std::filesystem::is_directory(from, ec);
    if (!r.is_directory) {
      // What the old name held durably: what reappears there if the rename is lost (nothing, if
      // the old name itself was never durable).
      if (!files_.count(f) || files_[f].entry_durable) r.moved_content = durable_content(f);
      if (std::filesystem::exists(to, ec) && files_.count(t) && files_[t].entry_durable) {
        r.replaced = durable_content(t);
      } else if (std::filesystem::exists(to, ec) && !files_.count(t)) {
        r.replaced = read_whole(t);
      }
    }
    if (auto e = posix_file_system::rename(from, to)) return e;
    if (auto it = files_.find(f); it != files_.end()) {
      file moved = it->second;
      files_.erase(it);
      moved.entry_durable = true;  // the entry is the rename's business now
      files_[t] = moved;
    }
    // Files under a renamed directory move with it.
    std::map<std::string, file> moved_children;
    for (auto it = files_.begin(); it != files_.end();) {
      if (it->first.starts_with(f + "/")) {
        moved_children[t + it->first.substr(f.size())] = it->second;
        it = files_.erase(it);
      } else {
        ++it;
      }
    }
    files_.merge(moved_children);
    renames_.push_back(std::move(r));
    return {};
  }

  std::error_code remove(const std::filesystem::path& path) override {
    if (!step()) return fail(path);
    files_.erase(key(path));
    return posix_file_system::remove(path);
  }

  std::error_code create_directories(const std::filesystem::path& path) override {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) return {};
    if (!step()) return fail(path);
    // Every level that does not exist yet is a new, not yet durable, directory entry.
    std::vector<std::string> created;
    for (std::filesystem::path p = std::filesystem::path(key(path));
         !p.empty() && p != p.root_path(); p = p.parent_path()) {
      if (std::filesystem::exists(p, ec)) break;
      created.push_back(p.string());
    }
    if (auto e = posix_file_system::create_directories(path)) return e;
    new_dirs_.insert(new_dirs_.end(), created.begin(), created.end());
    return {};
  }

  std::error_code remove_all(const std::filesystem::path& path) override {
    if (!step()) return fail(path);
    const std::string p = key(path);
    std::erase_if(files_, [&](const auto& kv) { return kv.first.starts_with(p + "/"); });
    return posix_file_system::remove_all(path);
  }

 private:
  struct file {
    int64_t synced_size = 0;
    bool entry_durable = true;
  };
  struct rename_record {
    std::string from;
    std::string to;
    std::optional<std::string> moved_content;
    std::optional<std::string> replaced;
    bool is_directory = false;
    bool to_durable = false;
    bool from_durable = false;
    bool durable = false;
  };

  static std::string key(const std::filesystem::path& p) {
    return std::filesystem::absolute(p).lexically_normal().string();
  }
  static std::string parent(const std::string& p) {
    return std::filesystem::path(p).parent_path().string();
  }
  static bool exists(const std::string& p) {
    std::error_code ec;
    return std::filesystem::exists(p, ec);
  }
  static std::string read_whole(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  static void write_whole(const std::string& p, const std::string& content) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
  }

  // The file's content as a power loss would leave it (its synced prefix).
  std::string durable_content(const std::string& p) {
    std::string content = read_whole(p);
    if (auto it = files_.find(p); it != files_.end()) {
      content.resize(std::min(content.size(), static_cast<size_t>(it->second.synced_size)));
    }
    return content;
  }

  // A file seen for the first time that already existed counts as synced whole.
  file& track(const std::string& p, bool existed) {
    auto it = files_.find(p);
    if (it != files_.end()) return it->second;
    file f;
    if (existed) {
      std::error_code ec;
      f.synced_size = static_cast<int64_t>(std::filesystem::file_size(p, ec));
      if (ec) f.synced_size = 0;
    }
    return files_[p] = f;
  }

  // Counts a mutating call; false once the machine has "stopped".
  bool step() {
    if (crashed()) return false;
    ++mutating_ops_;
    return true;
  }
  std::error_code fail(const std::filesystem::path& path) {
    return io_failure("(injected crash) cannot change", path, EIO);
  }

  // Whether [position, position + length) lies in one range load_into_cache() brought in.
  bool warm(const std::string& path, int64_t position, int64_t length) const {
    auto it = warmed_.find(path);
    if (it == warmed_.end()) return false;
    for (const auto& [from, to] : it->second) {
      if (from <= position && position + length <= to) return true;
    }
    return false;
  }

  std::map<int, std::string> fd_paths_;  // descriptors this layer opened, by the path they name
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> warmed_;
  size_t loads_ = 0;
  std::map<std::string, file> files_;
  std::vector<rename_record> renames_;
  std::vector<std::string> new_dirs_;
  size_t mutating_ops_ = 0;
  std::optional<size_t> crash_at_;
};

}  // namespace sluice::storage::testing

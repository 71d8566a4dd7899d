#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <random>
#include <string_view>

#include "storage/checkpoint.h"
#include "storage/file_io.h"
#include "storage/log.h"
#include "storage/log_sink.h"

namespace sluice::storage {

namespace {

// Reads one checkpoint file. Missing is empty; unreadable or malformed is logged and treated as
// empty, which is safe: no recovery point means full recovery, no high watermark means the log
// start offset.
offset_map read_checkpoint(const std::filesystem::path& path) {
  std::string text;
  bool missing = false;
  if (read_small_file(path, text, missing) || missing) return {};
  if (auto offsets = parse_offset_checkpoint(text)) return *std::move(offsets);
  log_event("storage: ignoring malformed checkpoint " + path.string());
  return {};
}

constexpr std::string_view deleted_dir_suffix = "-delete";

std::string random_hex(size_t bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::random_device rd;
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<uint8_t>(rd());
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace

log_manager::log_manager(std::filesystem::path root, log_config defaults)
    : root_(std::move(root)), defaults_(defaults) {}

log_manager::~log_manager() = default;

std::error_code log_manager::load() {
  std::error_code fs_ec;
  std::filesystem::create_directories(root_, fs_ec);
  if (fs_ec) return io_failure("cannot create log directory", root_, fs_ec.value());
  if (!std::filesystem::is_directory(root_, fs_ec)) {
    return io_failure("log directory is not a directory:", root_, ENOTDIR);
  }
  if (::access(root_.c_str(), W_OK | X_OK) != 0) {
    return io_failure("log directory is not writable:", root_, errno);
  }

  bool clean = std::filesystem::exists(root_ / clean_shutdown_file, fs_ec);
  offset_map recovery_points = read_checkpoint(root_ / recovery_point_checkpoint_file);
  offset_map high_watermarks = read_checkpoint(root_ / high_watermark_checkpoint_file);
  offset_map start_offsets = read_checkpoint(root_ / log_start_offset_checkpoint_file);

  std::vector<std::pair<topic_partition, std::filesystem::path>> dirs;
  for (const auto& entry : std::filesystem::directory_iterator(root_, fs_ec)) {
    if (!entry.is_directory()) continue;
    std::string name = entry.path().filename().string();
    if (name.ends_with(deleted_dir_suffix)) {
      // A remove() that a crash interrupted.
      std::filesystem::remove_all(entry.path(), fs_ec);
      log_event("storage: deleted " + entry.path().string() +
                (fs_ec ? " in part: " + fs_ec.message() : std::string()));
      fs_ec.clear();
      continue;
    }
    std::optional<topic_partition> tp = parse_partition_dir_name(name);
    if (!tp) {
      log_event("storage: ignoring directory " + entry.path().string());
      continue;
    }
    dirs.emplace_back(std::move(*tp), entry.path());
  }
  if (fs_ec) return io_failure("cannot list", root_, fs_ec.value());
  std::sort(dirs.begin(), dirs.end());

  for (auto& [tp, dir] : dirs) {
    auto rp = recovery_points.find(tp);
    int64_t recovery_point = rp == recovery_points.end() ? 0 : rp->second;
    auto start = start_offsets.find(tp);
    int64_t log_start = start == start_offsets.end() ? 0 : start->second;
    std::error_code ec;
    std::unique_ptr<log> l = log::open(dir, tp, defaults_, !clean, recovery_point, ec, log_start);
    if (ec) {
      log_event("storage: cannot load " + dir.string() + ": " + ec.message());
      return ec;
    }
    auto hw = high_watermarks.find(tp);
    l->set_high_watermark(hw == high_watermarks.end() ? l->log_start_offset() : hw->second);
    logs_.emplace(tp, std::move(l));
  }

  if (clean) {
    // Gone as soon as the logs are loaded: from here on a crash is not a clean shutdown.
    if (auto ec = remove_file(root_ / clean_shutdown_file)) return ec;
    if (auto ec = sync_dir(root_)) return ec;
  }
  return {};
}

log* log_manager::find(const topic_partition& tp) {
  auto it = logs_.find(tp);
  return it == logs_.end() ? nullptr : it->second.get();
}

log* log_manager::create(const topic_partition& tp, const wire::uuid& topic_id,
                         std::error_code& ec) {
  return create(tp, topic_id, defaults_, ec);
}

log* log_manager::create(const topic_partition& tp, const wire::uuid& topic_id,
                         const log_config& cfg, std::error_code& ec) {
  ec.clear();
  const bool has_id = topic_id != wire::uuid{};
  if (log* existing = find(tp)) {
    if (has_id) existing->set_topic_id(topic_id, ec);
    return ec ? nullptr : existing;
  }
  if (!is_valid_topic_name(tp.topic) || tp.partition < 0) {
    ec = errc::invalid_topic_partition;
    return nullptr;
  }
  std::unique_ptr<log> l = log::open(root_ / partition_dir_name(tp), tp, cfg,
                                     /*recover_unflushed=*/false, 0, ec);
  if (ec) return nullptr;
  if (has_id) {
    l->set_topic_id(topic_id, ec);
    if (ec) return nullptr;
  }
  // The new partition directory must survive a crash along with whatever is appended to it.
  if ((ec = sync_dir(root_))) return nullptr;
  log* raw = l.get();
  logs_.emplace(tp, std::move(l));
  return raw;
}

std::error_code log_manager::remove(const topic_partition& tp) {
  auto it = logs_.find(tp);
  if (it == logs_.end()) return {};
  std::filesystem::path doomed =
      root_ / (partition_dir_name(tp) + "." + random_hex(16) + std::string(deleted_dir_suffix));
  std::error_code fs_ec;
  // Renamed first: if that fails the partition stays, whole and served, rather than being
  // forgotten here and loaded again at the next start.
  std::filesystem::rename(it->second->dir(), doomed, fs_ec);
  if (fs_ec) return io_failure("cannot rename", it->second->dir(), fs_ec.value());
  // No close(): flushing and snapshotting files about to be deleted is wasted I/O. Destroying the
  // log releases its descriptors; slices already handed out keep theirs.
  logs_.erase(it);
  if (auto ec = sync_dir(root_)) return ec;
  std::filesystem::remove_all(doomed, fs_ec);
  if (fs_ec) return io_failure("cannot delete", doomed, fs_ec.value());
  return {};
}

std::vector<log*> log_manager::logs() {
  std::vector<log*> out;
  out.reserve(logs_.size());
  for (auto& [tp, l] : logs_)
    out.push_back(l.get());
  std::sort(out.begin(), out.end(), [](const log* a, const log* b) { return a->tp() < b->tp(); });
  return out;
}

size_t log_manager::enforce_retention(int64_t now_ms) {
  size_t deleted = 0;
  for (log* l : logs())
    deleted += l->enforce_retention(now_ms);
  return deleted;
}

void log_manager::remove_expired_producers(int64_t now_ms) {
  for (auto& [tp, l] : logs_)
    l->remove_expired_producers(now_ms);
}

std::error_code log_manager::checkpoint() {
  offset_map recovery_points;
  offset_map start_offsets;
  offset_map high_watermarks;
  for (auto& [tp, l] : logs_) {
    recovery_points[tp] = l->recovery_point();
    start_offsets[tp] = l->log_start_offset();
    high_watermarks[tp] = l->high_watermark();
  }
  // Each file is replaced atomically; the directory is synced once for the three renames.
  if (auto ec = replace_file(root_ / recovery_point_checkpoint_file,
                             format_offset_checkpoint(recovery_points), false)) {
    return ec;
  }
  if (auto ec = replace_file(root_ / log_start_offset_checkpoint_file,
                             format_offset_checkpoint(start_offsets), false)) {
    return ec;
  }
  if (auto ec = replace_file(root_ / high_watermark_checkpoint_file,
                             format_offset_checkpoint(high_watermarks), false)) {
    return ec;
  }
  return sync_dir(root_);
}

std::error_code log_manager::shutdown() {
  for (auto& [tp, l] : logs_)
    l->close();
  if (auto ec = checkpoint()) return ec;
  for (auto& [tp, l] : logs_) {
    if (l->recovery_point() != l->log_end_offset()) {
      // A log failed to flush: without the marker the next start recovers it.
      return errc::io_error;
    }
  }
  // Kafka 3.7+ content (KIP-966); older brokers wrote an empty file. Only its presence matters.
  return replace_file(root_ / clean_shutdown_file, R"({"version":"0","broker_epoch":"-1"})");
}

}  // namespace sluice::storage

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

// One checkpoint file as read at start.
struct read_checkpoint_result {
  std::optional<offset_map> offsets;  // nullopt: missing (or unreadable)
  bool malformed = false;
};

read_checkpoint_result read_checkpoint(file_system& fs, const std::filesystem::path& path) {
  std::string text;
  bool missing = false;
  if (read_small_file(fs, path, text, missing) || missing) return {};
  if (auto offsets = parse_offset_checkpoint(text)) return {std::move(offsets), false};
  return {std::nullopt, true};
}

constexpr std::string_view deleted_dir_suffix = "-delete";
constexpr const char* checkpoint_queue = "checkpoints";
// Creating and deleting partition directories, one at a time. Allocating and freeing inodes is
// kernel CPU work (ext4's inode allocator scans past recently deleted inodes: 1.8 ms of CPU per
// new partition after a few create/delete cycles), and eight disk threads doing it at once for a
// 1,000-partition topic took both cores from the threads serving clients. Kafka creates and
// deletes logs one at a time too. Per-directory order needs nothing more: a creation waits for
// the deletion of the same name (removing_), and the log's own jobs start after it exists.
constexpr const char* lifecycle_queue = "partition-lifecycle";

// Names a deleted partition's directory uniquely. A std::random_device per call costs the owner
// thread microseconds each (it is opened and probed every time), which adds up to a stall when a
// 1,000-partition topic is deleted; one seeded engine per thread is enough for uniqueness.
std::string random_hex(size_t bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  thread_local std::mt19937_64 engine{std::random_device{}()};
  std::string out;
  out.reserve(2 * bytes);
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<uint8_t>(engine());
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

}  // namespace

struct log_manager::checkpoint_files {
  std::string recovery_points;
  std::string start_offsets;
  std::string high_watermarks;
};

log_manager::log_manager(std::filesystem::path root, log_config defaults, log_env env)
    : root_(std::move(root)), defaults_(defaults), env_(env) {}

log_manager::~log_manager() = default;

std::error_code log_manager::load() {
  file_system& fs = env_.fs;
  std::error_code fs_ec;
  if (!std::filesystem::exists(root_, fs_ec)) {
    if (auto ec = fs.create_directories(root_)) return ec;
    // A new data directory must survive a power loss with whatever is written into it.
    if (auto ec = fs.sync_dir(std::filesystem::absolute(root_).parent_path())) return ec;
  }
  if (!std::filesystem::is_directory(root_, fs_ec)) {
    return io_failure("log directory is not a directory:", root_, ENOTDIR);
  }
  if (::access(root_.c_str(), W_OK | X_OK) != 0) {
    return io_failure("log directory is not writable:", root_, errno);
  }

  std::vector<dir_entry> entries;
  if (auto ec = fs.list(root_, entries)) return ec;
  bool clean = false;
  std::vector<std::pair<topic_partition, std::filesystem::path>> dirs;
  for (const dir_entry& entry : entries) {
    if (entry.name == clean_shutdown_file) clean = true;
    if (!entry.is_directory) continue;
    std::filesystem::path path = root_ / entry.name;
    if (std::string_view(entry.name).ends_with(deleted_dir_suffix)) {
      // A deletion that a crash interrupted, or whose removal had not finished.
      std::error_code ec = fs.remove_all(path);
      log_event("storage: deleted " + path.string() + (ec ? " in part: " + ec.message() : ""),
                log_level::info);
      continue;
    }
    std::optional<topic_partition> tp = parse_partition_dir_name(entry.name);
    if (!tp) {
      log_event("storage: ignoring directory " + path.string());
      continue;
    }
    dirs.emplace_back(std::move(*tp), path);
  }
  std::sort(dirs.begin(), dirs.end());

  read_checkpoint_result recovery_points =
      read_checkpoint(fs, root_ / recovery_point_checkpoint_file);
  read_checkpoint_result high_watermarks =
      read_checkpoint(fs, root_ / high_watermark_checkpoint_file);
  read_checkpoint_result start_offsets =
      read_checkpoint(fs, root_ / log_start_offset_checkpoint_file);
  if (recovery_points.malformed) {
    log_event("storage: ignoring malformed " + (root_ / recovery_point_checkpoint_file).string() +
              ": every log is recovered in full");
  }
  if (high_watermarks.malformed) {
    log_event("storage: ignoring malformed " + (root_ / high_watermark_checkpoint_file).string());
  }
  if (start_offsets.malformed && !dirs.empty()) {
    // Kafka falls back to each log's first segment here, which brings back every record that
    // retention or DeleteRecords had removed inside a segment. Nothing else records those starts.
    log_event("storage: " + (root_ / log_start_offset_checkpoint_file).string() +
              " is malformed: the log start offsets it holds cannot be recovered any other way, "
              "and starting from the first segments would serve records that were deleted. "
              "Refusing to start; restore the file, or delete it to accept each partition's "
              "first segment as its start");
    return errc::io_error;
  }

  for (auto& [tp, dir] : dirs) {
    load_state state;
    state.clean_shutdown = clean;
    if (recovery_points.offsets) {
      if (auto rp = recovery_points.offsets->find(tp); rp != recovery_points.offsets->end()) {
        state.recovery_point = rp->second;
      }
    }
    if (start_offsets.offsets) {
      if (auto start = start_offsets.offsets->find(tp); start != start_offsets.offsets->end()) {
        state.log_start_offset = start->second;
      }
    }
    std::error_code ec;
    std::unique_ptr<log> l = log::open(dir, tp, defaults_, env_, state, ec);
    if (ec) {
      log_event("storage: cannot load " + dir.string() + ": " + ec.message());
      return ec;
    }
    int64_t hw = l->log_start_offset();
    if (high_watermarks.offsets) {
      if (auto it = high_watermarks.offsets->find(tp); it != high_watermarks.offsets->end()) {
        hw = it->second;
      }
    }
    l->set_high_watermark(hw);
    logs_.emplace(tp, std::shared_ptr<log>(std::move(l)));
  }

  if (clean) {
    // Gone as soon as the logs are loaded: from here on a crash is not a clean shutdown.
    if (auto ec = fs.remove(root_ / clean_shutdown_file)) return ec;
    if (auto ec = fs.sync_dir(root_)) return ec;
  }
  return {};
}

log* log_manager::find(const topic_partition& tp) {
  auto it = logs_.find(tp);
  return it == logs_.end() ? nullptr : it->second.get();
}

std::shared_ptr<log> log_manager::find_shared(const topic_partition& tp) {
  auto it = logs_.find(tp);
  return it == logs_.end() ? nullptr : it->second;
}

std::vector<log*> log_manager::logs() {
  std::vector<log*> out;
  out.reserve(logs_.size());
  for (auto& [tp, l] : logs_)
    out.push_back(l.get());
  std::sort(out.begin(), out.end(), [](const log* a, const log* b) { return a->tp() < b->tp(); });
  return out;
}

namespace {

// The blocking part of creating a partition: what a disk job runs.
std::unique_ptr<log> open_new_log(const std::filesystem::path& root, const topic_partition& tp,
                                  const wire::uuid& topic_id, const log_config& cfg, log_env env,
                                  std::error_code& ec) {
  load_state fresh;
  fresh.clean_shutdown = true;
  fresh.recovery_point = 0;
  std::unique_ptr<log> l = log::open(root / partition_dir_name(tp), tp, cfg, env, fresh, ec);
  if (ec) return nullptr;
  if (topic_id != wire::uuid{}) {
    l->set_topic_id(topic_id, ec);
    if (ec) return nullptr;
  }
  // The new partition directory must survive a crash along with whatever is appended to it.
  if ((ec = env.fs.sync_dir(root))) return nullptr;
  return l;
}

}  // namespace

void log_manager::create_async(const topic_partition& tp, const wire::uuid& topic_id,
                               const log_config& cfg, log_callback done) {
  if (!is_valid_topic_name(tp.topic) || tp.partition < 0 || logs_.contains(tp) ||
      creating_.contains(tp)) {
    done(errc::invalid_topic_partition, nullptr);
    return;
  }
  if (auto it = removing_.find(tp); it != removing_.end()) {
    // The old directory's deletion is not durable yet: the new one must not race it.
    it->second.push_back([this, tp, topic_id, cfg, done = std::move(done)]() mutable {
      create_async(tp, topic_id, cfg, std::move(done));
    });
    return;
  }
  ++creating_[tp];
  struct result {
    std::error_code ec;
    std::unique_ptr<log> created;
  };
  auto r = std::make_shared<result>();
  env_.disk.submit_background(
      lifecycle_queue,
      [root = root_, tp, topic_id, cfg, env = env_, r] {
        r->created = open_new_log(root, tp, topic_id, cfg, env, r->ec);
      },
      [this, alive = std::weak_ptr<int>(alive_), tp, r, done = std::move(done)] {
        if (alive.expired()) return;
        creating_.erase(tp);
        if (r->ec) {
          done(r->ec, nullptr);
          return;
        }
        std::shared_ptr<log> l(std::move(r->created));
        logs_.emplace(tp, l);
        done({}, std::move(l));
      });
}

log* log_manager::create(const topic_partition& tp, const wire::uuid& topic_id,
                         std::error_code& ec) {
  return create(tp, topic_id, defaults_, ec);
}

log* log_manager::create(const topic_partition& tp, const wire::uuid& topic_id,
                         const log_config& cfg, std::error_code& ec) {
  ec.clear();
  if (log* existing = find(tp)) {
    if (topic_id != wire::uuid{}) existing->set_topic_id(topic_id, ec);
    return ec ? nullptr : existing;
  }
  if (!is_valid_topic_name(tp.topic) || tp.partition < 0) {
    ec = errc::invalid_topic_partition;
    return nullptr;
  }
  std::unique_ptr<log> l = open_new_log(root_, tp, topic_id, cfg, env_, ec);
  if (ec) return nullptr;
  log* raw = l.get();
  logs_.emplace(tp, std::shared_ptr<log>(std::move(l)));
  return raw;
}

void log_manager::remove_async(const topic_partition& tp, done_callback done) {
  auto it = logs_.find(tp);
  if (it == logs_.end()) {
    done({});
    return;
  }
  std::shared_ptr<log> doomed_log = std::move(it->second);
  logs_.erase(it);
  // No close(): flushing and snapshotting files about to be deleted is wasted I/O. Slices and
  // jobs already holding its descriptors keep them.
  doomed_log->mark_removed();
  removing_[tp];
  std::filesystem::path dir = doomed_log->dir();
  std::filesystem::path doomed =
      root_ / (partition_dir_name(tp) + "." + random_hex(16) + std::string(deleted_dir_suffix));
  auto r = std::make_shared<std::error_code>();
  // On the directory's own queue: after the log's last jobs, and before a partition of the same
  // name is created again.
  env_.disk.submit(
      dir.string(),
      [&fs = env_.fs, dir, doomed, root = root_, r] {
        if ((*r = fs.rename(dir, doomed))) return;
        *r = fs.sync_dir(root);
      },
      [this, alive = std::weak_ptr<int>(alive_), tp, doomed, r, done = std::move(done)]() mutable {
        if (alive.expired()) return;
        if (*r) {
          // The directory stays where it was: the next start loads it as a live partition.
          log_event("storage: cannot delete " + partition_dir_name(tp) + ": " + r->message());
        }
        // The checkpoints still name the partition, with its log start offset and recovery
        // point: after a crash those would apply to a partition created again under the same
        // name and cut its acknowledged data. Rewritten before such a partition may exist.
        checkpoint_async([this, alive, tp, doomed, r, done = std::move(done)](std::error_code cec) {
          if (alive.expired()) return;
          std::vector<std::function<void()>> waiting = std::move(removing_[tp]);
          removing_.erase(tp);
          if (!*r) {
            if (file_delete_delay_ms_ <= 0) {
              remove_dir_async(doomed);
            } else {
              deleted_dirs_.push_back({wall_clock_ms() + file_delete_delay_ms_, doomed});
            }
          }
          done(*r ? *r : cec);
          for (auto& fn : waiting)
            fn();
        });
      });
}

void log_manager::remove_dir_async(std::filesystem::path doomed) {
  env_.disk.submit_background(
      lifecycle_queue,
      [&fs = env_.fs, doomed] {
        if (std::error_code ec = fs.remove_all(doomed)) {
          log_event("storage: cannot remove " + doomed.string() +
                    " (the next start retries): " + ec.message());
        }
      },
      [] {});
}

size_t log_manager::remove_deleted_dirs(int64_t now_ms) {
  auto due = std::stable_partition(deleted_dirs_.begin(), deleted_dirs_.end(),
                                   [now_ms](const deleted_dir& d) { return d.due_ms > now_ms; });
  size_t started = 0;
  for (auto it = due; it != deleted_dirs_.end(); ++it, ++started)
    remove_dir_async(std::move(it->path));
  deleted_dirs_.erase(due, deleted_dirs_.end());
  return started;
}

std::error_code log_manager::remove(const topic_partition& tp) {
  auto it = logs_.find(tp);
  if (it == logs_.end()) return {};
  std::filesystem::path doomed =
      root_ / (partition_dir_name(tp) + "." + random_hex(16) + std::string(deleted_dir_suffix));
  // Renamed first: if that fails the partition stays, whole and served, rather than being
  // forgotten here and loaded again at the next start.
  if (auto ec = env_.fs.rename(it->second->dir(), doomed)) return ec;
  it->second->mark_removed();
  logs_.erase(it);
  if (auto ec = env_.fs.sync_dir(root_)) return ec;
  if (auto ec = checkpoint()) return ec;
  return env_.fs.remove_all(doomed);
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

void log_manager::flush_async(std::function<void()> done) {
  // One count for each log plus one for the loop itself, so `done` runs once, after the last.
  auto pending = std::make_shared<size_t>(logs_.size() + 1);
  auto finish = [pending, done = std::move(done)] {
    if (--*pending == 0 && done) done();
  };
  for (auto& [tp, l] : logs_)
    l->flush_async(finish);
  finish();
}

log_manager::checkpoint_files log_manager::checkpoint_contents() const {
  offset_map recovery_points;
  offset_map start_offsets;
  offset_map high_watermarks;
  for (const auto& [tp, l] : logs_) {
    recovery_points[tp] = l->recovery_point();
    start_offsets[tp] = l->log_start_offset();
    high_watermarks[tp] = l->high_watermark();
  }
  return {format_offset_checkpoint(recovery_points), format_offset_checkpoint(start_offsets),
          format_offset_checkpoint(high_watermarks)};
}

std::error_code log_manager::write_checkpoints(file_system& fs, const std::filesystem::path& root_,
                                               const checkpoint_files& files) {
  // Each file is replaced atomically; the directory is synced once for the three renames.
  if (auto ec =
          replace_file(fs, root_ / recovery_point_checkpoint_file, files.recovery_points, false)) {
    return ec;
  }
  if (auto ec =
          replace_file(fs, root_ / log_start_offset_checkpoint_file, files.start_offsets, false)) {
    return ec;
  }
  if (auto ec =
          replace_file(fs, root_ / high_watermark_checkpoint_file, files.high_watermarks, false)) {
    return ec;
  }
  return fs.sync_dir(root_);
}

void log_manager::checkpoint_async(done_callback done) {
  checkpoint_requested_ = true;
  if (done) checkpoint_waiters_.push_back(std::move(done));
  if (!checkpoint_running_) start_checkpoint();
}

void log_manager::start_checkpoint() {
  checkpoint_running_ = true;
  checkpoint_requested_ = false;
  auto waiters = std::make_shared<std::vector<done_callback>>(std::move(checkpoint_waiters_));
  checkpoint_waiters_.clear();
  auto files = std::make_shared<checkpoint_files>(checkpoint_contents());
  auto r = std::make_shared<std::error_code>();
  env_.disk.submit(
      checkpoint_queue,
      [&fs = env_.fs, root = root_, files, r] { *r = write_checkpoints(fs, root, *files); },
      [this, alive = std::weak_ptr<int>(alive_), waiters, r] {
        if (alive.expired()) return;
        checkpoint_running_ = false;
        if (checkpoint_requested_) start_checkpoint();
        for (auto& done : *waiters)
          done(*r);
      });
}

std::error_code log_manager::checkpoint() {
  return write_checkpoints(env_.fs, root_, checkpoint_contents());
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
  return replace_file(env_.fs, root_ / clean_shutdown_file,
                      R"({"version":"0","broker_epoch":"-1"})");
}

}  // namespace sluice::storage

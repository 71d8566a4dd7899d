// DescribeLogDirs (key 35), versions 0-4.
//
// One log directory (log.dirs), by its absolute path. topics null lists every partition; named
// topics and partitions this broker does not have are left out, as Kafka does. Each partition:
// its size on disk (every segment's .log), offset_lag 0 (no future replica is ever being moved),
// is_future_key false. v4 adds the directory's file system total and usable bytes (statvfs; -1 if
// that fails). A directory that cannot be read would be KAFKA_STORAGE_ERROR; with one directory
// that the broker writes to, it is always readable while the broker runs.

#include <sys/statvfs.h>

#include <algorithm>
#include <filesystem>

#include "server/handlers/handlers.h"
#include "server/topics.h"

namespace sluice::server {

wire::describe_log_dirs_response handle_describe_log_dirs(
    const broker_config& config, topic_registry& topics, request_context&,
    wire::describe_log_dirs_request& request) {
  wire::describe_log_dirs_response response;
  auto& dir = response.results.emplace_back();
  std::error_code ec;
  std::filesystem::path path = std::filesystem::absolute(config.log_dir, ec);
  dir.log_dir = (ec ? config.log_dir : path.lexically_normal()).string();
  struct statvfs fs {};
  if (::statvfs(dir.log_dir.c_str(), &fs) == 0) {
    dir.total_bytes = static_cast<int64_t>(fs.f_blocks) * static_cast<int64_t>(fs.f_frsize);
    dir.usable_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
  }

  auto describe = [](partition& p) {
    wire::describe_log_dirs_response::describe_log_dirs_partition out;
    out.partition_index = p.index();
    out.partition_size = p.log().size_bytes();
    out.offset_lag = 0;
    out.is_future_key = false;
    return out;
  };
  if (!request.topics) {
    for (const auto& [name, t] : topics.all()) {
      auto& topic_out = dir.topics.emplace_back();
      topic_out.name = name;
      for (const auto& p : t.partitions)
        topic_out.partitions.push_back(describe(*p));
    }
    return response;
  }
  for (const auto& requested : *request.topics) {
    topic* t = topics.find(requested.topic);
    if (t == nullptr) continue;
    wire::describe_log_dirs_response::describe_log_dirs_topic topic_out;
    topic_out.name = t->name;
    for (int32_t index : requested.partitions) {
      if (index < 0 || static_cast<size_t>(index) >= t->partitions.size()) continue;
      topic_out.partitions.push_back(describe(*t->partitions[static_cast<size_t>(index)]));
    }
    if (!topic_out.partitions.empty()) dir.topics.push_back(std::move(topic_out));
  }
  return response;
}

}  // namespace sluice::server

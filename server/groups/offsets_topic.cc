#include "server/groups/offsets_topic.h"

#include <boost/asio/post.hpp>

#include "server/logging.h"

namespace sluice::server {

namespace {

// Hands replayed groups to the coordinator, counting them for the log line.
class counting_loader final : public group_loader {
 public:
  explicit counting_loader(group_coordinator& c) : coordinator_(c) {}
  void load_group(std::string_view id, const group_metadata_record& r, int64_t ts) override {
    coordinator_.load_group(id, r, ts);
  }
  void load_offset(std::string_view id, const offset_record& r) override {
    coordinator_.load_offset(id, r);
    ++offsets;
  }
  size_t offsets = 0;

 private:
  group_coordinator& coordinator_;
};

std::string partition_name(int32_t index) {
  return std::string(consumer_offsets_topic) + "-" + std::to_string(index);
}

}  // namespace

offsets_topic::offsets_topic(boost::asio::any_io_executor executor, storage::disk_executor& disk)
    : executor_(std::move(executor)), disk_(disk) {}

offsets_topic::~offsets_topic() {
  *alive_ = false;
}

std::error_code offsets_topic::adopt(int32_t index, partition& p, replay_stats& stats) {
  if (coordinator_ == nullptr) return std::make_error_code(std::errc::invalid_argument);
  coordinator_->begin_loading(index);
  counting_loader loader(*coordinator_);
  if (std::error_code ec = replay_consumer_offsets(p.log(), loader, &stats)) return ec;
  coordinator_->finish_loading(index);
  led_[index] = led{std::make_shared<offsets_log>(p, executor_), p.leader_epoch(), 0};
  return {};
}

void offsets_topic::lead(int32_t index, std::shared_ptr<partition> p, int32_t leader_epoch) {
  if (auto it = led_.find(index); it != led_.end()) {
    if (it->second.leader_epoch == leader_epoch) return;
    resign(index);
  }
  auto writer = std::make_shared<offsets_log>(*p, executor_);
  if (replication_) writer->replicate_with(*replication_);
  const uint64_t load_id = next_load_id_++;
  led_[index] = led{std::move(writer), leader_epoch, load_id};
  if (coordinator_ != nullptr) coordinator_->begin_loading(index);
  log_info(partition_name(index), ": leader at epoch ", leader_epoch,
           ": loading its groups (COORDINATOR_LOAD_IN_PROGRESS until done)");
  const auto started = std::chrono::steady_clock::now();
  load_consumer_offsets_async(
      std::move(p), disk_,
      [this, alive = std::weak_ptr<bool>(alive_), index, load_id, started](
          std::error_code ec, loaded_consumer_offsets loaded) {
        if (!alive.lock()) return;
        auto it = led_.find(index);
        if (it == led_.end() || it->second.load_id != load_id || coordinator_ == nullptr) {
          return;  // resigned meanwhile
        }
        if (ec) {
          // Serving a partial state would answer members and commits wrongly; its groups keep
          // answering COORDINATOR_LOAD_IN_PROGRESS until leadership moves or the broker restarts.
          log_error(partition_name(index), ": cannot load its groups: ", ec.message(),
                    "; its groups stay unavailable");
          return;
        }
        counting_loader loader(*coordinator_);
        deliver(loaded.groups, loader);
        coordinator_->finish_loading(index);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - started)
                            .count();
        log_info(partition_name(index), ": loaded ", loaded.groups.size(), " groups and ",
                 loader.offsets, " committed offsets from ", loaded.stats.records, " records in ",
                 ms, " ms; coordinating them");
      });
}

void offsets_topic::resign(int32_t index) {
  if (led_.erase(index) == 0) return;
  const size_t unloaded = coordinator_ != nullptr ? coordinator_->unload(index) : 0;
  log_info(partition_name(index), ": no longer led here: ", unloaded,
           " groups unloaded (NOT_COORDINATOR)");
}

void offsets_topic::lead_exactly(
    const std::map<int32_t, std::pair<std::shared_ptr<partition>, int32_t>>& leading) {
  std::vector<int32_t> gone;
  for (const auto& [index, l] : led_) {
    auto it = leading.find(index);
    if (it == leading.end() || it->second.second != l.leader_epoch) gone.push_back(index);
  }
  for (int32_t index : gone)
    resign(index);
  for (const auto& [index, pe] : leading)
    lead(index, pe.first, pe.second);
}

std::shared_ptr<offsets_log> offsets_topic::writer_for(std::string_view group_id,
                                                       completion& done) {
  const int32_t index = coordinator_ != nullptr ? coordinator_->partition_for(group_id) : -1;
  auto it = led_.find(index);
  if (it != led_.end()) return it->second.writer;
  boost::asio::post(executor_,
                    [done = std::move(done)] { done(wire::error_code::not_coordinator); });
  return nullptr;
}

group_store::completion offsets_topic::keeping(std::shared_ptr<offsets_log> writer,
                                               completion done) {
  return [writer = std::move(writer), done = std::move(done)](wire::error_code e) { done(e); };
}

void offsets_topic::store_group(std::string_view group_id, const group_metadata_record& record,
                                completion done) {
  if (auto w = writer_for(group_id, done))
    w->store_group(group_id, record, keeping(w, std::move(done)));
}

void offsets_topic::store_offsets(std::string_view group_id, std::span<const offset_record> offsets,
                                  completion done) {
  if (auto w = writer_for(group_id, done)) {
    w->store_offsets(group_id, offsets, keeping(w, std::move(done)));
  }
}

void offsets_topic::remove_offsets(std::string_view group_id,
                                   std::span<const topic_partition> partitions, completion done) {
  if (auto w = writer_for(group_id, done)) {
    w->remove_offsets(group_id, partitions, keeping(w, std::move(done)));
  }
}

void offsets_topic::remove_group(std::string_view group_id,
                                 std::span<const topic_partition> partitions, completion done) {
  if (auto w = writer_for(group_id, done)) {
    w->remove_group(group_id, partitions, keeping(w, std::move(done)));
  }
}

}  // namespace sluice::server

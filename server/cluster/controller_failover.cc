// The controller's answer to brokers that go and come back (KRaft's handling of fenced and
// unfenced brokers): see controller.h, "Failover".
#include <algorithm>
#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "server/cluster/controller.h"
#include "server/cluster/controller_internal.h"
#include "server/logging.h"

namespace sluice::server::cluster {

namespace asio = boost::asio;
using internal::format_ids;
using wire::error_code;

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

constexpr int64_t failover_retry_backoff_ms = 1000;

// At most this many partitions are named in one log line; the rest are counted.
constexpr size_t named_in_log = 10;

std::string format_partitions(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < named_in_log; ++i) {
    if (i) out += ", ";
    out += names[i];
  }
  if (names.size() > named_in_log) {
    out += " and " + std::to_string(names.size() - named_in_log) + " more";
  }
  return out;
}

}  // namespace

std::optional<partition_record> controller::failover_state(const partition_record& now,
                                                           const std::vector<int32_t>& replicas,
                                                           bool unclean, bool& unclean_elected,
                                                           bool& offline) const {
  const metadata_image& image = member_.image();
  unclean_elected = false;
  offline = false;
  std::vector<int32_t> live_isr;
  for (int32_t id : now.isr) {
    if (image.broker(id) != nullptr) live_isr.push_back(id);
  }
  const bool leader_gone = now.leader < 0 || image.broker(now.leader) == nullptr;
  partition_record next = now;
  if (!leader_gone) {
    // Its leader would otherwise wait replica.lag.time.max.ms for it before acks=all moves on.
    if (live_isr.size() == now.isr.size() || live_isr.empty()) return std::nullopt;
    next.isr = std::move(live_isr);
    return next;
  }
  // Replica order, so that the preferred replica leads again when it can: every ISR member has
  // every record acknowledged with acks=all, so any of them may lead without losing one.
  for (int32_t candidate : replicas) {
    if (contains(now.isr, candidate) && eligible_leader(candidate)) {
      next.leader = candidate;
      next.leader_epoch = now.leader_epoch + 1;
      next.isr = std::move(live_isr);
      return next;
    }
  }
  if (unclean) {
    for (int32_t candidate : replicas) {
      if (!eligible_leader(candidate)) continue;
      next.leader = candidate;
      next.leader_epoch = now.leader_epoch + 1;
      next.isr = {candidate};
      unclean_elected = true;
      return next;
    }
  }
  offline = true;
  if (now.leader < 0) return std::nullopt;  // already offline
  // No leader until an ISR member is back. The ISR keeps its last live members, or all of its
  // members when none lives, so that whichever of them returns first may lead: each has every
  // acknowledged record (KRaft keeps the last ISR member for the same reason).
  next.leader = -1;
  next.leader_epoch = now.leader_epoch + 1;
  if (!live_isr.empty()) next.isr = std::move(live_isr);
  return next;
}

asio::awaitable<size_t> controller::fail_over() {
  std::weak_ptr<bool> alive = alive_;
  queue::turn my_turn = co_await queue::take(queue_);
  if (alive.expired()) co_return 0;
  if (failure f = co_await ready()) co_return 1;
  if (alive.expired()) co_return 0;
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();

  std::vector<partition_change> changes;
  std::vector<std::string> offline;
  std::vector<std::string> unclean;
  for (const auto& [id, rec] : image.topics()) {
    if (image.topic_id(rec.name) != id) continue;
    const bool unclean_ok = unclean_allowed(rec);
    for (const auto& [p, state] : image.partitions(id)) {
      if (p < 0 || static_cast<size_t>(p) >= rec.replicas.size()) continue;
      bool unclean_elected = false;
      bool is_offline = false;
      std::optional<partition_record> next =
          failover_state(state->record, rec.replicas[static_cast<size_t>(p)], unclean_ok,
                         unclean_elected, is_offline);
      const std::string where = rec.name + "-" + std::to_string(p);
      if (is_offline) offline.push_back(where);
      if (!next) continue;
      if (unclean_elected) {
        unclean.push_back(where);
        log_warn("controller (epoch ", epoch, "): ", where, ": unclean election of broker ",
                 next->leader, " (no in-sync replica of ", format_ids(state->record.isr),
                 " is alive; unclean.leader.election.enable): records acknowledged by the "
                 "others may be lost");
      }
      changes.push_back({id, p, where, std::move(*next), state->partition_epoch});
    }
  }
  if (!offline.empty()) {
    log_warn("controller (epoch ", epoch, "): ", offline.size(),
             " partition(s) have no live in-sync replica and stay offline until one returns "
             "(unclean.leader.election.enable is false): ",
             format_partitions(offline));
  }
  if (changes.empty()) co_return 0;
  log_info("controller (epoch ", epoch, "): registered brokers changed: ", changes.size(),
           " partition(s) get a new leader or lose dead replicas from their ISR");
  int64_t revision = 0;
  std::vector<error_code> written = co_await write_partition_changes(changes, epoch, revision);
  if (alive.expired()) co_return 0;
  co_return static_cast<size_t>(std::count_if(written.begin(), written.end(),
                                              [](error_code e) { return e != error_code::none; }));
}

void controller::watch_brokers() {
  if (!executor_) return;
  if (!member_.is_controller()) {
    failover_seen_.reset();
    return;
  }
  // What a pass decides from besides the partitions themselves: the controller epoch, the
  // registered brokers, and the topics' unclean.leader.election.enable (turned on, it may elect a
  // leader for a partition that is offline now).
  std::string seen = "controller " + std::to_string(member_.controller_epoch());
  for (const auto& [id, b] : member_.image().brokers()) {
    seen += "; broker " + std::to_string(id) + " " + std::to_string(b.epoch) +
            (b.record.controlled_shutdown ? " stopping" : "");
  }
  for (const auto& [id, rec] : member_.image().topics()) {
    if (rec.configs.contains("unclean.leader.election.enable")) {
      seen += "; unclean " + rec.name + " " + rec.configs.at("unclean.leader.election.enable");
    }
  }
  if (failover_seen_ == seen) return;
  failover_seen_ = std::move(seen);
  if (failover_running_) {
    failover_again_ = true;
    return;
  }
  failover_running_ = true;
  asio::co_spawn(
      executor_,
      [this, alive = std::weak_ptr<bool>(alive_)]() -> asio::awaitable<void> {
        size_t failed = 0;
        do {
          failover_again_ = false;
          failed = co_await fail_over();
          if (alive.expired()) co_return;
        } while (failover_again_);
        failover_running_ = false;
        if (failed == 0) co_return;
        // A write lost to a concurrent change, or a store that did not answer: look again soon,
        // whether or not the brokers change meanwhile.
        if (!failover_retry_timer_) {
          failover_retry_timer_ = std::make_shared<asio::steady_timer>(executor_);
        }
        std::shared_ptr<asio::steady_timer> timer = failover_retry_timer_;
        timer->expires_after(std::chrono::milliseconds(failover_retry_backoff_ms));
        auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || alive.expired()) co_return;  // cancelled: stop() or the destructor
        failover_seen_.reset();
        watch_brokers();
      },
      asio::detached);
}

}  // namespace sluice::server::cluster

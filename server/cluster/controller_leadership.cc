// The controller's leadership operations: ElectLeaders, controlled shutdown and the automatic
// return of leadership to preferred replicas. See controller.h for the rules.
#include <algorithm>
#include <chrono>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "server/cluster/controller.h"
#include "server/cluster/controller_internal.h"
#include "server/logging.h"

namespace sluice::server::cluster {

namespace asio = boost::asio;
using coordination::compare;
using coordination::compare_op;
using coordination::key_value;
using coordination::operation;
using internal::format_ids;
using internal::not_controller_message;
using internal::stopped;
using wire::error_code;

namespace {

bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::vector<int32_t> without(std::vector<int32_t> ids, int32_t id) {
  std::erase(ids, id);
  return ids;
}

const char* election_name(election_type type) {
  return type == election_type::preferred ? "preferred" : "unclean";
}

}  // namespace

bool controller::eligible_leader(int32_t broker_id) const {
  const live_broker* b = member_.image().broker(broker_id);
  return b != nullptr && !b->record.controlled_shutdown;
}

asio::awaitable<std::vector<error_code>> controller::write_partition_changes(
    const std::vector<partition_change>& changes, int64_t epoch, int64_t& revision) {
  std::weak_ptr<bool> alive = alive_;
  std::vector<error_code> out(changes.size(), error_code::none);
  const size_t per_txn = static_cast<size_t>(std::max<int32_t>(1, config_.max_txn_ops - 1));

  // Writes changes[first, last) in one transaction; `retry_alone` splits a lost compare.
  for (size_t first = 0; first < changes.size(); first += per_txn) {
    const size_t last = std::min(changes.size(), first + per_txn);
    std::vector<std::pair<size_t, size_t>> pending{{first, last}};
    while (!pending.empty()) {
      const auto [from, to] = pending.back();
      pending.pop_back();
      coordination::txn_request txn;
      std::vector<std::string> encoded;
      for (size_t i = from; i < to; ++i) {
        const partition_change& c = changes[i];
        const std::string key = keys::partition(prefix(), c.topic_id, c.partition);
        encoded.push_back(encode(c.record));
        txn.compares.push_back(compare::mod_revision(key, compare_op::equal, c.based_on));
        txn.success.push_back(operation::put(key, encoded.back()));
      }
      // The transaction is atomic: its first key tells whether all of it applied.
      const std::string confirm_key =
          keys::partition(prefix(), changes[from].topic_id, changes[from].partition);
      const std::string& confirm_value = encoded.front();
      const int64_t based_on = changes[from].based_on;
      confirmation written = [&confirm_value, based_on](const key_value* kv) {
        return kv != nullptr && kv->value == confirm_value && kv->mod_revision > based_on;
      };
      write_outcome w = co_await write(std::move(txn), epoch, confirm_key, std::move(written));
      if (alive.expired()) {
        std::fill(out.begin(), out.end(), error_code::not_controller);
        co_return out;
      }
      error_code ec = error_code::none;
      switch (w.status) {
        case write_status::applied:
          revision = std::max(revision, w.revision);
          for (size_t i = from; i < to; ++i) {
            log_info("controller (epoch ", epoch, "): ", changes[i].where, " now led by ",
                     changes[i].record.leader, " in leader epoch ", changes[i].record.leader_epoch,
                     " with ISR ", format_ids(changes[i].record.isr));
          }
          continue;
        case write_status::conflict:
          if (to - from > 1) {
            for (size_t i = from; i < to; ++i)
              pending.emplace_back(i, i + 1);
            continue;
          }
          // The image this was decided from was behind the store: the caller may ask again.
          ec = error_code::request_timed_out;
          log_info("controller (epoch ", epoch, "): ", changes[from].where,
                   " changed before its new state was written");
          break;
        case write_status::not_controller:
          ec = error_code::not_controller;
          break;
        case write_status::timed_out:
          ec = error_code::request_timed_out;
          break;
        case write_status::failed:
          ec = error_code::unknown_server_error;
          break;
      }
      for (size_t i = from; i < to; ++i)
        out[i] = ec;
    }
  }
  co_return out;
}

asio::awaitable<elect_leaders_result> controller::elect_leaders(elect_leaders_request request) {
  std::weak_ptr<bool> alive = alive_;
  elect_leaders_result result;
  std::shared_ptr<void> my_turn = co_await take_turn(result);
  if (!my_turn) co_return result;
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();
  const bool every_partition = !request.partitions.has_value();

  // What to elect: the named partitions, or every partition of every topic.
  std::vector<std::pair<std::string, int32_t>> wanted;
  if (every_partition) {
    for (const auto& [id, rec] : image.topics()) {
      if (image.topic_id(rec.name) != id) continue;
      for (size_t p = 0; p < rec.replicas.size(); ++p)
        wanted.emplace_back(rec.name, static_cast<int32_t>(p));
    }
  } else {
    for (const auto& [name, partitions] : *request.partitions) {
      for (int32_t p : partitions)
        wanted.emplace_back(name, p);
    }
  }

  std::vector<partition_change> changes;
  std::vector<size_t> change_of;  // index into result.partitions
  for (const auto& [name, p] : wanted) {
    election_result r{name, p, error_code::none, {}};
    const std::optional<wire::uuid> id = image.topic_id(name);
    const topic_record* topic = id ? image.topic(*id) : nullptr;
    const partition_state* state = id ? image.partition(*id, p) : nullptr;
    if (topic == nullptr) {
      r.error = error_code::unknown_topic_or_partition;
      r.message = "No such topic as " + name;
    } else if (state == nullptr || p < 0 || static_cast<size_t>(p) >= topic->replicas.size()) {
      r.error = error_code::unknown_topic_or_partition;
      r.message = "No such partition as " + name + "-" + std::to_string(p);
    } else {
      const std::vector<int32_t>& replicas = topic->replicas[static_cast<size_t>(p)];
      const partition_record& now = state->record;
      partition_record next = now;
      bool elected = false;
      if (request.type == election_type::preferred) {
        const int32_t preferred = replicas.empty() ? -1 : replicas.front();
        if (now.leader == preferred) {
          r.error = error_code::election_not_needed;
        } else if (contains(now.isr, preferred) && eligible_leader(preferred)) {
          next.leader = preferred;
          elected = true;
        } else {
          r.error = error_code::preferred_leader_not_available;
          r.message = "Preferred replica " + std::to_string(preferred) + " of " + name + "-" +
                      std::to_string(p) + " is " +
                      (contains(now.isr, preferred) ? "not eligible to lead"
                                                    : "not in the ISR " + format_ids(now.isr));
        }
      } else if (now.leader >= 0 && eligible_leader(now.leader)) {
        r.error = error_code::election_not_needed;
      } else {
        for (int32_t candidate : replicas) {
          if (contains(now.isr, candidate) && eligible_leader(candidate)) {
            next.leader = candidate;
            elected = true;
            break;
          }
        }
        if (elected) {
          // The gone leader cannot stay in the ISR it no longer leads.
          if (now.isr.size() > 1) next.isr = without(now.isr, now.leader);
        } else {
          for (int32_t candidate : replicas) {
            if (eligible_leader(candidate)) {
              next.leader = candidate;
              next.isr = {candidate};
              elected = true;
              log_warn("controller (epoch ", epoch, "): unclean leader election for ", name, "-", p,
                       ": replica ", candidate, " leads with ISR [", candidate,
                       "]; records the ISR ", format_ids(now.isr), " had beyond its log are lost");
              break;
            }
          }
          if (!elected) {
            r.error = error_code::eligible_leaders_not_available;
            r.message = "No replica of " + name + "-" + std::to_string(p) + " " +
                        format_ids(replicas) + " is eligible to lead";
          }
        }
      }
      if (elected) {
        next.leader_epoch = now.leader_epoch + 1;
        change_of.push_back(result.partitions.size());
        changes.push_back(
            {*id, p, name + "-" + std::to_string(p), std::move(next), state->partition_epoch});
      }
    }
    if (every_partition && r.error == error_code::election_not_needed) continue;
    result.partitions.push_back(std::move(r));
  }
  if (!changes.empty()) {
    log_info("controller (epoch ", epoch, "): ", election_name(request.type),
             " leader election for ", changes.size(), " partition(s)");
    std::vector<error_code> written =
        co_await write_partition_changes(changes, epoch, result.revision);
    if (alive.expired()) co_return stopped(std::move(result));
    for (size_t i = 0; i < changes.size(); ++i) {
      election_result& r = result.partitions[change_of[i]];
      r.error = written[i];
      if (written[i] != error_code::none) {
        r.message =
            "The election could not be written: " + std::string(wire::error_name(written[i]));
      }
    }
  }
  co_return result;
}

asio::awaitable<controlled_shutdown_result> controller::controlled_shutdown(
    controlled_shutdown_request request) {
  std::weak_ptr<bool> alive = alive_;
  controlled_shutdown_result result;
  std::shared_ptr<void> my_turn = co_await take_turn(result);
  if (!my_turn) co_return result;
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();
  const int32_t leaving = request.broker_id;
  const live_broker* broker = image.broker(leaving);
  if (broker == nullptr || broker->epoch != request.broker_epoch) {
    result.error = error_code::stale_broker_epoch;
    result.message = broker == nullptr ? "Broker " + std::to_string(leaving) + " is not registered"
                                       : "Expected broker epoch " + std::to_string(broker->epoch) +
                                             ", got " + std::to_string(request.broker_epoch);
    co_return result;
  }

  std::vector<partition_change> changes;
  std::vector<bool> hands_over;  // per change: the leadership moves (else only the ISR shrinks)
  std::vector<std::string> topic_of;
  std::vector<std::pair<std::string, int32_t>> stuck;
  for (const auto& [id, rec] : image.topics()) {
    if (image.topic_id(rec.name) != id) continue;
    for (const auto& [p, state] : image.partitions(id)) {
      if (p < 0 || static_cast<size_t>(p) >= rec.replicas.size()) continue;
      const std::vector<int32_t>& replicas = rec.replicas[static_cast<size_t>(p)];
      const partition_record& now = state->record;
      const std::string where = rec.name + "-" + std::to_string(p);
      partition_record next = now;
      if (now.leader == leaving) {
        if (replicas.size() <= 1) continue;
        int32_t successor = -1;
        for (int32_t candidate : replicas) {
          if (candidate != leaving && contains(now.isr, candidate) && eligible_leader(candidate)) {
            successor = candidate;
            break;
          }
        }
        if (successor < 0) {
          stuck.emplace_back(rec.name, p);
          continue;
        }
        next.leader = successor;
        next.leader_epoch = now.leader_epoch + 1;
        next.isr = without(now.isr, leaving);
      } else if (contains(now.isr, leaving) && now.isr.size() > 1) {
        // Its leader would otherwise wait replica.lag.time.max.ms before acks=all moves on.
        next.isr = without(now.isr, leaving);
      } else {
        continue;
      }
      hands_over.push_back(now.leader == leaving);
      topic_of.push_back(rec.name);
      changes.push_back({id, p, where, std::move(next), state->partition_epoch});
    }
  }
  log_info("controller (epoch ", epoch, "): controlled shutdown of broker ", leaving, ": ",
           changes.size(), " partition(s) change, ", stuck.size(),
           " led by it have no other eligible in-sync replica");
  std::vector<error_code> written =
      co_await write_partition_changes(changes, epoch, result.revision);
  if (alive.expired()) co_return stopped(std::move(result));
  for (size_t i = 0; i < changes.size(); ++i) {
    if (written[i] == error_code::none) continue;
    // A leadership that could not be handed over is still the broker's.
    if (hands_over[i]) stuck.emplace_back(topic_of[i], changes[i].partition);
    if (written[i] == error_code::not_controller) result.error = error_code::not_controller;
  }
  result.remaining = std::move(stuck);
  co_return result;
}

asio::awaitable<size_t> controller::rebalance_leaders() {
  std::weak_ptr<bool> alive = alive_;
  queue::turn my_turn = co_await queue::take(queue_);
  if (alive.expired()) co_return 0;
  if (failure f = co_await ready()) co_return 0;
  if (alive.expired()) co_return 0;
  const int64_t epoch = member_.controller_epoch();
  const metadata_image& image = member_.image();

  struct preferred_share {
    size_t preferred = 0;
    std::vector<partition_change> not_led;  // elections that would give it back
    size_t not_led_count = 0;
  };
  std::map<int32_t, preferred_share> shares;
  for (const auto& [id, rec] : image.topics()) {
    if (image.topic_id(rec.name) != id) continue;
    for (const auto& [p, state] : image.partitions(id)) {
      if (p < 0 || static_cast<size_t>(p) >= rec.replicas.size()) continue;
      const std::vector<int32_t>& replicas = rec.replicas[static_cast<size_t>(p)];
      if (replicas.empty()) continue;
      const int32_t preferred = replicas.front();
      preferred_share& share = shares[preferred];
      ++share.preferred;
      const partition_record& now = state->record;
      if (now.leader == preferred) continue;
      ++share.not_led_count;
      if (!contains(now.isr, preferred) || !eligible_leader(preferred)) continue;
      partition_record next = now;
      next.leader = preferred;
      next.leader_epoch = now.leader_epoch + 1;
      share.not_led.push_back(
          {id, p, rec.name + "-" + std::to_string(p), std::move(next), state->partition_epoch});
    }
  }
  std::vector<partition_change> changes;
  for (auto& [broker_id, share] : shares) {
    if (share.not_led.empty() || !eligible_leader(broker_id)) continue;
    const double ratio =
        static_cast<double>(share.not_led_count) / static_cast<double>(share.preferred);
    if (ratio * 100.0 <= config_.leader_imbalance_per_broker_percentage) continue;
    log_info("controller (epoch ", epoch, "): broker ", broker_id, " leads ",
             share.preferred - share.not_led_count, " of the ", share.preferred,
             " partitions it is preferred for; moving ", share.not_led.size(), " back to it");
    for (auto& c : share.not_led)
      changes.push_back(std::move(c));
  }
  if (changes.empty()) co_return 0;
  int64_t revision = 0;
  std::vector<error_code> written = co_await write_partition_changes(changes, epoch, revision);
  co_return static_cast<size_t>(std::count(written.begin(), written.end(), error_code::none));
}

void controller::stop() {
  if (rebalance_timer_) rebalance_timer_->cancel();
  if (failover_retry_timer_) failover_retry_timer_->cancel();
  internal_topics_watch_.cancel();
  brokers_watch_.cancel();
}

void controller::maybe_create_offsets_topic() {
  if (!executor_ || !member_.is_controller() || creating_offsets_topic_ ||
      config_.offsets_topic_num_partitions <= 0) {
    return;
  }
  const std::string name = "__consumer_offsets";
  if (member_.image().topic_id(name)) return;
  const size_t usable = live_brokers().size();
  const auto needed = static_cast<size_t>(config_.offsets_topic_replication_factor);
  if (usable < needed) {
    if (offsets_topic_waits_logged_for_ != usable) {
      offsets_topic_waits_logged_for_ = usable;
      log_info("controller: ", name, " waits for ", needed,
               " registered brokers (offsets.topic.replication.factor), ", usable,
               " now; groups answer COORDINATOR_NOT_AVAILABLE until then");
    }
    return;
  }
  creating_offsets_topic_ = true;
  asio::co_spawn(
      executor_,
      [this, alive = std::weak_ptr<bool>(alive_), name]() -> asio::awaitable<void> {
        std::vector<create_topic_request> asks(1);
        asks[0].name = name;
        asks[0].num_partitions = config_.offsets_topic_num_partitions;
        asks[0].replication_factor = config_.offsets_topic_replication_factor;
        asks[0].configs["segment.bytes"] = std::to_string(config_.offsets_topic_segment_bytes);
        std::vector<create_topic_result> results = co_await create_topics(std::move(asks));
        if (alive.expired()) co_return;
        creating_offsets_topic_ = false;
        const error_code e = results.empty() ? error_code::unknown_server_error : results[0].error;
        if (e == error_code::none) {
          log_info("controller: created ", name, " with ", results[0].num_partitions,
                   " partitions of ", results[0].replication_factor, " replicas");
        } else if (e != error_code::topic_already_exists && e != error_code::not_controller) {
          log_warn("controller: cannot create ", name, ": ", wire::error_name(e), " ",
                   results[0].message, "; trying again at the next change");
        }
      },
      asio::detached);
}

void controller::start(asio::any_io_executor executor) {
  executor_ = executor;
  if (!internal_topics_watch_) {
    internal_topics_watch_ = member_.on_change([this] { maybe_create_offsets_topic(); });
  }
  maybe_create_offsets_topic();
  if (!brokers_watch_) brokers_watch_ = member_.on_change([this] { watch_brokers(); });
  watch_brokers();
  if (!config_.auto_leader_rebalance || rebalance_timer_) return;
  rebalance_timer_ = std::make_shared<asio::steady_timer>(executor);
  asio::co_spawn(
      executor,
      [this, alive = std::weak_ptr<bool>(alive_),
       timer = rebalance_timer_]() -> asio::awaitable<void> {
        for (;;) {
          timer->expires_after(
              std::chrono::milliseconds(config_.leader_imbalance_check_interval_ms));
          auto [ec] = co_await timer->async_wait(asio::as_tuple(asio::use_awaitable));
          if (ec || alive.expired()) co_return;  // cancelled: stop() or the destructor
          if (!member_.is_controller()) continue;
          co_await rebalance_leaders();
          if (alive.expired()) co_return;
        }
      },
      asio::detached);
}

}  // namespace sluice::server::cluster

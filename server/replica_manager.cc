#include "server/replica_manager.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "server/completion_latch.h"
#include "server/logging.h"
#include "server/topic_config.h"
#include "server/topics.h"
#include "storage/checkpoint.h"
#include "storage/errc.h"

namespace sluice::server {

namespace asio = boost::asio;

namespace {

int64_t steady_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string list(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.append(std::to_string(ids[i]));
  }
  out.push_back(']');
  return out;
}

bool contains(const std::vector<int32_t>& ids, int32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

replica_manager::replica_manager(asio::any_io_executor executor, timer_service& timers,
                                 const broker_config& config, topic_registry& topics,
                                 cluster::cluster_member& member, isr_change_sender send_isr_change)
    : executor_(std::move(executor)),
      timers_(timers),
      config_(config),
      topics_(topics),
      member_(member),
      send_isr_change_(std::move(send_isr_change)),
      local_id_(config.node_id) {}

replica_manager::~replica_manager() {
  *alive_ = false;
  stop();
}

void replica_manager::start() {
  watching_ = member_.on_change([this] { reconcile(); });
  reconcile();
  check_isr();
}

void replica_manager::stop() {
  stopped_ = true;
  watching_.cancel();
  isr_timer_.cancel();
  retry_timer_.cancel();
  for (auto& [leader, f] : fetchers_)
    f->stop();
  fetchers_.clear();
  following_.clear();
}

std::map<int32_t, size_t> replica_manager::fetcher_partitions() const {
  std::map<int32_t, size_t> out;
  for (const auto& [leader, f] : fetchers_)
    out[leader] = f->partition_count();
  return out;
}

std::shared_ptr<partition> replica_manager::find(cluster::topic_partition_id tp) {
  const cluster::topic_record* rec = member_.image().topic(tp.topic_id);
  if (rec == nullptr) return nullptr;
  topic* t = topics_.find(rec->name);
  if (t == nullptr || t->id != tp.topic_id) return nullptr;
  partition* p = t->find_partition(tp.partition);
  return p == nullptr ? nullptr : p->shared_from_this();
}

void replica_manager::reconcile() {
  if (stopped_) return;
  const cluster::metadata_image& image = member_.image();
  const bool registered = member_.broker_epoch() != 0;
  if (registered != registered_) {
    registered_ = registered;
    if (registered) {
      log_info("broker ", local_id_, ": registered again (broker epoch ", member_.broker_epoch(),
               "): the partitions it leads acknowledge acks=all again");
    } else {
      log_warn("broker ", local_id_,
               ": its lease may have expired: the partitions it leads "
               "answer acks=all NOT_LEADER_OR_FOLLOWER until it registers again");
    }
  }

  // Strays first: a local topic the cluster no longer has under that id. Collected before any
  // is removed: removal takes the topic out of the registry being walked.
  std::vector<std::pair<std::string, const char*>> strays;
  for (const auto& [name, t] : topics_.all()) {
    if (removing_.contains(name)) continue;
    std::optional<wire::uuid> id = image.topic_id(name);
    if (id && *id == t.id) continue;
    // A topic being created is written name last: its id is there before its name.
    if (!id && image.topic(t.id) != nullptr) continue;
    strays.emplace_back(
        name, id ? "the cluster has another topic of that name" : "the cluster has no such topic");
  }
  for (const auto& [name, why] : strays) {
    if (topic* t = topics_.find(name)) remove_stray(*t, why);
  }

  // Replicas the cluster no longer assigns here (a reassignment moved them): they stop and their
  // logs go, as with Kafka's StopReplica with deletion. Their fetching ends below, with the other
  // partitions no longer followed.
  std::vector<std::pair<std::string, std::vector<int32_t>>> unassigned;
  for (const auto& [name, t] : topics_.all()) {
    if (removing_.contains(name) || image.topic_id(name) != t.id) continue;
    const cluster::topic_record& rec = *image.topic(t.id);
    std::vector<int32_t> gone;
    for (const auto& p : t.partitions) {
      const auto i = static_cast<size_t>(p->index());
      if (i >= rec.replicas.size() || !contains(rec.replicas[i], local_id_)) {
        gone.push_back(p->index());
      }
    }
    if (!gone.empty()) unassigned.emplace_back(name, std::move(gone));
  }
  for (const auto& [name, indexes] : unassigned) {
    if (topic* t = topics_.find(name)) remove_replicas(*t, indexes);
  }

  std::map<int32_t, std::vector<cluster::partition_to_fetch>> to_fetch;
  std::set<cluster::topic_partition_id> followed_now;
  for (const auto& [id, rec] : image.topics()) {
    if (image.topic_id(rec.name) != id || removing_.contains(rec.name)) continue;
    topic* t = topics_.find(rec.name);
    if (t != nullptr && t->id != id) continue;  // a stray on its way out
    std::vector<int32_t> missing;
    for (size_t i = 0; i < rec.replicas.size(); ++i) {
      const auto index = static_cast<int32_t>(i);
      if (!contains(rec.replicas[i], local_id_)) continue;
      const cluster::topic_partition_id tp{id, index};
      partition* p = t == nullptr ? nullptr : t->find_partition(index);
      if (p == nullptr) {
        if (!creating_.contains(tp)) missing.push_back(index);
        continue;
      }
      if (truncating_.contains(tp)) {
        // Its log is being cut: the replica neither leads nor follows another leader from a
        // log whose end is not known yet. truncate() reconciles again when the cut is done.
        role_deferred_ = true;
      } else if (const cluster::partition_state* state = image.partition(id, index)) {
        apply_role(*t, *p, rec.replicas[i], *state, to_fetch);
      }
      if (following_.contains(tp)) followed_now.insert(tp);
    }
    if (missing.empty()) continue;
    for (int32_t index : missing)
      creating_.insert({id, index});
    topic_overrides configs(rec.configs.begin(), rec.configs.end());
    topics_.add_replicas_async(
        rec.name, id, configs, missing,
        [this, alive = std::weak_ptr<bool>(alive_), id, missing,
         name = rec.name](wire::error_code ec) {
          if (!alive.lock()) return;
          for (int32_t index : missing)
            creating_.erase({id, index});
          if (ec != wire::error_code::none) {
            log_error("topic ", name, ": cannot create its replicas ", list(missing), ": ",
                      wire::error_name(ec), "; trying again at the next change");
            return;
          }
          log_info("topic ", name, ": created replicas ", list(missing), " on broker ", local_id_);
          reconcile();
        });
  }

  // Partitions no longer followed (deleted, moved, led here now): out of their fetchers.
  for (auto it = following_.begin(); it != following_.end();) {
    if (followed_now.contains(it->first)) {
      ++it;
      continue;
    }
    if (auto f = fetchers_.find(it->second.leader); f != fetchers_.end()) {
      f->second->remove_partitions({it->first});
    }
    it = following_.erase(it);
  }
  for (auto& [leader, parts] : to_fetch)
    fetcher_for(leader).add_partitions(std::move(parts));
  for (auto it = fetchers_.begin(); it != fetchers_.end();) {
    if (it->second->partition_count() > 0) {
      ++it;
      continue;
    }
    log_info("broker ", local_id_, ": stopping the fetcher from broker ", it->first,
             ": no partition left to follow");
    it->second->stop();
    it = fetchers_.erase(it);
  }
  if (on_reconciled_) on_reconciled_();
}

void replica_manager::apply_role(
    topic& t, partition& p, const std::vector<int32_t>& replicas,
    const cluster::partition_state& state,
    std::map<int32_t, std::vector<cluster::partition_to_fetch>>& to_fetch) {
  const cluster::partition_record& r = state.record;
  const cluster::topic_partition_id tp{t.id, p.index()};
  if (r.leader == local_id_) {
    const bool news = !p.is_leader() || p.leader_epoch() != r.leader_epoch;
    p.become_leader(local_id_, r.leader_epoch, replicas, r.isr, state.partition_epoch,
                    config_.replica_lag_time_max_ms);
    p.set_acks_all_allowed(member_.broker_epoch() != 0);
    // Only a registered broker that is not shutting down may join (KRaft's isReplicaIsrEligible):
    // the controller refuses the others. A replica that caught up just before it stopped would
    // otherwise be proposed again at every fetch of the other followers, and hold the high
    // watermark as one about to join.
    std::vector<int32_t> ineligible;
    for (int32_t id : replicas) {
      const cluster::live_broker* b = member_.image().broker(id);
      if (id != local_id_ && (b == nullptr || b->record.controlled_shutdown)) {
        ineligible.push_back(id);
      }
    }
    p.set_ineligible_followers(std::move(ineligible));
    if (news) {
      log_info("partition ", t.name, "-", p.index(), ": leader at epoch ", r.leader_epoch, ", ISR ",
               list(r.isr), ", log end ", p.log_end_offset());
    }
    return;
  }
  if (p.is_leader() || p.leader_id() != r.leader || p.leader_epoch() != r.leader_epoch ||
      p.partition_epoch() != state.partition_epoch) {
    const bool news =
        p.is_leader() || p.leader_id() != r.leader || p.leader_epoch() != r.leader_epoch;
    p.become_follower(r.leader, r.leader_epoch, replicas, r.isr, state.partition_epoch);
    if (news) {
      log_info("partition ", t.name, "-", p.index(), ": follower of broker ", r.leader,
               " at epoch ", r.leader_epoch, ", log end ", p.log_end_offset());
    }
  }
  auto it = following_.find(tp);
  const bool leader_live = r.leader >= 0 && member_.image().broker(r.leader) != nullptr;
  if (it != following_.end() && it->second.leader == r.leader &&
      it->second.epoch == r.leader_epoch) {
    return;
  }
  if (it != following_.end()) {
    if (auto f = fetchers_.find(it->second.leader); f != fetchers_.end()) {
      f->second->remove_partitions({tp});
    }
    following_.erase(it);
  }
  if (!leader_live) return;
  following_[tp] = followed{r.leader, r.leader_epoch};
  std::optional<position> at = fetch_position(tp);
  if (!at) return;
  to_fetch[r.leader].push_back({tp, t.name, *at});
}

void replica_manager::remove_stray(topic& t, const char* why) {
  const std::string name = t.name;
  log_info("topic ", name, " (id ", storage::uuid_to_base64(t.id),
           "): removing its local logs: ", why);
  for (auto it = following_.begin(); it != following_.end();) {
    if (it->first.topic_id != t.id) {
      ++it;
      continue;
    }
    if (auto f = fetchers_.find(it->second.leader); f != fetchers_.end()) {
      f->second->remove_partitions({it->first});
    }
    it = following_.erase(it);
  }
  removing_.insert(name);
  topics_.remove_async(t, [this, alive = std::weak_ptr<bool>(alive_), name](wire::error_code ec) {
    if (!alive.lock()) return;
    removing_.erase(name);
    if (ec != wire::error_code::none) {
      log_error("topic ", name, ": cannot remove its stray logs: ", wire::error_name(ec));
    }
    reconcile();
  });
}

void replica_manager::remove_replicas(topic& t, const std::vector<int32_t>& indexes) {
  const std::string name = t.name;
  for (int32_t index : indexes) {
    log_info("partition ", name, "-", index, ": broker ", local_id_,
             " is no longer one of its replicas; deleting its local log");
  }
  topics_.remove_replicas_async(
      t, indexes, [this, alive = std::weak_ptr<bool>(alive_), name, indexes](wire::error_code ec) {
        if (!alive.lock() || ec == wire::error_code::none) return;
        log_error("topic ", name, ": cannot delete the local logs of replicas ", list(indexes),
                  ": ", wire::error_name(ec));
      });
}

cluster::replica_fetcher& replica_manager::fetcher_for(int32_t leader) {
  auto it = fetchers_.find(leader);
  if (it != fetchers_.end()) return *it->second;
  const broker_config& c = config_;
  cluster::replica_fetcher_config fc;
  fc.local_node_id = local_id_;
  fc.broker_epoch = member_.broker_epoch();
  fc.leader_id = leader;
  if (const cluster::live_broker* b = member_.image().broker(leader)) {
    auto l = b->record.listeners.find(c.inter_broker_listener_name);
    if (l != b->record.listeners.end()) {
      fc.client.host = l->second.host;
      fc.client.port = static_cast<uint16_t>(l->second.port);
    }
  }
  fc.max_wait_ms = c.replica_fetch_wait_max_ms;
  fc.max_bytes = c.replica_fetch_response_max_bytes;
  fc.partition_max_bytes = c.replica_fetch_max_bytes;
  fc.backoff = std::chrono::milliseconds(c.replica_fetch_backoff_ms);
  fc.client.max_response_bytes = static_cast<size_t>(c.replica_fetch_response_max_bytes) +
                                 static_cast<size_t>(c.message_max_bytes) + 1024 * 1024;
  fc.client.request_timeout = std::max(fc.client.request_timeout,
                                       std::chrono::milliseconds(c.replica_fetch_wait_max_ms * 2));
  log_info("broker ", local_id_, ": starting a fetcher from broker ", leader, " at ",
           fc.client.host, ":", fc.client.port);
  auto f = std::make_unique<cluster::replica_fetcher>(executor_, timers_, *this, fc);
  f->start();
  return *fetchers_.emplace(leader, std::move(f)).first->second;
}

std::optional<cluster::replica_sink::position> replica_manager::fetch_position(
    cluster::topic_partition_id tp) {
  if (stopped_ || !following_.contains(tp)) return std::nullopt;
  std::shared_ptr<partition> p = find(tp);
  if (!p || p->is_leader() || p->deleted() || p->offline()) return std::nullopt;
  position at;
  at.fetch_offset = p->log_end_offset();
  at.last_fetched_epoch = p->log_end_offset() > 0 ? p->log().latest_epoch().value_or(-1) : -1;
  at.current_leader_epoch = p->leader_epoch();
  at.log_start_offset = p->log_start_offset();
  return at;
}

asio::awaitable<std::error_code> replica_manager::append(cluster::topic_partition_id tp,
                                                         std::span<const uint8_t> batches,
                                                         int64_t leader_high_watermark,
                                                         int64_t leader_log_start_offset) {
  std::weak_ptr<bool> alive = alive_;
  std::span<const uint8_t> rest = batches;
  for (;;) {
    std::shared_ptr<partition> p = find(tp);
    if (!p || p->is_leader() || p->deleted()) co_return storage::errc::log_closed;
    if (rest.empty()) {
      // A follower's high watermark is the leader's, as far as its own log reaches. Consumers
      // reading from this follower (KIP-392) wait on it.
      const int64_t hw_before = p->high_watermark();
      p->log().set_high_watermark(std::min(leader_high_watermark, p->log_end_offset()));
      if (p->high_watermark() != hw_before) p->wake_waiters();
      std::error_code ec;
      if (leader_log_start_offset > p->log_start_offset()) {
        int64_t new_start = 0;
        ec = p->log().follow_leader_log_start(leader_log_start_offset, new_start);
        if (ec && ec != storage::errc::roll_in_progress) {
          log_warn("partition ", p->tp().topic, "-", p->index(),
                   ": cannot follow the leader's log start ", leader_log_start_offset, ": ",
                   ec.message());
        }
      }
      // roll_in_progress: the log is being truncated; the start moves once that is done, as an
      // append would wait for it.
      if (ec != storage::errc::roll_in_progress) co_return std::error_code{};
    }
    storage::append_info info;
    std::error_code ec = rest.empty() ? make_error_code(storage::errc::roll_in_progress)
                                      : p->log().append_replicated(rest, info);
    if (ec == storage::errc::roll_in_progress) {
      completion_latch rolled(executor_);
      p->log().when_writable([ticket = rolled.add()] { ticket.done(); });
      co_await rolled.wait();
      if (!alive.lock()) co_return storage::errc::log_closed;
      continue;
    }
    if (ec) {
      log_warn("partition ", p->tp().topic, "-", p->index(), ": cannot append what broker ",
               p->leader_id(), " sent: ", ec.message());
      co_return ec;
    }
    if (info.bytes <= 0)
      rest = {};
    else
      rest = rest.subspan(static_cast<size_t>(info.bytes));
  }
}

asio::awaitable<std::error_code> replica_manager::truncate(cluster::topic_partition_id tp,
                                                           int64_t offset) {
  std::shared_ptr<partition> p = find(tp);
  if (!p || p->is_leader() || p->deleted()) co_return storage::errc::log_closed;
  const int64_t before = p->log_end_offset();
  std::weak_ptr<bool> alive = alive_;
  // The file work is a job of the log's disk queue (storage::log::truncate_to), during which
  // appends wait as for a roll. As for reset_to, the partition stays followed and this fetcher
  // sends nothing for it until the answer; its role waits too (reconcile skips it).
  truncating_.insert(tp);
  completion_latch truncated(executor_);
  auto ec = std::make_shared<std::error_code>();
  p->log().truncate_to(offset, [ticket = truncated.add(), ec](std::error_code e) {
    *ec = e;
    ticket.done();
  });
  co_await truncated.wait();
  if (!alive.lock()) co_return storage::errc::log_closed;
  truncating_.erase(tp);
  std::string outcome = *ec ? ": " + ec->message() : std::string();
  log_info("partition ", p->tp().topic, "-", p->index(), ": truncated from ", before, " to ",
           p->log_end_offset(), " (diverged from broker ", p->leader_id(), " at epoch ",
           p->leader_epoch(), ")", outcome);
  if (std::exchange(role_deferred_, false)) reconcile();
  co_return *ec;
}

asio::awaitable<std::error_code> replica_manager::reset_to(cluster::topic_partition_id tp,
                                                           int64_t offset) {
  std::shared_ptr<partition> p = find(tp);
  if (!p || p->is_leader() || p->deleted()) co_return storage::errc::log_closed;
  const int64_t before = p->log_end_offset();
  std::weak_ptr<bool> alive = alive_;
  // The disk work runs as jobs of the log's queue; the partition stays followed meanwhile, and
  // this fetcher sends nothing for it until the answer.
  completion_latch started(executor_);
  auto ec = std::make_shared<std::error_code>();
  p->log().start_again_at(offset, [ticket = started.add(), ec](std::error_code e) {
    *ec = e;
    ticket.done();
  });
  co_await started.wait();
  if (!alive.lock()) co_return storage::errc::log_closed;
  std::string outcome = *ec ? ": " + ec->message() : std::string();
  log_info("partition ", p->tp().topic, "-", p->index(), ": local log (end ", before,
           ") deleted and started again at broker ", p->leader_id(), "'s log start ", offset,
           outcome);
  co_return *ec;
}

void replica_manager::partition_error(cluster::topic_partition_id tp, wire::error_code error) {
  auto it = following_.find(tp);
  if (it == following_.end()) return;
  std::shared_ptr<partition> p = find(tp);
  log_info("partition ", p ? p->tp().topic : storage::uuid_to_base64(tp.topic_id), "-",
           tp.partition, ": broker ", it->second.leader, " answered ", wire::error_name(error),
           "; fetching again after replica.fetch.backoff.ms");
  // The leader may not have made its replica yet (a new topic), or the state moved on: either
  // way the next reconcile adds it again with what the cluster state then says.
  following_.erase(it);
  if (retry_timer_) return;
  retry_timer_ =
      timers_.schedule(std::chrono::milliseconds(config_.replica_fetch_backoff_ms), [this] {
        retry_timer_.cancel();
        reconcile();
      });
}

void replica_manager::after_follower_fetch(partition& p) {
  cluster::replica_tracker* tracker = p.tracker();
  if (tracker == nullptr || tracker->change_pending()) return;
  std::vector<int32_t> ready = tracker->ready_to_join();
  if (ready.empty()) return;
  std::vector<int32_t> isr = tracker->isr();
  isr.insert(isr.end(), ready.begin(), ready.end());
  std::sort(isr.begin(), isr.end());
  propose_isr(p.shared_from_this(), std::move(isr), "caught up");
}

void replica_manager::check_isr() {
  if (stopped_) return;
  const int64_t now = steady_ms();
  for (const auto& [name, t] : topics_.all()) {
    for (const auto& p : t.partitions) {
      cluster::replica_tracker* tracker = p->tracker();
      if (tracker == nullptr) continue;
      // A caught-up follower outside the ISR holds the high watermark only for a lag period:
      // once it has passed, waiting acks=all may complete without any fetch or append.
      p->on_replication_progress();
      if (tracker->change_pending()) continue;
      std::vector<int32_t> lagging =
          tracker->out_of_sync(p->log_end_offset(), now, p->lag_max_ms());
      if (lagging.empty()) continue;
      std::vector<int32_t> isr = tracker->isr();
      std::erase_if(isr, [&](int32_t id) { return contains(lagging, id); });
      propose_isr(p, std::move(isr), "not caught up within replica.lag.time.max.ms");
    }
  }
  isr_timer_ = timers_.schedule(
      std::chrono::milliseconds(std::max<int64_t>(1, config_.replica_lag_time_max_ms / 2)),
      [this] { check_isr(); });
}

void replica_manager::propose_isr(std::shared_ptr<partition> p, std::vector<int32_t> new_isr,
                                  const char* why) {
  cluster::replica_tracker* tracker = p->tracker();
  const std::vector<int32_t> old_isr = tracker->isr();
  tracker->begin_change(new_isr);
  isr_change_request request{topics_.find(p->tp().topic)->id, p->index(), p->leader_epoch(),
                             new_isr, p->partition_epoch()};
  log_info("partition ", p->tp().topic, "-", p->index(), ": proposing ISR ", list(old_isr), " -> ",
           list(new_isr), " (", why, ") at leader epoch ", p->leader_epoch(), ", partition epoch ",
           p->partition_epoch());
  asio::co_spawn(
      executor_,
      [this, alive = std::weak_ptr<bool>(alive_), p, request]() -> asio::awaitable<void> {
        isr_change_result result = co_await send_isr_change_(request);
        if (!alive.lock()) co_return;
        cluster::replica_tracker* tracker = p->tracker();
        if (tracker == nullptr || !tracker->change_pending() ||
            p->leader_epoch() != request.leader_epoch) {
          co_return;  // leadership moved, or the watch applied the outcome first
        }
        if (result.error != wire::error_code::none) {
          log_warn("partition ", p->tp().topic, "-", p->index(), ": ISR change ",
                   list(request.new_isr), " refused: ", wire::error_name(result.error));
          tracker->abandon_change();
          p->on_replication_progress();
          co_return;
        }
        log_info("partition ", p->tp().topic, "-", p->index(), ": ISR is now ", list(result.isr),
                 " at partition epoch ", result.partition_epoch);
        p->become_leader(local_id_, request.leader_epoch, p->replicas(), result.isr,
                         result.partition_epoch, p->lag_max_ms());
      },
      asio::detached);
}

}  // namespace sluice::server

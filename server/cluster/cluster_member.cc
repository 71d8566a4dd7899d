#include "server/cluster/cluster_member.h"

#include <algorithm>
#include <chrono>
#include <random>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/logging.h"
#include "storage/checkpoint.h"

namespace sluice::server::cluster {

namespace asio = boost::asio;
using coordination::compare;
using coordination::compare_op;
using coordination::operation;
using coordination::store_errc;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

std::string random_cluster_id() {
  static constexpr char alphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::mt19937_64 rng{std::random_device{}()};
  std::string id;
  for (int i = 0; i < 22; ++i)
    id.push_back(alphabet[rng() % 64]);
  return id;
}

struct cluster_member::listeners_list {
  std::map<uint64_t, std::function<void()>> fns;
  uint64_t next = 1;
};

namespace {

class listener_state final : public cancel_handle::state {
 public:
  listener_state(std::weak_ptr<void> list, std::map<uint64_t, std::function<void()>>* fns,
                 uint64_t id)
      : list_(std::move(list)), fns_(fns), id_(id) {}
  void cancel() override {
    if (auto alive = list_.lock()) fns_->erase(id_);
  }

 private:
  std::weak_ptr<void> list_;
  std::map<uint64_t, std::function<void()>>* fns_;
  uint64_t id_;
};

asio::awaitable<void> sleep_ms(int64_t ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(milliseconds(ms));
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

cluster_member::cluster_member(asio::io_context& io, coordination::metadata_store& store,
                               cluster_member_config config)
    : io_(io),
      store_(store),
      config_(std::move(config)),
      image_(config_.prefix),
      incarnation_(random_cluster_id()),
      listeners_(std::make_shared<listeners_list>()) {}

cluster_member::~cluster_member() {
  *alive_ = false;
  for (auto& t : timers_)
    t->cancel();
}

bool cluster_member::is_controller() const {
  const auto& c = image_.controller();
  return c && c->node_id == config_.node_id && broker_epoch_ != 0;
}

int64_t cluster_member::controller_epoch() const {
  const auto& c = image_.controller();
  return c ? c->epoch : 0;
}

cancel_handle cluster_member::on_change(std::function<void()> fn) {
  const uint64_t id = listeners_->next++;
  listeners_->fns.emplace(id, std::move(fn));
  return cancel_handle(std::make_shared<listener_state>(listeners_, &listeners_->fns, id));
}

asio::awaitable<bool> cluster_member::wait_until(std::function<bool()> ready,
                                                 std::chrono::milliseconds timeout) {
  if (ready()) co_return true;
  std::weak_ptr<bool> alive = alive_;
  asio::steady_timer timer(io_, timeout);
  bool met = false;
  cancel_handle watching = on_change([&] {
    if (!met && ready()) {
      met = true;
      timer.cancel();
    }
  });
  boost::system::error_code ec;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (!alive.lock()) co_return false;
  co_return met;
}

asio::awaitable<bool> cluster_member::catch_up_with_topic(std::string name, milliseconds timeout) {
  std::weak_ptr<bool> alive = alive_;
  const auto deadline = steady_clock::now() + timeout;
  // Every write shows in the image at its revision: the latest of the topic's keys is the one to
  // wait for. Reads are linearizable, so they include every write acknowledged before them.
  std::string name_key = keys::topic_name(config_.prefix, name);
  coordination::range_result named = co_await store_.get(std::move(name_key));
  if (!alive.lock() || named.error) co_return false;
  int64_t target = 0;
  if (!named.kvs.empty()) {
    target = named.kvs.front().mod_revision;
    if (std::optional<wire::uuid> id = storage::uuid_from_base64(named.kvs.front().value)) {
      std::string topic_key = keys::topic(config_.prefix, *id);
      coordination::range_result record = co_await store_.get(std::move(topic_key));
      if (!alive.lock() || record.error) co_return false;
      if (!record.kvs.empty()) target = std::max(target, record.kvs.front().mod_revision);
    }
  }
  // Named: GCC 12 destroys a std::function made from a lambda inside a co_await twice.
  std::function<bool()> caught_up = [this, target] { return image_.revision() >= target; };
  const auto left = std::max(
      milliseconds(0), std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()));
  co_return co_await wait_until(std::move(caught_up), left);
}

void cluster_member::changed() {
  const bool controller_now = is_controller();
  if (was_controller_ && !controller_now) {
    const auto& c = image_.controller();
    log_info("broker ", config_.node_id, ": no longer controller (the controller is now ",
             c ? "broker " + std::to_string(c->node_id) : std::string("none"), ")");
  }
  was_controller_ = controller_now;
  // A callback may cancel itself or another: walk a copy of the ids.
  std::vector<uint64_t> ids;
  for (const auto& [id, fn] : listeners_->fns)
    ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = listeners_->fns.find(id);
    if (it != listeners_->fns.end()) it->second();
  }
  if (!image_.controller() && broker_epoch_ != 0 && !campaigning_ && !leaving_) campaign();
}

void cluster_member::after(int64_t ms, std::function<void()> fn) {
  std::erase_if(timers_, [](const auto& t) { return t->expiry() < steady_clock::now(); });
  auto timer = std::make_unique<asio::steady_timer>(io_, milliseconds(ms));
  timer->async_wait(
      [alive = std::weak_ptr<bool>(alive_), fn = std::move(fn)](boost::system::error_code ec) {
        if (!ec && alive.lock()) fn();
      });
  timers_.push_back(std::move(timer));
}

asio::awaitable<std::string> cluster_member::bootstrap(std::string& problem) {
  std::weak_ptr<bool> alive = alive_;
  const auto deadline = steady_clock::now() + milliseconds(config_.connection_timeout_ms);
  const std::string key = keys::cluster_id(config_.prefix);
  bool waited = false;
  for (;;) {
    // Create-if-absent, then read: two brokers starting at once both end up with the winner's id,
    // and a retry after an unknown outcome is harmless.
    const std::string fresh = random_cluster_id();
    coordination::txn_request create;
    create.compares.push_back(compare::create_revision(key, compare_op::equal, 0));
    create.success.push_back(operation::put(key, fresh));
    coordination::txn_result created = co_await store_.txn(std::move(create));
    if (!alive.lock()) co_return std::string{};
    std::error_code last = created.error;
    if (!created.error && created.succeeded) {
      log_info("broker ", config_.node_id, ": created cluster id ", fresh, " at ", key);
      co_return fresh;
    }
    if (!created.error) {
      coordination::range_result read = co_await store_.get(key);
      if (!alive.lock()) co_return std::string{};
      if (!read.error && !read.kvs.empty() && !read.kvs[0].value.empty()) {
        co_return read.kvs[0].value;
      }
      last = read.error ? read.error : make_error_code(store_errc::bad_response);
    }
    if (last == store_errc::rejected || steady_clock::now() >= deadline) {
      problem =
          "cannot read the cluster id from the metadata store (" + key + "): " + last.message();
      co_return std::string{};
    }
    if (!waited) {
      log_warn("broker ", config_.node_id, ": the metadata store does not answer (", last.message(),
               "); retrying for up to ", config_.connection_timeout_ms, " ms");
      waited = true;
    }
    co_await sleep_ms(config_.retry_backoff_ms);
    if (!alive.lock()) co_return std::string{};
  }
}

asio::awaitable<std::string> cluster_member::register_broker() {
  std::weak_ptr<bool> alive = alive_;
  const int64_t ttl = std::max<int64_t>(1, (config_.session_timeout_ms + 999) / 1000);
  coordination::lease_grant_result grant = co_await store_.grant_lease(ttl);
  if (!alive.lock()) co_return std::string{};
  if (grant.error) {
    co_return "cannot take a lease in the metadata store: " + grant.error.message();
  }
  lease_ = grant.id;
  keep_alive_ =
      store_.keep_alive(lease_, grant.ttl_seconds, [this](std::error_code ec) { lease_lost(ec); });

  const broker_record record = own_record();
  const std::string key = keys::broker(config_.prefix, config_.node_id);
  // A previous incarnation killed without revoking its lease holds the key until the lease
  // expires: one session timeout, plus etcd's expiry sweep (every 500 ms) and a margin.
  const auto deadline =
      steady_clock::now() + milliseconds(grant.ttl_seconds * 1000 + config_.retry_backoff_ms * 4);
  bool announced = false;
  for (;;) {
    coordination::txn_request put;
    put.compares.push_back(compare::create_revision(key, compare_op::equal, 0));
    put.success.push_back(operation::put(key, encode(record), lease_));
    coordination::txn_result r = co_await store_.txn(std::move(put));
    if (!alive.lock()) co_return std::string{};
    if (!r.error && r.succeeded) {
      broker_epoch_ = r.revision;
      log_info("broker ", config_.node_id, ": registered at ", key, " with broker epoch ",
               broker_epoch_, " (lease ", lease_, ", ", grant.ttl_seconds, " s)");
      co_return std::string{};
    }
    if (r.error == store_errc::lease_not_found) {
      co_return "the lease taken for the registration ended before it was used";
    }
    if (r.error == store_errc::rejected) {
      co_return "the metadata store refused the registration: " + r.error.message();
    }
    if (!r.error && !announced) {
      log_warn("broker ", config_.node_id, ": ", key,
               " is held by another registration; waiting up to ", grant.ttl_seconds,
               " s for its lease to expire (a previous run of this broker), else refusing");
      announced = true;
    }
    if (steady_clock::now() >= deadline) {
      keep_alive_.cancel();
      co_await store_.revoke_lease(lease_);
      if (!alive.lock()) co_return std::string{};
      lease_ = 0;
      if (r.error) co_return "cannot register in the metadata store: " + r.error.message();
      co_return "another live broker is registered with node.id " +
          std::to_string(config_.node_id) + " (" + key +
          " stayed held for a whole session timeout): node ids must be unique";
    }
    co_await sleep_ms(config_.retry_backoff_ms);
    if (!alive.lock()) co_return std::string{};
  }
}

asio::awaitable<bool> cluster_member::read_all() {
  std::weak_ptr<bool> alive = alive_;
  coordination::range_result read = co_await store_.get_prefix(config_.prefix + "/");
  if (!alive.lock()) co_return false;
  if (read.error) {
    log_warn("broker ", config_.node_id, ": cannot read ", config_.prefix,
             "/ from the metadata store: ", read.error.message());
    co_return false;
  }
  std::vector<std::string> problems;
  image_.reset(read.kvs, read.revision, problems);
  for (const std::string& p : problems)
    log_warn("broker ", config_.node_id, ": ", p);
  co_return true;
}

asio::awaitable<std::string> cluster_member::join() {
  std::weak_ptr<bool> alive = alive_;
  std::string problem = co_await register_broker();
  if (!alive.lock() || !problem.empty()) co_return problem;
  const auto deadline = steady_clock::now() + milliseconds(config_.connection_timeout_ms);
  while (!co_await read_all()) {
    if (!alive.lock()) co_return std::string{};
    if (steady_clock::now() >= deadline) co_return "cannot read the cluster state";
    co_await sleep_ms(config_.retry_backoff_ms);
    if (!alive.lock()) co_return std::string{};
  }
  log_info("broker ", config_.node_id, ": read the cluster state at revision ", image_.revision(),
           ": ", image_.brokers().size(), " brokers, ", image_.topics().size(),
           " topics, controller ",
           image_.controller() ? std::to_string(image_.controller()->node_id) : "none");
  watch();
  changed();
  co_return std::string{};
}

void cluster_member::watch() {
  if (leaving_) return;
  coordination::watch_callbacks callbacks;
  callbacks.events = [this](std::vector<coordination::watch_event> events) {
    std::vector<std::string> problems;
    image_.apply(events, problems);
    for (const std::string& p : problems)
      log_warn("broker ", config_.node_id, ": ", p);
    changed();
  };
  callbacks.ended = [this](const coordination::watch_end& end) {
    if (leaving_) return;
    if (end.why == coordination::watch_end::reason::compacted) {
      log_info("broker ", config_.node_id, ": the metadata watch fell behind compaction (revision ",
               end.compact_revision, "): reading the cluster state again");
      resync();
      return;
    }
    log_warn("broker ", config_.node_id, ": the metadata watch broke (", end.error.message(),
             "); watching again from revision ", image_.revision() + 1);
    after(config_.retry_backoff_ms, [this] { watch(); });
  };
  watch_ = store_.watch_prefix(config_.prefix + "/", image_.revision() + 1, std::move(callbacks));
}

void cluster_member::resync() {
  asio::co_spawn(
      io_,
      [this, alive = std::weak_ptr<bool>(alive_)]() -> asio::awaitable<void> {
        while (!co_await read_all()) {
          if (!alive.lock() || leaving_) co_return;
          co_await sleep_ms(config_.retry_backoff_ms);
          if (!alive.lock() || leaving_) co_return;
        }
        if (!alive.lock() || leaving_) co_return;
        changed();
        watch();
      },
      asio::detached);
}

void cluster_member::campaign() {
  campaigning_ = true;
  asio::co_spawn(
      io_,
      [this, alive = std::weak_ptr<bool>(alive_)]() -> asio::awaitable<void> {
        const std::string key = keys::controller(config_.prefix);
        coordination::txn_request elect;
        elect.compares.push_back(compare::create_revision(key, compare_op::equal, 0));
        elect.success.push_back(
            operation::put(key, encode(controller_record{config_.node_id}), lease_));
        coordination::txn_result r = co_await store_.txn(std::move(elect));
        if (!alive.lock()) co_return;
        campaigning_ = false;
        if (!r.error && r.succeeded) {
          log_info("broker ", config_.node_id, ": elected controller with epoch ", r.revision);
        } else if (r.error) {
          // The watch shows the outcome of a write that may have applied; without an answer,
          // look again after a pause.
          after(config_.retry_backoff_ms, [this] {
            if (!image_.controller() && broker_epoch_ != 0 && !campaigning_ && !leaving_) {
              campaign();
            }
          });
        }
      },
      asio::detached);
}

void cluster_member::lease_lost(std::error_code ec) {
  if (leaving_) return;
  log_error("broker ", config_.node_id, ": lost its lease ", lease_, " in the metadata store (",
            ec.message(), "); the cluster counts it as gone: registering again");
  keep_alive_.cancel();
  broker_epoch_ = 0;
  lease_ = 0;
  // Whoever must stop presuming this broker registered (its leaders' acks=all) learns it now,
  // not once it has registered again.
  changed();
  asio::co_spawn(
      io_,
      [this, alive = std::weak_ptr<bool>(alive_)]() -> asio::awaitable<void> {
        for (;;) {
          std::string problem = co_await register_broker();
          if (!alive.lock() || leaving_) co_return;
          if (problem.empty()) break;
          log_error("broker ", config_.node_id, ": cannot register again: ", problem);
          co_await sleep_ms(config_.retry_backoff_ms);
          if (!alive.lock() || leaving_) co_return;
        }
        changed();
      },
      asio::detached);
}

broker_record cluster_member::own_record() const {
  broker_record record;
  record.node_id = config_.node_id;
  record.rack = config_.rack;
  record.listeners = config_.listeners;
  record.incarnation = incarnation_;
  record.controlled_shutdown = controlled_shutdown_;
  return record;
}

asio::awaitable<std::string> cluster_member::begin_controlled_shutdown() {
  std::weak_ptr<bool> alive = alive_;
  controlled_shutdown_ = true;
  if (broker_epoch_ == 0) co_return std::string("this broker is not registered");
  // Only over this broker's own registration: the key's create_revision is the broker epoch.
  const std::string key = keys::broker(config_.prefix, config_.node_id);
  coordination::txn_request put;
  put.compares.push_back(compare::create_revision(key, compare_op::equal, broker_epoch_));
  put.success.push_back(operation::put(key, encode(own_record()), lease_));
  coordination::txn_result r = co_await store_.txn(std::move(put));
  if (!alive.lock()) co_return std::string("the broker is stopping");
  if (r.error) co_return "the metadata store did not take the mark: " + r.error.message();
  if (!r.succeeded) co_return std::string("the registration changed under this broker");
  log_info("broker ", config_.node_id,
           ": registration marked in controlled shutdown (broker epoch ", broker_epoch_, ")");
  co_return std::string{};
}

void cluster_member::leave(std::function<void()> done) {
  leaving_ = true;
  watch_.cancel();
  keep_alive_.cancel();
  for (auto& t : timers_)
    t->cancel();
  const int64_t lease = lease_;
  lease_ = 0;
  broker_epoch_ = 0;
  if (lease == 0) {
    asio::post(io_, std::move(done));
    return;
  }
  asio::co_spawn(
      io_,
      [this, lease, alive = std::weak_ptr<bool>(alive_),
       done = std::move(done)]() -> asio::awaitable<void> {
        std::error_code ec = co_await store_.revoke_lease(lease);
        if (alive.lock()) {
          if (ec) {
            log_warn("broker ", config_.node_id, ": could not revoke lease ", lease, " (",
                     ec.message(), "); it expires within the session timeout");
          } else {
            log_info("broker ", config_.node_id, ": left the cluster (lease ", lease, " revoked)");
          }
        }
        done();
      },
      asio::detached);
}

}  // namespace sluice::server::cluster

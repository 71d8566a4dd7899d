#include "server/coordination/fake_store.h"

#include <algorithm>

#include <boost/asio/post.hpp>

namespace sluice::server::coordination {

// `open`: neither cancelled by its owner nor ended by the store. Callbacks already posted check
// `cancelled` only, so that events posted before an end still arrive before it.
struct fake_store::watch_entry final : subscription::state {
  std::string prefix;
  int64_t start_revision = 0;
  watch_callbacks callbacks;
  bool cancelled = false;
  bool ended = false;

  void cancel() override { cancelled = true; }
  bool open() const { return !cancelled && !ended; }
};

struct fake_store::keep_alive_entry final : subscription::state {
  int64_t lease = 0;
  std::function<void(std::error_code)> lost;
  bool cancelled = false;
  bool ended = false;

  void cancel() override { cancelled = true; }
  bool open() const { return !cancelled && !ended; }
};

fake_store::fake_store(boost::asio::any_io_executor executor) : executor_(std::move(executor)) {}

fake_store::~fake_store() {
  for (auto& w : watches_)
    w->cancel();
  for (auto& k : keep_alives_)
    k->cancel();
}

boost::asio::awaitable<range_result> fake_store::get(std::string key) {
  co_return read(key, false);
}

boost::asio::awaitable<range_result> fake_store::get_prefix(std::string prefix) {
  co_return read(prefix, true);
}

range_result fake_store::read(const std::string& key, bool prefix) const {
  range_result out;
  if (!available_) {
    out.error = store_errc::unavailable;
    return out;
  }
  if (key.empty() && !prefix) {
    out.error = store_errc::rejected;
    return out;
  }
  out.revision = revision_;
  if (!prefix) {
    if (auto it = kvs_.find(key); it != kvs_.end()) out.kvs.push_back(it->second);
    return out;
  }
  for (auto it = kvs_.lower_bound(key); it != kvs_.end() && it->first.starts_with(key); ++it)
    out.kvs.push_back(it->second);
  return out;
}

boost::asio::awaitable<txn_result> fake_store::txn(txn_request request) {
  txn_result out;
  if (!available_) {
    out.error = store_errc::unavailable;
    co_return out;
  }
  // etcd validates both branches' shapes up front, and leases only on the branch it takes.
  for (const auto* ops : {&request.success, &request.failure}) {
    if (auto ec = check(*ops); ec == store_errc::rejected) {
      out.error = ec;
      co_return out;
    }
  }
  for (const auto& c : request.compares) {
    if (c.key.empty()) {
      out.error = store_errc::rejected;
      co_return out;
    }
  }
  out.succeeded = std::all_of(request.compares.begin(), request.compares.end(),
                              [this](const compare& c) { return holds(c); });
  const auto& branch = out.succeeded ? request.success : request.failure;
  if (auto ec = check(branch)) {
    out.error = ec;
    out.succeeded = false;
    co_return out;
  }
  apply(branch);
  out.revision = revision_;
  co_return out;
}

std::error_code fake_store::check(const std::vector<operation>& ops) const {
  std::set<std::string> puts;
  for (const auto& op : ops) {
    if (op.what != operation::kind::erase_prefix && op.key.empty()) return store_errc::rejected;
    if (op.what == operation::kind::put && !puts.insert(op.key).second) {
      return store_errc::rejected;
    }
  }
  for (const auto& op : ops) {
    if (op.what == operation::kind::put) continue;
    for (const auto& key : puts) {
      bool overlaps =
          op.what == operation::kind::erase_key ? key == op.key : key.starts_with(op.key);
      if (overlaps) return store_errc::rejected;
    }
  }
  for (const auto& op : ops) {
    if (op.what == operation::kind::put && op.lease != 0 && !leases_.contains(op.lease)) {
      return store_errc::lease_not_found;
    }
  }
  return {};
}

bool fake_store::holds(const compare& c) const {
  auto it = kvs_.find(c.key);
  if (it == kvs_.end() && c.target == compare_target::value) return false;
  const key_value absent;
  const key_value& kv = it == kvs_.end() ? absent : it->second;
  int order = 0;
  switch (c.target) {
    case compare_target::version:
      order = kv.version < c.number ? -1 : kv.version > c.number ? 1 : 0;
      break;
    case compare_target::create_revision:
      order = kv.create_revision < c.number ? -1 : kv.create_revision > c.number ? 1 : 0;
      break;
    case compare_target::mod_revision:
      order = kv.mod_revision < c.number ? -1 : kv.mod_revision > c.number ? 1 : 0;
      break;
    case compare_target::value:
      order = kv.value.compare(c.value);
      break;
  }
  switch (c.op) {
    case compare_op::equal:
      return order == 0;
    case compare_op::not_equal:
      return order != 0;
    case compare_op::greater:
      return order > 0;
    case compare_op::less:
      return order < 0;
  }
  return false;
}

void fake_store::apply(const std::vector<operation>& ops) {
  const int64_t revision = revision_ + 1;
  std::vector<watch_event> events;
  for (const auto& op : ops) {
    switch (op.what) {
      case operation::kind::put: {
        key_value kv{op.key, op.value, revision, revision, 1, op.lease};
        if (auto it = kvs_.find(op.key); it != kvs_.end()) {
          kv.create_revision = it->second.create_revision;
          kv.version = it->second.version + 1;
          if (it->second.lease != op.lease) detach(it->second);
        }
        // check() made sure the lease exists.
        if (op.lease != 0) leases_.at(op.lease).keys.insert(op.key);
        kvs_[op.key] = kv;
        events.push_back({watch_event::kind::put, std::move(kv)});
        break;
      }
      case operation::kind::erase_key:
        erase_key(op.key, revision, events);
        break;
      case operation::kind::erase_prefix: {
        std::vector<std::string> keys;
        for (auto it = kvs_.lower_bound(op.key); it != kvs_.end() && it->first.starts_with(op.key);
             ++it)
          keys.push_back(it->first);
        for (const auto& key : keys)
          erase_key(key, revision, events);
        break;
      }
    }
  }
  if (events.empty()) return;
  revision_ = revision;
  history_.emplace_back(revision, events);
  notify(events);
}

void fake_store::erase_key(const std::string& key, int64_t revision,
                           std::vector<watch_event>& events) {
  auto it = kvs_.find(key);
  if (it == kvs_.end()) return;
  detach(it->second);
  kvs_.erase(it);
  key_value gone;
  gone.key = key;
  gone.mod_revision = revision;
  events.push_back({watch_event::kind::erase, std::move(gone)});
}

void fake_store::detach(const key_value& kv) {
  // A lease being ended is already out of leases_.
  if (auto lease = leases_.find(kv.lease); lease != leases_.end()) lease->second.keys.erase(kv.key);
}

void fake_store::notify(const std::vector<watch_event>& events) {
  std::erase_if(watches_, [](const auto& w) { return !w->open(); });
  for (const auto& w : watches_) {
    std::vector<watch_event> mine;
    for (const auto& e : events) {
      if (e.kv.mod_revision >= w->start_revision && e.kv.key.starts_with(w->prefix)) {
        mine.push_back(e);
      }
    }
    if (!mine.empty()) deliver(w, std::move(mine));
  }
}

void fake_store::deliver(const std::shared_ptr<watch_entry>& w, std::vector<watch_event> events) {
  boost::asio::post(executor_, [w, events = std::move(events)]() mutable {
    if (!w->cancelled) w->callbacks.events(std::move(events));
  });
}

void fake_store::end_watch(const std::shared_ptr<watch_entry>& w, watch_end end) {
  w->ended = true;
  boost::asio::post(executor_, [w, end] {
    if (!w->cancelled && w->callbacks.ended) w->callbacks.ended(end);
  });
}

boost::asio::awaitable<lease_grant_result> fake_store::grant_lease(int64_t ttl_seconds) {
  lease_grant_result out;
  if (!available_) {
    out.error = store_errc::unavailable;
    co_return out;
  }
  out.id = next_lease_id_++;
  out.ttl_seconds = std::max(ttl_seconds, min_lease_ttl_seconds);
  leases_[out.id].ttl_seconds = out.ttl_seconds;
  co_return out;
}

boost::asio::awaitable<std::error_code> fake_store::revoke_lease(int64_t lease) {
  if (!available_) co_return store_errc::unavailable;
  if (!leases_.contains(lease)) co_return store_errc::lease_not_found;
  end_lease(lease);
  co_return std::error_code();
}

bool fake_store::expire_lease(int64_t lease) {
  if (!leases_.contains(lease)) return false;
  end_lease(lease);
  return true;
}

void fake_store::end_lease(int64_t lease) {
  auto node = leases_.extract(lease);
  std::vector<operation> erases;
  for (const auto& key : node.mapped().keys)
    erases.push_back(operation::erase(key));
  apply(erases);
  end_keep_alives(lease, store_errc::lease_not_found);
}

void fake_store::end_keep_alives(int64_t lease, std::error_code why) {
  std::erase_if(keep_alives_, [](const auto& k) { return !k->open(); });
  for (const auto& k : keep_alives_) {
    if (k->lease != lease) continue;
    k->ended = true;
    boost::asio::post(executor_, [k, why] {
      if (!k->cancelled) k->lost(why);
    });
  }
}

void fake_store::lapse_keep_alives(int64_t lease) {
  end_keep_alives(lease, store_errc::unavailable);
}

// No time passes in the fake, so the TTL plays no part: losses come from the test.
subscription fake_store::keep_alive(int64_t lease, int64_t,
                                    std::function<void(std::error_code)> lost) {
  auto k = std::make_shared<keep_alive_entry>();
  k->lease = lease;
  k->lost = std::move(lost);
  keep_alives_.push_back(k);
  // The first renewal goes out at once: an ended lease is reported on the next turn.
  if (!leases_.contains(lease)) end_keep_alives(lease, store_errc::lease_not_found);
  return subscription(k);
}

subscription fake_store::watch_prefix(std::string prefix, int64_t start_revision,
                                      watch_callbacks callbacks) {
  auto w = std::make_shared<watch_entry>();
  w->prefix = std::move(prefix);
  w->callbacks = std::move(callbacks);
  if (!available_) {
    end_watch(w, {watch_end::reason::disconnected, 0, store_errc::unavailable});
    return subscription(w);
  }
  if (start_revision <= 0) start_revision = revision_ + 1;
  w->start_revision = start_revision;
  if (start_revision < compact_revision_) {
    end_watch(w, {watch_end::reason::compacted, compact_revision_, {}});
    return subscription(w);
  }
  // etcd sends history in batches that may span revisions; one batch per revision here.
  for (const auto& [revision, events] : history_) {
    if (revision < start_revision) continue;
    std::vector<watch_event> mine;
    for (const auto& e : events) {
      if (e.kv.key.starts_with(w->prefix)) mine.push_back(e);
    }
    if (!mine.empty()) deliver(w, std::move(mine));
  }
  watches_.push_back(w);
  return subscription(w);
}

void fake_store::compact(int64_t revision) {
  revision = std::min(revision, revision_);
  if (revision <= compact_revision_) return;
  compact_revision_ = revision;
  std::erase_if(history_, [revision](const auto& h) { return h.first < revision; });
}

void fake_store::disconnect_watches() {
  for (const auto& w : watches_) {
    if (w->open()) end_watch(w, {watch_end::reason::disconnected, 0, store_errc::unavailable});
  }
  watches_.clear();
}

void fake_store::set_available(bool available) {
  available_ = available;
  if (!available) disconnect_watches();
}

size_t fake_store::open_watches() const {
  return static_cast<size_t>(
      std::count_if(watches_.begin(), watches_.end(), [](const auto& w) { return w->open(); }));
}

size_t fake_store::open_keep_alives() const {
  return static_cast<size_t>(std::count_if(keep_alives_.begin(), keep_alives_.end(),
                                           [](const auto& k) { return k->open(); }));
}

}  // namespace sluice::server::coordination

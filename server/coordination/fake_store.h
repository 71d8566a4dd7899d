#pragma once
// An in-memory metadata_store for the unit tests of what is built on it. It keeps etcd's
// semantics (one revision per change, create/mod revisions and versions, compares on absent keys,
// leases that delete their keys, watches replaying history from a revision), and lets the test do
// what etcd does on its own: a lease expires when the test says so, history is compacted, watch
// streams break, the store becomes unreachable. Nothing sleeps and nothing reads a clock.
//
// Calls complete at once; watch events and lost leases are posted to the executor, so they run
// in order on the next turns of the io_context, never inside the call that caused them.
//
// Threading: io thread only.

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>

#include "server/coordination/metadata_store.h"

namespace sluice::server::coordination {

class fake_store final : public metadata_store {
 public:
  // etcd 3.4's smallest grant with default election settings.
  static constexpr int64_t min_lease_ttl_seconds = 2;

  explicit fake_store(boost::asio::any_io_executor executor);
  // Cancels every watch and keep-alive: none of their callbacks runs after this.
  ~fake_store() override;
  fake_store(const fake_store&) = delete;
  fake_store& operator=(const fake_store&) = delete;

  boost::asio::awaitable<range_result> get(std::string key) override;
  boost::asio::awaitable<range_result> get_prefix(std::string prefix) override;
  boost::asio::awaitable<txn_result> txn(txn_request request) override;
  boost::asio::awaitable<lease_grant_result> grant_lease(int64_t ttl_seconds) override;
  boost::asio::awaitable<std::error_code> revoke_lease(int64_t lease) override;
  subscription keep_alive(int64_t lease, int64_t ttl_seconds,
                          std::function<void(std::error_code)> lost) override;
  subscription watch_prefix(std::string prefix, int64_t start_revision,
                            watch_callbacks callbacks) override;

  // The lease's TTL has passed without a renewal: its keys are deleted in one revision and its
  // keep-alives report lease_not_found, as when etcd expires a lease whose owner stalled. Returns
  // false if there is no such lease.
  bool expire_lease(int64_t lease);
  // Renewals of `lease` stop getting through: its keep-alives report unavailable, as when a whole
  // TTL passes without a confirmed renewal. The lease itself lives on, as it does in etcd until
  // its TTL runs out there (expire_lease).
  void lapse_keep_alives(int64_t lease);
  // Forgets history before `revision` (at most the current one): watches from an older start
  // revision end compacted from now on. Open watches are not affected, as in etcd.
  void compact(int64_t revision);
  // Every open watch ends disconnected, as when the connection to etcd breaks.
  void disconnect_watches();
  // While unavailable, calls fail with unavailable and new watches end disconnected at once;
  // becoming unavailable disconnects the open watches. Keep-alives are left to lapse_keep_alives.
  void set_available(bool available);

  int64_t revision() const { return revision_; }
  int64_t compact_revision() const { return compact_revision_; }
  bool has_lease(int64_t lease) const { return leases_.contains(lease); }
  // Subscriptions neither cancelled nor ended.
  size_t open_watches() const;
  size_t open_keep_alives() const;

 private:
  struct watch_entry;
  struct keep_alive_entry;
  struct lease_state {
    int64_t ttl_seconds = 0;
    std::set<std::string> keys;
  };

  range_result read(const std::string& key, bool prefix) const;
  // Checks a branch before anything is applied: rejected or lease_not_found, else no error.
  std::error_code check(const std::vector<operation>& ops) const;
  bool holds(const compare& c) const;
  // Applies `ops` as one revision (none if nothing changed) and tells the watches.
  void apply(const std::vector<operation>& ops);
  void erase_key(const std::string& key, int64_t revision, std::vector<watch_event>& events);
  // Takes the key off its lease's list, if it has a lease.
  void detach(const key_value& kv);
  void end_lease(int64_t lease);
  void notify(const std::vector<watch_event>& events);
  void deliver(const std::shared_ptr<watch_entry>& w, std::vector<watch_event> events);
  void end_watch(const std::shared_ptr<watch_entry>& w, watch_end end);
  void end_keep_alives(int64_t lease, std::error_code why);

  boost::asio::any_io_executor executor_;
  std::map<std::string, key_value> kvs_;
  int64_t revision_ = 1;  // an empty etcd starts at 1
  int64_t compact_revision_ = 0;
  // Every revision since compact_revision_ with its events, oldest first.
  std::vector<std::pair<int64_t, std::vector<watch_event>>> history_;
  std::map<int64_t, lease_state> leases_;
  int64_t next_lease_id_ = 7'587'000'000'000'000'001;
  std::vector<std::shared_ptr<watch_entry>> watches_;
  std::vector<std::shared_ptr<keep_alive_entry>> keep_alives_;
  bool available_ = true;
};

}  // namespace sluice::server::coordination

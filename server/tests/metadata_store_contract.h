#pragma once
// The contract of metadata_store, one typed test suite run against every implementation: the
// in-memory fake (fake_store_test.cc) and etcd itself (etcd_store_test.cc). What holds for etcd
// here holds for the fake, so that tests of later components written against the fake say
// something about the broker on etcd.
//
// A harness gives the suite what the interface does not: a store on an io_context, and ways to
// make etcd do what it does on its own (compact, drop a watch stream, expire a lease).
//
//   struct harness {
//     boost::asio::io_context io;
//     metadata_store& store();
//     void compact(int64_t revision);     // returns once history before it is gone
//     void break_watches();               // every watch stream breaks
//     void expire_lease(int64_t lease);   // returns once the lease expired (not kept alive)
//     std::chrono::milliseconds quiet();  // how long to wait to see that nothing comes
//     // How long to run the io_context for `d` of the store's time to pass (none in the fake).
//     std::chrono::milliseconds wall(std::chrono::milliseconds d);
//   };
//
// Every wait is bounded: run_until gives up after its timeout and the test fails.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "server/coordination/metadata_store.h"

namespace sluice::server::coordination::testing {

using namespace std::chrono_literals;

// Runs the io_context until `done` says so or `timeout` passes; returns `done()`.
inline bool run_until(boost::asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return done();
    if (io.stopped()) io.restart();
    const auto slice = std::min<std::chrono::steady_clock::duration>(deadline - now,
                                                                     std::chrono::milliseconds(20));
    // An io_context with no work returns at once: pause instead of spinning.
    if (io.run_one_for(slice) == 0 && io.stopped()) std::this_thread::sleep_for(1ms);
  }
  return true;
}

// Runs the io_context for `d` whatever happens: to see that something does not.
inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  const auto never = [] { return false; };
  run_until(io, never, d);
}

// Runs `call` to completion; throws if it does not complete within `timeout`.
template <typename T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> call,
      std::chrono::milliseconds timeout = 15s) {
  // Shared with the coroutine, which may outlive a timed-out wait.
  struct outcome {
    std::optional<T> value;
    std::exception_ptr failure;
    bool done = false;
  };
  auto out = std::make_shared<outcome>();
  boost::asio::co_spawn(io, std::move(call), [out](std::exception_ptr e, T v) {
    out->failure = e;
    if (!e) out->value = std::move(v);
    out->done = true;
  });
  const auto done = [&] { return out->done; };
  if (!run_until(io, done, timeout)) {
    throw std::runtime_error("a store call did not complete in time");
  }
  if (out->failure) std::rethrow_exception(out->failure);
  return std::move(*out->value);
}

// What a watch delivered.
struct watch_log {
  std::vector<watch_event> events;
  int batches = 0;
  std::optional<watch_end> end;
  int ends = 0;

  watch_callbacks callbacks() {
    return {[this](std::vector<watch_event> batch) {
              EXPECT_FALSE(batch.empty());
              EXPECT_FALSE(end.has_value()) << "events after the end";
              ++batches;
              for (auto& e : batch)
                events.push_back(std::move(e));
            },
            [this](const watch_end& e) {
              ++ends;
              end = e;
            }};
  }
};

inline key_value put_kv(std::string key, std::string value, int64_t create, int64_t mod,
                        int64_t version, int64_t lease = 0) {
  return {std::move(key), std::move(value), create, mod, version, lease};
}

template <typename Harness>
class metadata_store_contract : public ::testing::Test {
 protected:
  metadata_store& store() { return h_.store(); }
  boost::asio::io_context& io() { return h_.io; }

  template <typename T>
  T run(boost::asio::awaitable<T> call) {
    return testing::run(io(), std::move(call));
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    return testing::run_until(io(), done, timeout);
  }

  // A put that must work; returns its revision.
  int64_t put(std::string key, std::string value, int64_t lease = 0) {
    txn_result r = run(store().put(std::move(key), std::move(value), lease));
    EXPECT_FALSE(r.error) << r.error.message();
    EXPECT_TRUE(r.succeeded);
    return r.revision;
  }
  range_result get(std::string key) {
    range_result r = run(store().get(std::move(key)));
    EXPECT_FALSE(r.error) << r.error.message();
    return r;
  }
  range_result get_prefix(std::string prefix) {
    range_result r = run(store().get_prefix(std::move(prefix)));
    EXPECT_FALSE(r.error) << r.error.message();
    return r;
  }
  txn_result txn(txn_request request) { return run(store().txn(std::move(request))); }

  Harness h_;
};

TYPED_TEST_SUITE_P(metadata_store_contract);

TYPED_TEST_P(metadata_store_contract, an_absent_key_reads_as_nothing_at_the_current_revision) {
  range_result r = this->get("absent");
  EXPECT_TRUE(r.kvs.empty());
  EXPECT_GE(r.revision, 1);
  int64_t written = this->put("other", "x");
  EXPECT_EQ(this->get("absent").revision, written);
}

TYPED_TEST_P(metadata_store_contract, puts_move_revisions_and_versions) {
  const int64_t first = this->put("k", "v1");
  EXPECT_GT(first, 1);
  const int64_t second = this->put("k", "v2");
  EXPECT_EQ(second, first + 1);
  range_result r = this->get("k");
  EXPECT_EQ(r.revision, second);
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0], put_kv("k", "v2", first, second, 2));

  // A key deleted and put again starts over.
  txn_request erase;
  erase.success.push_back(operation::erase("k"));
  const int64_t erased = this->txn(std::move(erase)).revision;
  EXPECT_EQ(erased, second + 1);
  const int64_t again = this->put("k", "v3");
  r = this->get("k");
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0], put_kv("k", "v3", again, again, 1));
}

TYPED_TEST_P(metadata_store_contract, a_prefix_reads_its_keys_in_byte_order_and_no_others) {
  const std::string binary_key("p/\x00\xff\x01", 5);
  const std::string binary_value("\xff\x00v\n", 4);
  const int64_t b = this->put("p/b", "2");
  const int64_t a = this->put("p/a", "1");
  const int64_t bin = this->put(binary_key, binary_value);
  const int64_t empty = this->put("p/empty", "");
  this->put("p", "not under p/");
  this->put("p0", "a sibling");
  this->put("o/x", "before");
  range_result r = this->get_prefix("p/");
  ASSERT_EQ(r.kvs.size(), 4u);
  EXPECT_EQ(r.kvs[0], put_kv(binary_key, binary_value, bin, bin, 1));
  EXPECT_EQ(r.kvs[1], put_kv("p/a", "1", a, a, 1));
  EXPECT_EQ(r.kvs[2], put_kv("p/b", "2", b, b, 1));
  EXPECT_EQ(r.kvs[3], put_kv("p/empty", "", empty, empty, 1));

  // A prefix ending in 0xff has its range end one byte shorter.
  const std::string ff_prefix("q\xff", 2);
  this->put(ff_prefix + "x", "in");
  this->put("r", "out");
  r = this->get_prefix(ff_prefix);
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0].key, ff_prefix + "x");

  EXPECT_EQ(this->get_prefix("").kvs.size(), 9u);
}

TYPED_TEST_P(metadata_store_contract,
             a_txn_on_a_stale_mod_revision_fails_and_takes_the_failure_branch) {
  const int64_t first = this->put("leader", "broker-1");
  const int64_t second = this->put("leader", "broker-2");

  txn_request stale;
  stale.compares.push_back(compare::mod_revision("leader", compare_op::equal, first));
  stale.success.push_back(operation::put("leader", "broker-3"));
  stale.failure.push_back(operation::put("lost-race", "yes"));
  txn_result r = this->txn(stale);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.revision, second + 1);
  EXPECT_EQ(this->get("leader").kvs.at(0).value, "broker-2");
  EXPECT_EQ(this->get("lost-race").kvs.size(), 1u);

  // Nothing to apply on failure: the revision stays.
  stale.failure.clear();
  r = this->txn(stale);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_FALSE(r.succeeded);
  EXPECT_EQ(r.revision, second + 1);

  txn_request current;
  current.compares.push_back(compare::mod_revision("leader", compare_op::equal, second));
  current.success.push_back(operation::put("leader", "broker-3"));
  r = this->txn(current);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, second + 2);
  EXPECT_EQ(this->get("leader").kvs.at(0).value, "broker-3");
}

TYPED_TEST_P(metadata_store_contract, compares_on_versions_revisions_and_values) {
  auto holds = [this](compare c) {
    txn_request t;
    t.compares.push_back(std::move(c));
    txn_result r = this->txn(std::move(t));
    EXPECT_FALSE(r.error) << r.error.message();
    return r.succeeded;
  };
  // Create-if-absent: an absent key has create_revision 0.
  txn_request create;
  create.compares.push_back(compare::create_revision("id", compare_op::equal, 0));
  create.success.push_back(operation::put("id", "m"));
  EXPECT_TRUE(this->txn(create).succeeded);
  EXPECT_FALSE(this->txn(create).succeeded);
  const int64_t created = this->get("id").kvs.at(0).create_revision;
  this->put("id", "n");

  EXPECT_TRUE(holds(compare::version("id", compare_op::equal, 2)));
  EXPECT_TRUE(holds(compare::version("id", compare_op::greater, 1)));
  EXPECT_TRUE(holds(compare::version("id", compare_op::less, 3)));
  EXPECT_TRUE(holds(compare::version("id", compare_op::not_equal, 1)));
  EXPECT_FALSE(holds(compare::version("id", compare_op::greater, 2)));
  EXPECT_TRUE(holds(compare::create_revision("id", compare_op::equal, created)));
  EXPECT_TRUE(holds(compare::mod_revision("id", compare_op::greater, created)));
  EXPECT_TRUE(holds(compare::value_is("id", compare_op::equal, "n")));
  EXPECT_TRUE(holds(compare::value_is("id", compare_op::not_equal, "m")));
  EXPECT_TRUE(holds(compare::value_is("id", compare_op::greater, "m")));
  EXPECT_TRUE(holds(compare::value_is("id", compare_op::less, "o")));
  EXPECT_FALSE(holds(compare::value_is("id", compare_op::less, "n")));
  // An absent key: zero revisions and version, and no value compare holds.
  EXPECT_TRUE(holds(compare::version("nobody", compare_op::equal, 0)));
  EXPECT_TRUE(holds(compare::mod_revision("nobody", compare_op::less, 1)));
  EXPECT_FALSE(holds(compare::value_is("nobody", compare_op::not_equal, "x")));
  EXPECT_FALSE(holds(compare::value_is("nobody", compare_op::equal, "")));

  // All compares must hold.
  txn_request both;
  both.compares.push_back(compare::version("id", compare_op::equal, 2));
  both.compares.push_back(compare::value_is("id", compare_op::equal, "m"));
  EXPECT_FALSE(this->txn(both).succeeded);
}

TYPED_TEST_P(metadata_store_contract, one_txn_is_one_revision_and_erasing_nothing_is_none) {
  this->put("t/old/1", "x");
  const int64_t before = this->put("t/old/2", "y");
  txn_request t;
  t.success.push_back(operation::put("t/new/1", "a"));
  t.success.push_back(operation::put("t/new/2", "b"));
  t.success.push_back(operation::erase_prefix("t/old/"));
  txn_result r = this->txn(t);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_TRUE(r.succeeded);
  EXPECT_EQ(r.revision, before + 1);
  range_result all = this->get_prefix("t/");
  ASSERT_EQ(all.kvs.size(), 2u);
  EXPECT_EQ(all.kvs[0].mod_revision, before + 1);
  EXPECT_EQ(all.kvs[1].mod_revision, before + 1);

  txn_request nothing;
  nothing.success.push_back(operation::erase("t/absent"));
  nothing.success.push_back(operation::erase_prefix("t/old/"));
  r = this->txn(nothing);
  ASSERT_FALSE(r.error) << r.error.message();
  EXPECT_EQ(r.revision, before + 1);
}

TYPED_TEST_P(metadata_store_contract, writing_a_key_twice_in_one_branch_is_rejected) {
  const int64_t before = this->put("d", "0");
  txn_request twice;
  twice.success.push_back(operation::put("d", "1"));
  twice.success.push_back(operation::put("d", "2"));
  EXPECT_EQ(this->txn(twice).error, store_errc::rejected);

  txn_request put_and_erase;
  put_and_erase.success.push_back(operation::put("d/x", "1"));
  put_and_erase.failure.push_back(operation::put("e", "1"));
  put_and_erase.success.push_back(operation::erase_prefix("d/"));
  EXPECT_EQ(this->txn(put_and_erase).error, store_errc::rejected);

  txn_request empty_key;
  empty_key.success.push_back(operation::put("", "1"));
  EXPECT_EQ(this->txn(empty_key).error, store_errc::rejected);

  EXPECT_EQ(this->get("d").revision, before);
}

TYPED_TEST_P(metadata_store_contract, leases_carry_keys_until_revoked) {
  lease_grant_result lease = this->run(this->store().grant_lease(1));
  ASSERT_FALSE(lease.error) << lease.error.message();
  EXPECT_NE(lease.id, 0);
  EXPECT_GE(lease.ttl_seconds, 2) << "etcd 3.4 grants at least 2 s by default";

  const int64_t put = this->put("brokers/1", "host:9092", lease.id);
  range_result r = this->get("brokers/1");
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0], put_kv("brokers/1", "host:9092", put, put, 1, lease.id));

  // Put again without the lease: the key leaves it.
  this->put("brokers/2", "a", lease.id);
  this->put("brokers/2", "b");
  EXPECT_EQ(this->get("brokers/2").kvs.at(0).lease, 0);

  EXPECT_FALSE(this->run(this->store().revoke_lease(lease.id)));
  r = this->get_prefix("brokers/");
  ASSERT_EQ(r.kvs.size(), 1u);
  EXPECT_EQ(r.kvs[0].key, "brokers/2");
  EXPECT_EQ(r.revision, put + 3) << "the lease's keys go in one revision";

  EXPECT_EQ(this->run(this->store().revoke_lease(lease.id)), store_errc::lease_not_found);
  txn_result unknown = this->run(this->store().put("brokers/3", "x", lease.id));
  EXPECT_EQ(unknown.error, store_errc::lease_not_found);
  EXPECT_TRUE(this->get("brokers/3").kvs.empty());
}

TYPED_TEST_P(metadata_store_contract, a_keep_alive_owner_is_told_when_the_lease_is_revoked) {
  lease_grant_result lease = this->run(this->store().grant_lease(2));
  ASSERT_FALSE(lease.error) << lease.error.message();
  std::optional<std::error_code> lost;
  subscription keeping =
      this->store().keep_alive(lease.id, lease.ttl_seconds, [&](std::error_code ec) { lost = ec; });
  std::optional<std::error_code> other_lost;
  subscription cancelled = this->store().keep_alive(lease.id, lease.ttl_seconds,
                                                    [&](std::error_code ec) { other_lost = ec; });
  cancelled.cancel();
  // Renewals go on: nothing is lost for longer than the TTL.
  testing::run_for(this->io(), this->h_.wall(std::chrono::seconds(lease.ttl_seconds) + 500ms));
  EXPECT_FALSE(lost.has_value());

  EXPECT_FALSE(this->run(this->store().revoke_lease(lease.id)));
  ASSERT_TRUE(this->run_until([&] { return lost.has_value(); }));
  EXPECT_EQ(*lost, store_errc::lease_not_found);
  testing::run_for(this->io(), this->h_.quiet());
  EXPECT_FALSE(other_lost.has_value());
}

TYPED_TEST_P(metadata_store_contract, a_watch_from_a_read_sees_every_later_change_in_order) {
  this->put("w/before", "1");
  range_result read = this->get_prefix("w/");
  ASSERT_EQ(read.kvs.size(), 1u);
  watch_log log;
  subscription watching = this->store().watch_prefix("w/", read.revision + 1, log.callbacks());

  const int64_t r1 = this->put("w/a", "1");
  this->put("elsewhere", "x");
  const int64_t r3 = this->put("w/a", "2");
  txn_request t;
  t.success.push_back(operation::put("w/b", "3"));
  t.success.push_back(operation::erase("w/before"));
  const int64_t r4 = this->txn(t).revision;
  txn_request gone;
  gone.success.push_back(operation::erase_prefix("w/"));
  const int64_t r5 = this->txn(gone).revision;

  ASSERT_TRUE(this->run_until([&] { return log.events.size() >= 6; }));
  testing::run_for(this->io(), this->h_.quiet());
  ASSERT_EQ(log.events.size(), 6u);
  EXPECT_FALSE(log.end.has_value());
  using k = watch_event::kind;
  auto erased = [](std::string key, int64_t revision) {
    key_value kv;
    kv.key = std::move(key);
    kv.mod_revision = revision;
    return kv;
  };
  EXPECT_EQ(log.events[0].what, k::put);
  EXPECT_EQ(log.events[0].kv, put_kv("w/a", "1", r1, r1, 1));
  EXPECT_EQ(log.events[1].what, k::put);
  EXPECT_EQ(log.events[1].kv, put_kv("w/a", "2", r1, r3, 2));
  EXPECT_EQ(log.events[2].what, k::put);
  EXPECT_EQ(log.events[2].kv, put_kv("w/b", "3", r4, r4, 1));
  EXPECT_EQ(log.events[3].what, k::erase);
  EXPECT_EQ(log.events[3].kv, erased("w/before", r4));
  EXPECT_EQ(log.events[4].what, k::erase);
  EXPECT_EQ(log.events[4].kv, erased("w/a", r5));
  EXPECT_EQ(log.events[5].what, k::erase);
  EXPECT_EQ(log.events[5].kv, erased("w/b", r5));
}

TYPED_TEST_P(metadata_store_contract, a_watch_from_an_old_revision_replays_history) {
  const int64_t first = this->put("h/a", "1");
  this->put("h/b", "2");
  txn_request erase;
  erase.success.push_back(operation::erase("h/a"));
  const int64_t erased = this->txn(erase).revision;
  watch_log log;
  subscription watching = this->store().watch_prefix("h/", first, log.callbacks());
  ASSERT_TRUE(this->run_until([&] { return log.events.size() >= 3; }));
  ASSERT_EQ(log.events.size(), 3u);
  EXPECT_EQ(log.events[0].kv.key, "h/a");
  EXPECT_EQ(log.events[1].kv.key, "h/b");
  EXPECT_EQ(log.events[2].what, watch_event::kind::erase);
  EXPECT_EQ(log.events[2].kv.mod_revision, erased);

  // A watch from the future waits for it.
  watch_log later;
  subscription waiting = this->store().watch_prefix("h/", erased + 2, later.callbacks());
  this->put("h/c", "skipped: before the start");
  const int64_t counted = this->put("h/d", "seen");
  ASSERT_TRUE(this->run_until([&] { return !later.events.empty(); }));
  ASSERT_EQ(later.events.size(), 1u);
  EXPECT_EQ(later.events[0].kv.mod_revision, counted);
}

TYPED_TEST_P(metadata_store_contract, a_watch_from_a_compacted_revision_ends_compacted) {
  const int64_t first = this->put("c/a", "1");
  this->put("c/a", "2");
  const int64_t last = this->put("c/a", "3");
  watch_log open;
  subscription open_watch = this->store().watch_prefix("c/", last + 1, open.callbacks());
  this->h_.compact(last);

  watch_log log;
  subscription watching = this->store().watch_prefix("c/", first, log.callbacks());
  ASSERT_TRUE(this->run_until([&] { return log.end.has_value(); }));
  EXPECT_EQ(log.end->why, watch_end::reason::compacted);
  EXPECT_EQ(log.end->compact_revision, last);
  EXPECT_TRUE(log.events.empty());

  // The compact revision itself is still there; the watch open across compaction goes on.
  watch_log at;
  subscription at_watch = this->store().watch_prefix("c/", last, at.callbacks());
  const int64_t next = this->put("c/a", "4");
  ASSERT_TRUE(this->run_until([&] { return at.events.size() >= 2 && !open.events.empty(); }));
  EXPECT_EQ(at.events[0].kv.mod_revision, last);
  EXPECT_EQ(at.events[1].kv.mod_revision, next);
  EXPECT_EQ(open.events.at(0).kv.mod_revision, next);
  EXPECT_FALSE(at.end.has_value());
  EXPECT_FALSE(open.end.has_value());
  testing::run_for(this->io(), this->h_.quiet());
  EXPECT_EQ(log.ends, 1);
}

TYPED_TEST_P(metadata_store_contract, a_cancelled_watch_calls_nothing) {
  watch_log log;
  subscription watching =
      this->store().watch_prefix("x/", this->get("x/").revision + 1, log.callbacks());
  watch_log witness;
  subscription other =
      this->store().watch_prefix("x/", this->get("x/").revision + 1, witness.callbacks());
  this->put("x/1", "a");
  // The two watches are separate streams; either may deliver first.
  ASSERT_TRUE(this->run_until([&] { return !witness.events.empty() && !log.events.empty(); }));
  EXPECT_EQ(log.events.size(), 1u);
  watching.cancel();
  this->put("x/2", "b");
  ASSERT_TRUE(this->run_until([&] { return witness.events.size() == 2; }));
  this->h_.break_watches();
  ASSERT_TRUE(this->run_until([&] { return witness.end.has_value(); }));
  testing::run_for(this->io(), this->h_.quiet());
  EXPECT_EQ(log.events.size(), 1u);
  EXPECT_FALSE(log.end.has_value());
}

TYPED_TEST_P(metadata_store_contract, a_broken_watch_ends_disconnected_and_a_new_one_resumes) {
  const int64_t start = this->put("b/a", "1");
  watch_log log;
  subscription watching = this->store().watch_prefix("b/", start, log.callbacks());
  ASSERT_TRUE(this->run_until([&] { return log.events.size() == 1; }));
  this->h_.break_watches();
  ASSERT_TRUE(this->run_until([&] { return log.end.has_value(); }));
  EXPECT_EQ(log.end->why, watch_end::reason::disconnected);
  EXPECT_TRUE(log.end->error);

  const int64_t missed = this->put("b/a", "2");
  watch_log resumed;
  subscription again =
      this->store().watch_prefix("b/", log.events.back().kv.mod_revision + 1, resumed.callbacks());
  ASSERT_TRUE(this->run_until([&] { return !resumed.events.empty(); }));
  EXPECT_EQ(resumed.events[0].kv.mod_revision, missed);
  testing::run_for(this->io(), this->h_.quiet());
  EXPECT_EQ(log.ends, 1);
  EXPECT_EQ(log.events.size(), 1u);
}

TYPED_TEST_P(metadata_store_contract, an_expired_lease_takes_its_keys_and_cannot_be_kept_alive) {
  lease_grant_result lease = this->run(this->store().grant_lease(1));
  ASSERT_FALSE(lease.error) << lease.error.message();
  const int64_t put = this->put("e/broker", "1", lease.id);
  watch_log log;
  subscription watching = this->store().watch_prefix("e/", put + 1, log.callbacks());

  this->h_.expire_lease(lease.id);
  ASSERT_TRUE(this->run_until([&] { return !log.events.empty(); }));
  EXPECT_EQ(log.events[0].what, watch_event::kind::erase);
  EXPECT_EQ(log.events[0].kv.key, "e/broker");
  EXPECT_TRUE(this->get("e/broker").kvs.empty());

  std::optional<std::error_code> lost;
  subscription keeping =
      this->store().keep_alive(lease.id, lease.ttl_seconds, [&](std::error_code ec) { lost = ec; });
  ASSERT_TRUE(this->run_until([&] { return lost.has_value(); }));
  EXPECT_EQ(*lost, store_errc::lease_not_found);
}

REGISTER_TYPED_TEST_SUITE_P(
    metadata_store_contract, an_absent_key_reads_as_nothing_at_the_current_revision,
    puts_move_revisions_and_versions, a_prefix_reads_its_keys_in_byte_order_and_no_others,
    a_txn_on_a_stale_mod_revision_fails_and_takes_the_failure_branch,
    compares_on_versions_revisions_and_values, one_txn_is_one_revision_and_erasing_nothing_is_none,
    writing_a_key_twice_in_one_branch_is_rejected, leases_carry_keys_until_revoked,
    a_keep_alive_owner_is_told_when_the_lease_is_revoked,
    a_watch_from_a_read_sees_every_later_change_in_order,
    a_watch_from_an_old_revision_replays_history, a_watch_from_a_compacted_revision_ends_compacted,
    a_cancelled_watch_calls_nothing, a_broken_watch_ends_disconnected_and_a_new_one_resumes,
    an_expired_lease_takes_its_keys_and_cannot_be_kept_alive);

}  // namespace sluice::server::coordination::testing

// The in-memory metadata_store: the shared contract (metadata_store_contract.h), which etcd passes
// too, and the controls a test of a later component drives it with.

#include "server/coordination/fake_store.h"

#include <optional>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "server/tests/metadata_store_contract.h"

namespace sluice::server::coordination::testing {
namespace {

struct fake_harness {
  boost::asio::io_context io;
  fake_store fake{io.get_executor()};

  metadata_store& store() { return fake; }
  void compact(int64_t revision) { fake.compact(revision); }
  void break_watches() { fake.disconnect_watches(); }
  void expire_lease(int64_t lease) { ASSERT_TRUE(fake.expire_lease(lease)); }
  // Everything the fake does is posted: one drained io_context shows it.
  std::chrono::milliseconds quiet() { return 20ms; }
  // No time passes in the fake.
  std::chrono::milliseconds wall(std::chrono::milliseconds) { return 0ms; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(fake, metadata_store_contract, fake_harness);

class fake_store_test : public ::testing::Test {
 protected:
  template <typename T>
  T run(boost::asio::awaitable<T> call) {
    return testing::run(h_.io, std::move(call));
  }
  void drain() {
    h_.io.restart();
    h_.io.poll();
  }

  fake_harness h_;
  fake_store& fake_ = h_.fake;
};

TEST_F(fake_store_test, callbacks_run_on_later_turns_never_inside_the_call) {
  lease_grant_result lease = run(fake_.grant_lease(5));
  EXPECT_EQ(lease.ttl_seconds, 5);
  const int64_t put = run(fake_.put("a/1", "x", lease.id)).revision;
  // A history replay too.
  watch_log log;
  subscription watching = fake_.watch_prefix("a/", put, log.callbacks());
  std::optional<std::error_code> lost;
  subscription keeping =
      fake_.keep_alive(lease.id, lease.ttl_seconds, [&](std::error_code ec) { lost = ec; });
  EXPECT_TRUE(fake_.expire_lease(lease.id));
  EXPECT_TRUE(log.events.empty());
  EXPECT_FALSE(lost.has_value());
  drain();
  ASSERT_EQ(log.events.size(), 2u);
  EXPECT_EQ(log.events[1].what, watch_event::kind::erase);
  EXPECT_EQ(lost, std::optional<std::error_code>(store_errc::lease_not_found));
}

TEST_F(fake_store_test, an_expiry_reaches_keep_alives_that_are_running) {
  lease_grant_result lease = run(fake_.grant_lease(1));
  EXPECT_EQ(lease.ttl_seconds, fake_store::min_lease_ttl_seconds);
  run(fake_.put("brokers/1", "h:1", lease.id));
  std::optional<std::error_code> lost;
  subscription keeping =
      fake_.keep_alive(lease.id, lease.ttl_seconds, [&](std::error_code ec) { lost = ec; });
  EXPECT_EQ(fake_.open_keep_alives(), 1u);
  EXPECT_TRUE(fake_.expire_lease(lease.id));
  EXPECT_FALSE(fake_.has_lease(lease.id));
  EXPECT_FALSE(fake_.expire_lease(lease.id));
  drain();
  EXPECT_EQ(lost, std::optional<std::error_code>(store_errc::lease_not_found));
  EXPECT_EQ(fake_.open_keep_alives(), 0u);
  EXPECT_TRUE(run(fake_.get("brokers/1")).kvs.empty());
}

TEST_F(fake_store_test, a_lapsed_keep_alive_reports_unavailable_while_the_lease_lives_on) {
  lease_grant_result lease = run(fake_.grant_lease(3));
  run(fake_.put("brokers/1", "h:1", lease.id));
  std::optional<std::error_code> lost;
  subscription keeping =
      fake_.keep_alive(lease.id, lease.ttl_seconds, [&](std::error_code ec) { lost = ec; });
  fake_.lapse_keep_alives(lease.id);
  drain();
  EXPECT_EQ(lost, std::optional<std::error_code>(store_errc::unavailable));
  EXPECT_TRUE(fake_.has_lease(lease.id));
  EXPECT_EQ(run(fake_.get("brokers/1")).kvs.size(), 1u);
}

TEST_F(fake_store_test, an_unavailable_store_fails_calls_and_disconnects_watches) {
  watch_log log;
  subscription watching = fake_.watch_prefix("a/", 1, log.callbacks());
  fake_.set_available(false);
  drain();
  ASSERT_TRUE(log.end.has_value());
  EXPECT_EQ(log.end->why, watch_end::reason::disconnected);
  EXPECT_EQ(log.end->error, store_errc::unavailable);

  EXPECT_EQ(run(fake_.get("a")).error, store_errc::unavailable);
  EXPECT_EQ(run(fake_.get_prefix("a/")).error, store_errc::unavailable);
  EXPECT_EQ(run(fake_.put("a/1", "x")).error, store_errc::unavailable);
  EXPECT_EQ(run(fake_.grant_lease(2)).error, store_errc::unavailable);
  EXPECT_EQ(run(fake_.revoke_lease(1)), store_errc::unavailable);
  watch_log refused;
  subscription again = fake_.watch_prefix("a/", 1, refused.callbacks());
  drain();
  ASSERT_TRUE(refused.end.has_value());
  EXPECT_EQ(refused.end->why, watch_end::reason::disconnected);

  fake_.set_available(true);
  EXPECT_FALSE(run(fake_.put("a/1", "x")).error);
  EXPECT_EQ(fake_.revision(), 2);
}

TEST_F(fake_store_test, a_subscription_may_be_cancelled_from_its_own_callback) {
  watch_log witness;
  subscription other = fake_.watch_prefix("a/", 1, witness.callbacks());
  int calls = 0;
  subscription watching;
  watching = fake_.watch_prefix("a/", 1,
                                {[&](std::vector<watch_event>) {
                                   ++calls;
                                   watching.cancel();
                                 },
                                 [](const watch_end&) { ADD_FAILURE() << "ended after cancel"; }});
  run(fake_.put("a/1", "x"));
  run(fake_.put("a/2", "y"));
  drain();
  fake_.disconnect_watches();
  drain();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(witness.events.size(), 2u);
  EXPECT_EQ(fake_.open_watches(), 0u);
}

TEST_F(fake_store_test, nothing_is_called_once_the_store_is_gone) {
  watch_log log;
  std::optional<std::error_code> lost;
  subscription watching;
  subscription keeping;
  {
    fake_store store(h_.io.get_executor());
    lease_grant_result lease = run(store.grant_lease(2));
    const int64_t put = run(store.put("a/1", "x", lease.id)).revision;
    watching = store.watch_prefix("a/", put + 1, log.callbacks());
    keeping = store.keep_alive(lease.id, 2, [&](std::error_code ec) { lost = ec; });
    store.expire_lease(lease.id);
  }
  drain();
  EXPECT_TRUE(log.events.empty());
  EXPECT_FALSE(lost.has_value());
}

TEST_F(fake_store_test, compaction_keeps_the_compact_revision_and_never_goes_back) {
  run(fake_.put("a", "1"));
  run(fake_.put("a", "2"));
  fake_.compact(3);
  EXPECT_EQ(fake_.compact_revision(), 3);
  fake_.compact(2);
  EXPECT_EQ(fake_.compact_revision(), 3);
  fake_.compact(100);
  EXPECT_EQ(fake_.compact_revision(), fake_.revision());
}

}  // namespace
}  // namespace sluice::server::coordination::testing

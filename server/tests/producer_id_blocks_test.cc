// Producer ids of cluster members (producer_id_allocator over cluster::producer_id_blocks) on the
// fake store: brokers that reserve at the same moment never share an id (the loser of the race
// reads again), the next block is reserved ahead and need not follow the current one, a store
// error fails the waiting callers and a later call succeeds, skip_through and the stored block
// both bound where a block starts, and retries end.
//
// The store is reached through `shared_store`, which yields to the io_context on every call as a
// real store does, so that two brokers' reservations interleave, and can let another broker's
// block land before each transaction.

#include "server/cluster/producer_id_blocks.h"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <set>

#include "server/cluster/records.h"
#include "server/coordination/fake_store.h"
#include "server/tests/metadata_store_contract.h"

namespace sluice::server::cluster {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using coordination::fake_store;
using coordination::store_errc;
namespace testing = coordination::testing;

constexpr char prefix[] = "/test";
const std::string block_key = keys::producer_id_block(prefix);

class shared_store final : public coordination::metadata_store {
 public:
  explicit shared_store(fake_store& inner) : inner_(inner) {}

  asio::awaitable<coordination::range_result> get(std::string key) override {
    co_await yield();
    co_return co_await inner_.get(std::move(key));
  }
  asio::awaitable<coordination::range_result> get_prefix(std::string p) override {
    co_await yield();
    co_return co_await inner_.get_prefix(std::move(p));
  }
  asio::awaitable<coordination::txn_result> txn(coordination::txn_request request) override {
    co_await yield();
    if (interloper_ > 0) {
      // Another broker's block lands between this one's read and its write.
      --interloper_;
      coordination::range_result now = co_await inner_.get(block_key);
      int64_t first = 0;
      if (!now.kvs.empty()) first = decode_producer_id_block(now.kvs[0].value)->last_id + 1;
      std::string value = encode(producer_id_block_record{9, first, first + 999});
      coordination::txn_result other = co_await inner_.put(block_key, std::move(value));
      EXPECT_FALSE(other.error);
    }
    ++txns;
    coordination::txn_result r = co_await inner_.txn(std::move(request));
    if (!r.error && !r.succeeded) ++lost_races;
    co_return r;
  }
  asio::awaitable<coordination::lease_grant_result> grant_lease(int64_t ttl) override {
    co_return co_await inner_.grant_lease(ttl);
  }
  asio::awaitable<std::error_code> revoke_lease(int64_t lease) override {
    co_return co_await inner_.revoke_lease(lease);
  }
  coordination::subscription keep_alive(int64_t lease, int64_t ttl,
                                        std::function<void(std::error_code)> lost) override {
    return inner_.keep_alive(lease, ttl, std::move(lost));
  }
  coordination::subscription watch_prefix(std::string p, int64_t start,
                                          coordination::watch_callbacks callbacks) override {
    return inner_.watch_prefix(std::move(p), start, std::move(callbacks));
  }

  // The next `n` transactions each find another broker's block written just before them.
  void interpose(int n) { interloper_ = n; }

  int txns = 0;
  int lost_races = 0;

 private:
  static asio::awaitable<void> yield() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }

  fake_store& inner_;
  int interloper_ = 0;
};

// What one next() call got.
struct answer {
  bool done = false;
  std::error_code error;
  int64_t id = -1;
};

class producer_id_blocks_test : public ::testing::Test {
 protected:
  std::unique_ptr<producer_id_allocator> allocator(int32_t node_id) {
    auto a = std::make_unique<producer_id_allocator>(
        std::make_unique<producer_id_blocks>(io_.get_executor(), shared_, node_id, prefix));
    std::string problem;
    EXPECT_FALSE(a->load(problem)) << problem;
    return a;
  }
  // Asks for an id; the answer fills in as the io_context runs.
  std::shared_ptr<answer> ask(producer_id_allocator& a) {
    auto out = std::make_shared<answer>();
    a.next([out](std::error_code ec, int64_t id) {
      EXPECT_FALSE(out->done) << "answered twice";
      out->done = true;
      out->error = ec;
      out->id = id;
    });
    return out;
  }
  int64_t next(producer_id_allocator& a) {
    auto out = ask(a);
    EXPECT_TRUE(testing::run_until(
        io_, [&] { return out->done; }, 5s));
    EXPECT_FALSE(out->error) << out->error.message();
    return out->id;
  }
  std::optional<producer_id_block_record> stored() {
    coordination::range_result r = testing::run(io_, store_.get(block_key));
    if (r.kvs.empty()) return std::nullopt;
    return decode_producer_id_block(r.kvs[0].value);
  }

  asio::io_context io_;
  fake_store store_{io_.get_executor()};
  shared_store shared_{store_};
};

TEST_F(producer_id_blocks_test, brokers_reserving_together_never_share_an_id) {
  auto a = allocator(1);
  auto b = allocator(2);
  auto c = allocator(3);
  // Interleaved callers: every reservation of the three races the others' (each store call
  // yields), so transactions lose and read again.
  std::vector<std::shared_ptr<answer>> answers;
  for (int round = 0; round < 1600; ++round) {
    for (auto* x : {a.get(), b.get(), c.get()})
      answers.push_back(ask(*x));
    if (round % 50 == 0) testing::run_for(io_, 1ms);
  }
  ASSERT_TRUE(testing::run_until(io_, [&] {
    return std::all_of(answers.begin(), answers.end(), [](const auto& x) { return x->done; });
  }));
  std::set<int64_t> ids;
  for (const auto& x : answers) {
    ASSERT_FALSE(x->error) << x->error.message();
    EXPECT_TRUE(ids.insert(x->id).second) << "id " << x->id << " handed out twice";
  }
  EXPECT_EQ(ids.size(), answers.size());
  EXPECT_GT(shared_.lost_races, 0) << "no reservation raced another: the test proves nothing";
  // The stored block is the latest: nobody handed out an id above it.
  std::optional<producer_id_block_record> latest = stored();
  ASSERT_TRUE(latest);
  EXPECT_GE(latest->last_id, *ids.rbegin());
  EXPECT_EQ((latest->last_id + 1) % producer_id_allocator::block_size, 0);
}

TEST_F(producer_id_blocks_test, a_lost_race_reads_again_and_takes_the_block_after_the_winners) {
  auto a = allocator(1);
  shared_.interpose(1);
  EXPECT_EQ(next(*a), 1000);  // 0-999 went to broker 9 between the read and the write
  EXPECT_EQ(shared_.lost_races, 1);
  EXPECT_EQ(stored(), (producer_id_block_record{1, 1000, 1999}));
}

TEST_F(producer_id_blocks_test, the_next_block_is_reserved_ahead_and_need_not_follow) {
  auto a = allocator(1);
  auto b = allocator(2);
  EXPECT_EQ(next(*a), 0);
  EXPECT_EQ(next(*b), 1000);
  for (int64_t i = 1; i <= 500; ++i)
    EXPECT_EQ(next(*a), i);
  // Half of 0-999 is used: broker 1 took the next free block, after broker 2's.
  testing::run_for(io_, 20ms);
  EXPECT_EQ(stored(), (producer_id_block_record{1, 2000, 2999}));
  const int txns = shared_.txns;
  // The rest of 0-999, then 2000 on, each answered at once: nobody waits for the store.
  for (int64_t i = 0; i < 501; ++i) {
    const int64_t want = i < 499 ? 501 + i : 2000 + (i - 499);
    auto out = ask(*a);
    ASSERT_TRUE(out->done) << "waited for id " << want;
    EXPECT_EQ(out->id, want);
  }
  EXPECT_EQ(shared_.txns, txns);
}

TEST_F(producer_id_blocks_test, a_store_error_fails_the_waiting_callers_and_a_later_call_succeeds) {
  auto a = allocator(1);
  store_.set_available(false);
  auto first = ask(*a);
  auto second = ask(*a);
  ASSERT_TRUE(testing::run_until(
      io_, [&] { return first->done && second->done; }, 5s));
  EXPECT_EQ(first->error, store_errc::unavailable);
  EXPECT_EQ(first->id, -1);
  EXPECT_EQ(second->error, store_errc::unavailable);
  EXPECT_FALSE(stored());
  store_.set_available(true);
  EXPECT_EQ(next(*a), 0);
  EXPECT_EQ(next(*a), 1);
}

TEST_F(producer_id_blocks_test, a_block_starts_above_both_skipped_ids_and_the_stored_block) {
  auto a = allocator(1);
  a->skip_through(4999);
  EXPECT_EQ(next(*a), 5000);
  EXPECT_EQ(stored(), (producer_id_block_record{1, 5000, 5999}));
  // Another broker's partitions knew higher ids than any block: its block starts above them.
  auto b = allocator(2);
  b->skip_through(12'345);
  EXPECT_EQ(next(*b), 12'346);
  EXPECT_EQ(stored(), (producer_id_block_record{2, 12'346, 13'345}));
  // And a broker that skips less starts above the stored block.
  auto c = allocator(3);
  c->skip_through(10);
  EXPECT_EQ(next(*c), 13'346);
}

TEST_F(producer_id_blocks_test, retries_end_with_an_error_and_the_next_call_tries_again) {
  auto a = allocator(1);
  shared_.interpose(producer_id_blocks::max_attempts);
  auto out = ask(*a);
  ASSERT_TRUE(testing::run_until(
      io_, [&] { return out->done; }, 5s));
  EXPECT_EQ(out->error, producer_id_errc::contended);
  EXPECT_EQ(shared_.lost_races, producer_id_blocks::max_attempts);
  const int64_t others = stored()->last_id;
  EXPECT_EQ(next(*a), others + 1);
}

TEST_F(producer_id_blocks_test, a_malformed_stored_block_is_an_error_not_a_guess) {
  auto a = allocator(1);
  ASSERT_FALSE(testing::run(io_, store_.put(block_key, "12x")).error);
  auto out = ask(*a);
  ASSERT_TRUE(testing::run_until(
      io_, [&] { return out->done; }, 5s));
  EXPECT_EQ(out->error, producer_id_errc::malformed_block);
  EXPECT_EQ(shared_.txns, 0);
}

TEST_F(producer_id_blocks_test, an_allocator_gone_with_a_reservation_in_flight_is_not_called) {
  auto a = allocator(1);
  bool called = false;
  a->next([&](std::error_code, int64_t) { called = true; });
  a.reset();
  testing::run_for(io_, 20ms);
  EXPECT_FALSE(called);
}

}  // namespace
}  // namespace sluice::server::cluster

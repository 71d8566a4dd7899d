// cluster_member over the fake store: the cluster id is created once, a broker registers under
// its lease and follows the state, one broker wins the controller key and another takes it when
// the first leaves, a live duplicate node.id is refused and a dead previous incarnation waited
// out.

#include "server/cluster/cluster_member.h"

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>

#include "server/coordination/fake_store.h"
#include "server/tests/metadata_store_contract.h"

namespace sluice::server::cluster {
namespace {

using namespace std::chrono_literals;
using coordination::fake_store;
namespace testing = coordination::testing;

cluster_member_config config_for(int32_t node_id) {
  cluster_member_config c;
  c.node_id = node_id;
  c.prefix = "/test";
  c.listeners["PLAINTEXT"] = endpoint{"127.0.0.1", 9000 + node_id};
  c.session_timeout_ms = 2000;
  c.connection_timeout_ms = 500;
  c.retry_backoff_ms = 20;
  return c;
}

class cluster_member_test : public ::testing::Test {
 protected:
  std::unique_ptr<cluster_member> start(int32_t node_id) {
    auto m = std::make_unique<cluster_member>(io_, store_, config_for(node_id));
    std::string problem;
    EXPECT_FALSE(testing::run(io_, m->bootstrap(problem)).empty()) << problem;
    EXPECT_EQ(testing::run(io_, m->join()), "");
    return m;
  }
  bool run_until(const std::function<bool()>& done) { return testing::run_until(io_, done, 5s); }

  boost::asio::io_context io_;
  fake_store store_{io_.get_executor()};
};

TEST_F(cluster_member_test, the_first_broker_creates_the_cluster_id_and_the_others_read_it) {
  cluster_member a(io_, store_, config_for(1));
  cluster_member b(io_, store_, config_for(2));
  std::string problem;
  const std::string id = testing::run(io_, a.bootstrap(problem));
  ASSERT_EQ(id.size(), 22u);
  EXPECT_EQ(testing::run(io_, b.bootstrap(problem)), id);
  EXPECT_EQ(testing::run(io_, a.bootstrap(problem)), id);
}

TEST_F(cluster_member_test, an_unreachable_store_fails_the_bootstrap_after_the_timeout) {
  store_.set_available(false);
  cluster_member a(io_, store_, config_for(1));
  std::string problem;
  EXPECT_EQ(testing::run(io_, a.bootstrap(problem)), "");
  EXPECT_NE(problem.find("cluster id"), std::string::npos) << problem;
}

TEST_F(cluster_member_test, brokers_see_each_other_and_one_controller) {
  auto a = start(1);
  auto b = start(2);
  auto c = start(3);
  ASSERT_TRUE(run_until([&] {
    for (auto* m : {a.get(), b.get(), c.get()}) {
      if (m->image().brokers().size() != 3 || !m->image().controller()) return false;
    }
    return true;
  }));
  const int32_t controller = a->image().controller()->node_id;
  EXPECT_EQ(controller, 1);  // the first to join campaigns first
  EXPECT_EQ(b->image().controller()->node_id, controller);
  EXPECT_EQ(c->image().controller()->epoch, a->image().controller()->epoch);
  EXPECT_TRUE(a->is_controller());
  EXPECT_FALSE(b->is_controller());
  const live_broker* seen = c->image().broker(2);
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->epoch, b->broker_epoch());
  EXPECT_EQ(seen->record.listeners.at("PLAINTEXT").port, 9002);
  // Epochs are revisions, unique per registration.
  EXPECT_NE(a->broker_epoch(), b->broker_epoch());
}

TEST_F(cluster_member_test, a_leaving_controller_is_replaced_with_a_higher_epoch) {
  auto a = start(1);
  auto b = start(2);
  ASSERT_TRUE(run_until([&] { return a->is_controller() && b->image().controller(); }));
  const int64_t first_epoch = a->controller_epoch();
  bool left = false;
  a->leave([&] { left = true; });
  ASSERT_TRUE(run_until([&] { return left && b->is_controller(); }));
  EXPECT_GT(b->controller_epoch(), first_epoch);
  EXPECT_EQ(b->image().broker(1), nullptr);
}

TEST_F(cluster_member_test, an_expired_lease_loses_controllership_and_registers_again) {
  auto a = start(1);
  auto b = start(2);
  ASSERT_TRUE(run_until([&] { return a->is_controller() && b->image().brokers().size() == 2; }));
  const int64_t old_epoch = a->broker_epoch();
  ASSERT_TRUE(store_.expire_lease(a->lease()));
  ASSERT_TRUE(run_until([&] {
    const live_broker* again = b->image().broker(1);
    return b->is_controller() && again != nullptr && again->epoch > old_epoch;
  }));
  EXPECT_GT(a->broker_epoch(), old_epoch);
  EXPECT_FALSE(a->is_controller());
}

TEST_F(cluster_member_test, a_live_duplicate_node_id_is_refused) {
  auto a = start(1);
  cluster_member twin(io_, store_, config_for(1));
  std::string problem;
  ASSERT_FALSE(testing::run(io_, twin.bootstrap(problem)).empty());
  const std::string refused = testing::run(io_, twin.join(), 10s);
  EXPECT_NE(refused.find("node.id 1"), std::string::npos) << refused;
  // The twin's attempt left no trace: the first broker's registration is intact.
  const live_broker* still = a->image().broker(1);
  ASSERT_NE(still, nullptr);
  EXPECT_EQ(still->epoch, a->broker_epoch());
  EXPECT_EQ(twin.broker_epoch(), 0);
}

TEST_F(cluster_member_test, a_dead_previous_incarnation_is_waited_out) {
  auto old = start(1);
  const int64_t old_lease = old->lease();
  // A kill -9: nothing revokes the lease; the store expires it a while later.
  old.reset();
  cluster_member again(io_, store_, config_for(1));
  std::string problem;
  ASSERT_FALSE(testing::run(io_, again.bootstrap(problem)).empty());
  boost::asio::steady_timer expiry(io_, 200ms);
  expiry.async_wait([&](boost::system::error_code) { store_.expire_lease(old_lease); });
  EXPECT_EQ(testing::run(io_, again.join(), 10s), "");
  EXPECT_NE(again.broker_epoch(), 0);
}

TEST_F(cluster_member_test, a_compacted_watch_reads_the_state_again) {
  auto a = start(1);
  auto b = start(2);
  ASSERT_TRUE(run_until([&] { return a->image().brokers().size() == 2; }));
  store_.disconnect_watches();
  // While a's watch is down, b leaves and history is compacted past it.
  bool left = false;
  b->leave([&] { left = true; });
  ASSERT_TRUE(run_until([&] { return left; }));
  store_.compact(store_.revision());
  ASSERT_TRUE(run_until([&] { return a->image().brokers().size() == 1; }));
  EXPECT_EQ(a->image().broker(2), nullptr);
}

}  // namespace
}  // namespace sluice::server::cluster

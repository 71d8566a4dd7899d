// The controller over the fake store, in a cluster of three members of which broker 1 is the
// controller: topics created with every key, placement and Kafka's errors; a deposed controller
// and a non-controller write nothing; operations queued one behind the other; topics deleted and
// grown; topic configs replaced; ISR changes accepted and refused; a topic too large for one
// transaction becomes visible only once complete, and what an interrupted creation left is erased.
// Leadership: preferred and unclean elections, a controlled shutdown and the automatic return of
// leaders to their preferred replicas.
//
// Broker 1 reaches the store through `network_store`, which yields to the io_context on every
// call as a real store does (so that concurrent operations could interleave), can make chosen
// transactions fail, and can hold back broker 1's watch events to keep its image stale.

#include "server/cluster/controller.h"

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <deque>
#include <set>

#include "server/coordination/fake_store.h"
#include "server/tests/metadata_store_contract.h"
#include "storage/checkpoint.h"

namespace sluice::server::cluster {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using coordination::fake_store;
using coordination::key_value;
using coordination::store_errc;
using wire::error_code;
namespace testing = coordination::testing;

constexpr char prefix[] = "/test";

class network_store final : public coordination::metadata_store {
 public:
  explicit network_store(fake_store& inner) : inner_(inner) {}

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
    if (interloper_) {
      coordination::txn_request other = std::move(*interloper_);
      interloper_.reset();
      co_await inner_.txn(std::move(other));
    }
    ++txns;
    max_ops = std::max(max_ops, request.success.size());
    if (!failures_.empty() && failures_.front().number == txns) {
      planned_failure f = failures_.front();
      failures_.pop_front();
      if (f.apply_first) co_await inner_.txn(std::move(request));
      coordination::txn_result out;
      out.error = f.error;
      co_return out;
    }
    co_return co_await inner_.txn(std::move(request));
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
    auto w = std::make_shared<held_watch>();
    w->callbacks = std::move(callbacks);
    watches_.push_back(w);
    coordination::watch_callbacks mine;
    mine.events = [this, w](std::vector<coordination::watch_event> events) {
      if (holding_) {
        w->held.push_back(std::move(events));
      } else {
        w->callbacks.events(std::move(events));
      }
    };
    mine.ended = [w](const coordination::watch_end& end) { w->callbacks.ended(end); };
    w->inner = inner_.watch_prefix(std::move(p), start, std::move(mine));
    return cancel_handle(std::make_shared<watch_handle>(w));
  }

  // The `n`-th transaction from now fails with `error`, after being applied if `apply_first`.
  void fail_txn(int n, store_errc error, bool apply_first) {
    failures_.push_back({txns + n, make_error_code(error), apply_first});
  }
  // `other` lands just before the next transaction, as another writer's would between a read
  // and the write decided from it.
  void interpose(coordination::txn_request other) { interloper_ = std::move(other); }
  // Watch events wait until release().
  void hold_watches() { holding_ = true; }
  void release_watches() {
    holding_ = false;
    for (auto& w : watches_) {
      std::vector<std::vector<coordination::watch_event>> held = std::move(w->held);
      for (auto& events : held) {
        if (!w->cancelled) w->callbacks.events(std::move(events));
      }
    }
  }

  int txns = 0;
  size_t max_ops = 0;

 private:
  struct planned_failure {
    int number = 0;
    std::error_code error;
    bool apply_first = false;
  };
  struct held_watch {
    coordination::watch_callbacks callbacks;
    std::vector<std::vector<coordination::watch_event>> held;
    coordination::subscription inner;
    bool cancelled = false;
  };
  class watch_handle final : public cancel_handle::state {
   public:
    explicit watch_handle(std::shared_ptr<held_watch> w) : w_(std::move(w)) {}
    void cancel() override {
      w_->cancelled = true;
      w_->inner.cancel();
    }

   private:
    std::shared_ptr<held_watch> w_;
  };

  static asio::awaitable<void> yield() {
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }

  fake_store& inner_;
  std::deque<planned_failure> failures_;
  std::optional<coordination::txn_request> interloper_;
  std::vector<std::shared_ptr<held_watch>> watches_;
  bool holding_ = false;
};

cluster_member_config member_config(int32_t node_id) {
  cluster_member_config c;
  c.node_id = node_id;
  c.prefix = prefix;
  c.listeners["PLAINTEXT"] = endpoint{"127.0.0.1", 9000 + node_id};
  c.session_timeout_ms = 2000;
  c.connection_timeout_ms = 500;
  c.retry_backoff_ms = 20;
  return c;
}

controller_config controller_settings() {
  controller_config c;
  c.default_num_partitions = 3;
  c.default_replication_factor = 2;
  c.catch_up_timeout_ms = 2000;
  return c;
}

create_topic_request topic(std::string name, int32_t partitions, int16_t replication_factor) {
  create_topic_request r;
  r.name = std::move(name);
  r.num_partitions = partitions;
  r.replication_factor = replication_factor;
  return r;
}

class controller_test : public ::testing::Test {
 protected:
  void SetUp() override {
    members_.push_back(start(1, network_));
    ASSERT_TRUE(run_until([&] { return members_[0]->is_controller(); }));
    members_.push_back(start(2, store_));
    members_.push_back(start(3, store_));
    ASSERT_TRUE(run_until([&] {
      for (auto& m : members_) {
        if (m->image().brokers().size() != 3 || !m->image().controller()) return false;
      }
      return true;
    }));
    ASSERT_TRUE(members_[0]->is_controller());
    controller_ = std::make_unique<controller>(network_, *members_[0], settings_);
  }

  // Another broker is elected while broker 1 stops seeing changes: its image still names it
  // controller.
  void depose_broker_1() {
    network_.hold_watches();
    coordination::txn_request depose;
    depose.success.push_back(coordination::operation::erase(keys::controller(prefix)));
    ASSERT_TRUE(run(store_.txn(std::move(depose))).succeeded);
    ASSERT_TRUE(
        run_until([&] { return members_[1]->is_controller() || members_[2]->is_controller(); }));
    ASSERT_TRUE(members_[0]->is_controller());
  }

  std::unique_ptr<cluster_member> start(int32_t node_id, coordination::metadata_store& store) {
    auto m = std::make_unique<cluster_member>(io_, store, member_config(node_id));
    std::string problem;
    EXPECT_FALSE(testing::run(io_, m->bootstrap(problem)).empty()) << problem;
    EXPECT_EQ(testing::run(io_, m->join()), "");
    return m;
  }
  bool run_until(const std::function<bool()>& done) { return testing::run_until(io_, done, 5s); }
  template <typename T>
  T run(asio::awaitable<T> call) {
    return testing::run(io_, std::move(call));
  }

  std::vector<create_topic_result> create(std::vector<create_topic_request> requests) {
    return run(controller_->create_topics(std::move(requests)));
  }
  create_topic_result create_one(create_topic_request request) {
    std::vector<create_topic_result> r = create({std::move(request)});
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? create_topic_result{} : r.front();
  }
  create_topic_result create_ok(create_topic_request request) {
    create_topic_result r = create_one(std::move(request));
    EXPECT_EQ(r.error, error_code::none) << r.message;
    return r;
  }

  std::optional<key_value> get(const std::string& key) {
    coordination::range_result r = run(store_.get(key));
    EXPECT_FALSE(r.error);
    if (r.kvs.empty()) return std::nullopt;
    return r.kvs.front();
  }
  std::vector<key_value> get_prefix(const std::string& p) {
    coordination::range_result r = run(store_.get_prefix(p));
    EXPECT_FALSE(r.error);
    return r.kvs;
  }
  std::optional<topic_record> stored_topic(const wire::uuid& id) {
    std::optional<key_value> kv = get(keys::topic(prefix, id));
    return kv ? decode_topic(kv->value) : std::nullopt;
  }
  std::optional<partition_record> stored_partition(const wire::uuid& id, int32_t p) {
    std::optional<key_value> kv = get(keys::partition(prefix, id, p));
    return kv ? decode_partition(kv->value) : std::nullopt;
  }
  // Waits until broker 1's image shows the topic, as a leader learns of it.
  const partition_state* seen_partition(const wire::uuid& id, int32_t p) {
    EXPECT_TRUE(run_until([&] { return members_[0]->image().partition(id, p) != nullptr; }));
    return members_[0]->image().partition(id, p);
  }
  int64_t broker_epoch(int32_t id) { return members_[0]->image().broker(id)->epoch; }
  // Makes the topic's overrides `configs` (or refuses with `refusal`, if not empty).
  alter_topic_configs_result set_configs(const std::string& name,
                                         std::map<std::string, std::string> configs,
                                         bool validate_only = false, std::string refusal = "") {
    alter_topic_configs_request r;
    r.name = name;
    r.validate_only = validate_only;
    r.change = [configs, refusal](std::map<std::string, std::string>& stored) {
      stored = configs;
      return refusal;
    };
    return run(controller_->alter_topic_configs(std::move(r)));
  }

  asio::io_context io_;
  fake_store store_{io_.get_executor()};
  network_store network_{store_};
  controller_config settings_ = controller_settings();
  std::vector<std::unique_ptr<cluster_member>> members_;
  std::unique_ptr<controller> controller_;
};

TEST_F(controller_test, a_created_topic_has_every_key_and_spreads_its_leaders) {
  create_topic_request request = topic("orders", 6, 2);
  request.configs["retention.ms"] = "60000";
  create_topic_result r = create_ok(request);
  EXPECT_EQ(r.name, "orders");
  EXPECT_EQ(r.num_partitions, 6);
  EXPECT_EQ(r.replication_factor, 2);
  ASSERT_NE(r.topic_id, wire::uuid{});

  std::optional<key_value> name = get(keys::topic_name(prefix, "orders"));
  ASSERT_TRUE(name);
  EXPECT_EQ(name->value, storage::uuid_to_base64(r.topic_id));
  std::optional<topic_record> record = stored_topic(r.topic_id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->name, "orders");
  EXPECT_EQ(record->configs, (std::map<std::string, std::string>{{"retention.ms", "60000"}}));
  ASSERT_EQ(record->replicas.size(), 6u);
  std::map<int32_t, int> leaders;
  for (int32_t p = 0; p < 6; ++p) {
    const std::vector<int32_t>& replicas = record->replicas[static_cast<size_t>(p)];
    ASSERT_EQ(replicas.size(), 2u);
    EXPECT_NE(replicas[0], replicas[1]);
    for (int32_t b : replicas)
      EXPECT_TRUE(b >= 1 && b <= 3) << b;
    std::optional<partition_record> state = stored_partition(r.topic_id, p);
    ASSERT_TRUE(state) << p;
    EXPECT_EQ(state->leader, replicas[0]);
    EXPECT_EQ(state->leader_epoch, 0);
    EXPECT_EQ(state->isr, replicas);
    ++leaders[state->leader];
  }
  EXPECT_EQ(leaders, (std::map<int32_t, int>{{1, 2}, {2, 2}, {3, 2}}));
  // Nothing else: six partition keys.
  EXPECT_EQ(get_prefix(keys::partitions(prefix, r.topic_id)).size(), 6u);
  // Every broker learns of it.
  ASSERT_TRUE(run_until([&] { return members_[2]->image().topic_id("orders") == r.topic_id; }));
}

TEST_F(controller_test, unset_counts_take_the_defaults) {
  create_topic_result r = create_ok(topic("defaults", -1, -1));
  EXPECT_EQ(r.num_partitions, 3);
  EXPECT_EQ(r.replication_factor, 2);
  std::optional<topic_record> record = stored_topic(r.topic_id);
  ASSERT_TRUE(record);
  ASSERT_EQ(record->replicas.size(), 3u);
  EXPECT_EQ(record->replicas[0].size(), 2u);
}

TEST_F(controller_test, a_replication_factor_above_the_live_brokers_is_refused) {
  create_topic_result r = create_one(topic("wide", 1, 4));
  EXPECT_EQ(r.error, error_code::invalid_replication_factor);
  EXPECT_EQ(r.message,
            "Unable to replicate the partition 4 time(s): The target replication factor of 4 "
            "cannot be reached because only 3 broker(s) are registered.");
  EXPECT_EQ(r.topic_id, wire::uuid{});
  EXPECT_FALSE(get(keys::topic_name(prefix, "wide")));
  EXPECT_TRUE(get_prefix(keys::topics(prefix)).empty());
}

TEST_F(controller_test, an_existing_or_repeated_name_is_refused) {
  create_ok(topic("taken", 1, 1));
  const int64_t before = store_.revision();
  create_topic_result again = create_one(topic("taken", 2, 1));
  EXPECT_EQ(again.error, error_code::topic_already_exists);
  EXPECT_EQ(again.message, "Topic 'taken' already exists.");

  // Kafka refuses every occurrence of a name given twice in one request.
  std::vector<create_topic_result> twice = create({topic("twin", 1, 1), topic("twin", 1, 1)});
  ASSERT_EQ(twice.size(), 2u);
  for (const create_topic_result& r : twice) {
    EXPECT_EQ(r.error, error_code::invalid_request);
    EXPECT_EQ(r.message, "Duplicate topic name.");
  }
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_test, invalid_requests_get_kafkas_errors) {
  create_ok(topic("a.b", 1, 1));
  const int64_t before = store_.revision();
  auto error_of = [&](create_topic_request request) { return create_one(std::move(request)); };

  create_topic_result bad_name = error_of(topic("bad/name", 1, 1));
  EXPECT_EQ(bad_name.error, error_code::invalid_topic_exception);
  EXPECT_EQ(bad_name.message,
            "Topic name \"bad/name\" is illegal, it contains a character other than ASCII "
            "alphanumerics, '.', '_' and '-'");
  create_topic_result collides = error_of(topic("a_b", 1, 1));
  EXPECT_EQ(collides.error, error_code::invalid_topic_exception);
  EXPECT_EQ(collides.message, "Topic 'a_b' collides with existing topic: a.b");
  EXPECT_EQ(error_of(topic("none", 0, 1)).error, error_code::invalid_partitions);
  EXPECT_EQ(error_of(topic("none", -2, 1)).error, error_code::invalid_partitions);
  EXPECT_EQ(error_of(topic("none", 1, 0)).error, error_code::invalid_replication_factor);

  create_topic_request counted = topic("manual", 1, -1);
  counted.assignments[0] = {1};
  EXPECT_EQ(error_of(counted).error, error_code::invalid_request);
  create_topic_request unknown_broker = topic("manual", -1, -1);
  unknown_broker.assignments[0] = {1, 9};
  create_topic_result unknown = error_of(unknown_broker);
  EXPECT_EQ(unknown.error, error_code::invalid_replica_assignment);
  EXPECT_EQ(unknown.message,
            "The manual partition assignment includes broker 9, but no such broker is "
            "registered.");
  create_topic_request duplicate = topic("manual", -1, -1);
  duplicate.assignments[0] = {2, 2};
  create_topic_result dup = error_of(duplicate);
  EXPECT_EQ(dup.error, error_code::invalid_replica_assignment);
  EXPECT_EQ(dup.message, "The manual partition assignment includes the broker 2 more than once.");
  create_topic_request uneven = topic("manual", -1, -1);
  uneven.assignments[0] = {1, 2};
  uneven.assignments[1] = {3};
  EXPECT_EQ(error_of(uneven).error, error_code::invalid_replica_assignment);
  create_topic_request gap = topic("manual", -1, -1);
  gap.assignments[0] = {1};
  gap.assignments[2] = {2};
  EXPECT_EQ(error_of(gap).error, error_code::invalid_replica_assignment);
  EXPECT_EQ(store_.revision(), before);

  create_topic_request manual = topic("manual", -1, -1);
  manual.assignments[0] = {3, 1};
  manual.assignments[1] = {2, 3};
  create_topic_result made = create_ok(manual);
  EXPECT_EQ(made.num_partitions, 2);
  EXPECT_EQ(made.replication_factor, 2);
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->replicas, (std::vector<std::vector<int32_t>>{{3, 1}, {2, 3}}));
  std::optional<partition_record> first = stored_partition(made.topic_id, 0);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->leader, 3);
}

TEST_F(controller_test, too_many_partitions_in_one_request_is_a_policy_violation) {
  settings_.max_partitions_per_request = 10;
  controller_ = std::make_unique<controller>(network_, *members_[0], settings_);
  const int64_t before = store_.revision();
  std::vector<create_topic_result> r = create({topic("small", 1, 1), topic("large", 10, 1)});
  ASSERT_EQ(r.size(), 2u);
  for (const create_topic_result& each : r) {
    EXPECT_EQ(each.error, error_code::policy_violation);
    EXPECT_EQ(each.message, "Excessively large number of partitions per request.");
  }
  EXPECT_EQ(store_.revision(), before);
  EXPECT_EQ(create_ok(topic("large", 10, 1)).num_partitions, 10);
}

TEST_F(controller_test, validate_only_checks_everything_and_writes_nothing) {
  const int64_t before = store_.revision();
  create_topic_request request = topic("dry", 4, 3);
  request.validate_only = true;
  create_topic_result r = create_ok(request);
  EXPECT_EQ(r.num_partitions, 4);
  EXPECT_EQ(r.replication_factor, 3);
  EXPECT_EQ(r.topic_id, wire::uuid{});
  create_topic_request too_wide = topic("dry", 4, 5);
  too_wide.validate_only = true;
  EXPECT_EQ(create_one(too_wide).error, error_code::invalid_replication_factor);
  EXPECT_EQ(store_.revision(), before);
  EXPECT_FALSE(get(keys::topic_name(prefix, "dry")));

  create_ok(topic("grown", 1, 1));
  const int64_t after_create = store_.revision();
  create_partitions_request grow{"grown", 3, std::nullopt, true};
  create_partitions_result g = run(controller_->create_partitions(grow));
  EXPECT_EQ(g.error, error_code::none) << g.message;
  EXPECT_EQ(store_.revision(), after_create);
}

TEST_F(controller_test, a_deposed_controller_writes_nothing) {
  depose_broker_1();
  if (HasFatalFailure()) return;

  const int64_t before = store_.revision();
  create_topic_result r = create_one(topic("fenced", 3, 2));
  EXPECT_EQ(r.error, error_code::not_controller);
  EXPECT_EQ(r.topic_id, wire::uuid{});
  EXPECT_EQ(store_.revision(), before);
  EXPECT_FALSE(get(keys::topic_name(prefix, "fenced")));
  EXPECT_TRUE(get_prefix(std::string(prefix) + "/partitions/").empty());

  // Once it sees the election it refuses without trying.
  network_.release_watches();
  ASSERT_TRUE(run_until([&] { return !members_[0]->is_controller(); }));
  // Broker 1's member campaigns on seeing the key go; its attempt is not the controller's.
  testing::run_for(io_, 100ms);
  const int txns = network_.txns;
  EXPECT_EQ(create_one(topic("fenced", 3, 2)).error, error_code::not_controller);
  EXPECT_EQ(network_.txns, txns);
}

TEST_F(controller_test, a_broker_that_is_not_the_controller_refuses_every_operation) {
  controller other(store_, *members_[1], settings_);
  const int64_t before = store_.revision();
  std::vector<create_topic_result> created = run(other.create_topics({topic("elsewhere", 1, 1)}));
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].error, error_code::not_controller);
  std::vector<delete_topic_result> deleted = run(other.delete_topics({{"elsewhere", {}}}));
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0].error, error_code::not_controller);
  EXPECT_EQ(run(other.create_partitions({"elsewhere", 2, std::nullopt, false})).error,
            error_code::not_controller);
  alter_partition_request alter;
  alter.broker_id = 2;
  EXPECT_EQ(run(other.alter_partition(alter)).error, error_code::not_controller);
  alter_topic_configs_request configs;
  configs.name = "elsewhere";
  configs.change = [](std::map<std::string, std::string>&) { return std::string(); };
  EXPECT_EQ(run(other.alter_topic_configs(std::move(configs))).error, error_code::not_controller);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_test, concurrent_operations_run_one_after_the_other) {
  const int txns = network_.txns;
  std::vector<std::vector<create_topic_result>> results(2);
  int done = 0;
  for (auto& out : results) {
    asio::co_spawn(io_, controller_->create_topics({topic("race", 2, 2)}),
                   [&out, &done](std::exception_ptr e, std::vector<create_topic_result> r) {
                     EXPECT_FALSE(e);
                     out = std::move(r);
                     ++done;
                   });
  }
  ASSERT_TRUE(run_until([&] { return done == 2; }));
  ASSERT_EQ(results[0].size(), 1u);
  ASSERT_EQ(results[1].size(), 1u);
  // The first in is the one created; the second decided from a state that showed it, without
  // trying a write.
  EXPECT_EQ(results[0][0].error, error_code::none) << results[0][0].message;
  EXPECT_EQ(results[1][0].error, error_code::topic_already_exists);
  EXPECT_EQ(network_.txns, txns + 1);
  EXPECT_EQ(get_prefix(keys::topics(prefix)).size(), 1u);
}

TEST_F(controller_test, the_next_decision_waits_for_the_image_to_show_the_last_write) {
  settings_.catch_up_timeout_ms = 300;
  controller_ = std::make_unique<controller>(network_, *members_[0], settings_);
  network_.hold_watches();
  create_ok(topic("lagging", 1, 1));
  const int txns = network_.txns;

  std::optional<create_topic_result> waited;
  asio::co_spawn(
      io_, controller_->create_topics({topic("lagging", 1, 1)}),
      [&waited](std::exception_ptr, std::vector<create_topic_result> r) { waited = r.at(0); });
  testing::run_for(io_, 100ms);
  EXPECT_FALSE(waited);
  network_.release_watches();
  ASSERT_TRUE(run_until([&] { return waited.has_value(); }));
  EXPECT_EQ(waited->error, error_code::topic_already_exists);
  EXPECT_EQ(network_.txns, txns);

  // An image that does not catch up in time fails the operation, and nothing is tried.
  network_.hold_watches();
  create_ok(topic("stuck", 1, 1));
  const int before = network_.txns;
  EXPECT_EQ(create_one(topic("other", 1, 1)).error, error_code::request_timed_out);
  EXPECT_EQ(network_.txns, before);
  network_.release_watches();
  EXPECT_EQ(create_one(topic("stuck", 1, 1)).error, error_code::topic_already_exists);
  EXPECT_EQ(create_ok(topic("other", 1, 1)).num_partitions, 1);
}

TEST_F(controller_test, a_deleted_name_is_created_again_with_a_new_id) {
  create_topic_result first = create_ok(topic("again", 2, 2));
  std::vector<delete_topic_result> deleted = run(controller_->delete_topics({{"again", {}}}));
  ASSERT_EQ(deleted.size(), 1u);
  EXPECT_EQ(deleted[0].error, error_code::none) << deleted[0].message;
  EXPECT_EQ(deleted[0].id, first.topic_id);
  EXPECT_FALSE(get(keys::topic_name(prefix, "again")));
  EXPECT_FALSE(get(keys::topic(prefix, first.topic_id)));
  EXPECT_TRUE(get_prefix(keys::partitions(prefix, first.topic_id)).empty());

  create_topic_result second = create_ok(topic("again", 1, 1));
  EXPECT_NE(second.topic_id, first.topic_id);
  std::optional<key_value> name = get(keys::topic_name(prefix, "again"));
  ASSERT_TRUE(name);
  EXPECT_EQ(name->value, storage::uuid_to_base64(second.topic_id));

  // By id; and what is not there.
  std::vector<delete_topic_result> more = run(controller_->delete_topics(
      {{"", second.topic_id}, {"again", {}}, {"", first.topic_id}, {"never", {}}}));
  ASSERT_EQ(more.size(), 4u);
  EXPECT_EQ(more[0].error, error_code::none) << more[0].message;
  EXPECT_EQ(more[0].name, "again");
  EXPECT_EQ(more[1].error, error_code::unknown_topic_or_partition);
  EXPECT_EQ(more[2].error, error_code::unknown_topic_id);
  EXPECT_EQ(more[3].error, error_code::unknown_topic_or_partition);
  EXPECT_TRUE(get_prefix(keys::topics(prefix)).empty());
  EXPECT_TRUE(get_prefix(std::string(prefix) + "/topic_names/").empty());
}

TEST_F(controller_test, create_partitions_grows_a_topic_and_continues_the_leader_spread) {
  create_topic_result made = create_ok(topic("grow", 3, 2));
  std::optional<key_value> before0 = get(keys::partition(prefix, made.topic_id, 0));
  ASSERT_TRUE(before0);

  create_partitions_result grown = run(controller_->create_partitions({"grow", 6, std::nullopt}));
  EXPECT_EQ(grown.error, error_code::none) << grown.message;
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  ASSERT_EQ(record->replicas.size(), 6u);
  std::set<int32_t> new_leaders;
  for (int32_t p = 3; p < 6; ++p) {
    const std::vector<int32_t>& replicas = record->replicas[static_cast<size_t>(p)];
    EXPECT_EQ(replicas.size(), 2u);
    std::optional<partition_record> state = stored_partition(made.topic_id, p);
    ASSERT_TRUE(state) << p;
    EXPECT_EQ(state->leader, replicas.front());
    EXPECT_EQ(state->isr, replicas);
    new_leaders.insert(state->leader);
  }
  EXPECT_EQ(new_leaders, (std::set<int32_t>{1, 2, 3}));
  // The existing partitions are untouched.
  std::optional<key_value> after0 = get(keys::partition(prefix, made.topic_id, 0));
  ASSERT_TRUE(after0);
  EXPECT_EQ(after0->mod_revision, before0->mod_revision);

  const int64_t before = store_.revision();
  create_partitions_result same = run(controller_->create_partitions({"grow", 6, std::nullopt}));
  EXPECT_EQ(same.error, error_code::invalid_partitions);
  EXPECT_EQ(same.message, "Topic already has 6 partition(s).");
  create_partitions_result fewer = run(controller_->create_partitions({"grow", 4, std::nullopt}));
  EXPECT_EQ(fewer.error, error_code::invalid_partitions);
  EXPECT_EQ(fewer.message,
            "The topic grow currently has 6 partition(s); 4 would not be an increase.");
  EXPECT_EQ(run(controller_->create_partitions({"absent", 4, std::nullopt})).error,
            error_code::unknown_topic_or_partition);
  create_partitions_result short_list =
      run(controller_->create_partitions({"grow", 8, std::vector<std::vector<int32_t>>{{1, 2}}}));
  EXPECT_EQ(short_list.error, error_code::invalid_replica_assignment);
  create_partitions_result wrong_width = run(
      controller_->create_partitions({"grow", 7, std::vector<std::vector<int32_t>>{{1, 2, 3}}}));
  EXPECT_EQ(wrong_width.error, error_code::invalid_replica_assignment);
  EXPECT_EQ(store_.revision(), before);

  create_partitions_result manual =
      run(controller_->create_partitions({"grow", 7, std::vector<std::vector<int32_t>>{{3, 1}}}));
  EXPECT_EQ(manual.error, error_code::none) << manual.message;
  record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  ASSERT_EQ(record->replicas.size(), 7u);
  EXPECT_EQ(record->replicas[6], (std::vector<int32_t>{3, 1}));
}

TEST_F(controller_test, topic_configs_are_replaced_in_the_topic_record) {
  create_topic_request request = topic("tuned", 3, 2);
  request.configs["retention.ms"] = "60000";
  create_topic_result made = create_ok(request);
  std::optional<topic_record> before = stored_topic(made.topic_id);
  ASSERT_TRUE(before);

  // The change is given what the store holds.
  std::map<std::string, std::string> given;
  alter_topic_configs_request edit;
  edit.name = "tuned";
  edit.change = [&given](std::map<std::string, std::string>& stored) {
    given = stored;
    stored.erase("retention.ms");
    stored["segment.bytes"] = "1048576";
    return std::string();
  };
  alter_topic_configs_result r = run(controller_->alter_topic_configs(std::move(edit)));
  EXPECT_EQ(r.error, error_code::none) << r.message;
  EXPECT_EQ(given, (std::map<std::string, std::string>{{"retention.ms", "60000"}}));
  std::optional<key_value> kv = get(keys::topic(prefix, made.topic_id));
  ASSERT_TRUE(kv);
  EXPECT_EQ(r.revision, kv->mod_revision);
  std::optional<topic_record> after = decode_topic(kv->value);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->configs, (std::map<std::string, std::string>{{"segment.bytes", "1048576"}}));
  // Only the configs changed: the name and the assignment are as they were, and no partition
  // key was touched.
  EXPECT_EQ(after->name, before->name);
  EXPECT_EQ(after->replicas, before->replicas);
  for (const key_value& p : get_prefix(keys::partitions(prefix, made.topic_id)))
    EXPECT_LT(p.mod_revision, r.revision) << p.key;
  // Every broker's image shows it.
  ASSERT_TRUE(run_until([&] {
    const topic_record* seen = members_[2]->image().topic(made.topic_id);
    return seen != nullptr && seen->configs == after->configs;
  }));

  // Back to no overrides at all.
  EXPECT_EQ(set_configs("tuned", {}).error, error_code::none);
  after = stored_topic(made.topic_id);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->configs.empty());
}

TEST_F(controller_test, refused_unchanged_and_validate_only_config_changes_write_nothing) {
  create_topic_request request = topic("steady", 1, 1);
  request.configs["retention.ms"] = "60000";
  create_topic_result made = create_ok(request);
  const int64_t before = store_.revision();
  const int txns = network_.txns;

  alter_topic_configs_result dry = set_configs("steady", {{"retention.ms", "1000"}}, true);
  EXPECT_EQ(dry.error, error_code::none) << dry.message;
  EXPECT_EQ(dry.revision, 0);
  alter_topic_configs_result refused =
      set_configs("steady", {{"retention.ms", "-5"}}, false, "Invalid value -5 for retention.ms");
  EXPECT_EQ(refused.error, error_code::invalid_config);
  EXPECT_EQ(refused.message, "Invalid value -5 for retention.ms");
  EXPECT_EQ(set_configs("steady", {{"retention.ms", "1"}}, true, "no").error,
            error_code::invalid_config);
  alter_topic_configs_result same = set_configs("steady", {{"retention.ms", "60000"}});
  EXPECT_EQ(same.error, error_code::none) << same.message;
  EXPECT_EQ(same.revision, 0);
  alter_topic_configs_result absent = set_configs("absent", {{"retention.ms", "1"}});
  EXPECT_EQ(absent.error, error_code::unknown_topic_or_partition);
  EXPECT_EQ(store_.revision(), before);
  EXPECT_EQ(network_.txns, txns);
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->configs, (std::map<std::string, std::string>{{"retention.ms", "60000"}}));
}

TEST_F(controller_test, concurrent_config_changes_each_apply_to_the_previous_ones_result) {
  create_topic_result made = create_ok(topic("merged", 1, 1));
  // Two incremental changes queued together: the second is given the first's result, so neither
  // undoes the other.
  int done = 0;
  for (const char* name : {"retention.ms", "segment.ms"}) {
    alter_topic_configs_request r;
    r.name = "merged";
    r.change = [name](std::map<std::string, std::string>& stored) {
      stored[name] = "1000";
      return std::string();
    };
    asio::co_spawn(io_, controller_->alter_topic_configs(std::move(r)),
                   [&done](std::exception_ptr e, alter_topic_configs_result result) {
                     EXPECT_FALSE(e);
                     EXPECT_EQ(result.error, error_code::none) << result.message;
                     ++done;
                   });
  }
  ASSERT_TRUE(run_until([&] { return done == 2; }));
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->configs,
            (std::map<std::string, std::string>{{"retention.ms", "1000"}, {"segment.ms", "1000"}}));
}

TEST_F(controller_test, a_config_change_over_a_record_changed_since_its_read_is_not_written) {
  create_topic_result made = create_ok(topic("raced", 1, 1));
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  // Another write of the topic record lands between the controller's read and its write.
  topic_record other = *record;
  other.configs["retention.ms"] = "5";
  coordination::txn_request interloper;
  interloper.success.push_back(
      coordination::operation::put(keys::topic(prefix, made.topic_id), encode(other)));
  network_.interpose(std::move(interloper));
  alter_topic_configs_result r = set_configs("raced", {{"segment.ms", "1000"}});
  EXPECT_EQ(r.error, error_code::unknown_server_error);
  EXPECT_EQ(r.revision, 0);
  record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->configs, (std::map<std::string, std::string>{{"retention.ms", "5"}}));
}

TEST_F(controller_test, a_deposed_controller_changes_no_configs) {
  create_topic_result made = create_ok(topic("fenced-configs", 1, 1));
  ASSERT_TRUE(
      run_until([&] { return members_[0]->image().topic_id("fenced-configs").has_value(); }));
  depose_broker_1();
  if (HasFatalFailure()) return;

  const int64_t before = store_.revision();
  EXPECT_EQ(set_configs("fenced-configs", {{"retention.ms", "1000"}}).error,
            error_code::not_controller);
  EXPECT_EQ(store_.revision(), before);
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  EXPECT_TRUE(record->configs.empty());
  network_.release_watches();
}

TEST_F(controller_test, a_broker_catches_up_with_a_topic_changed_on_its_behalf) {
  create_topic_result made = create_ok(topic("followed", 1, 1));
  ASSERT_TRUE(run_until([&] { return members_[0]->image().topic_id("followed").has_value(); }));
  // Broker 1's image stops moving: the change is in the store, not yet in its image.
  network_.hold_watches();
  alter_topic_configs_request r;
  r.name = "followed";
  r.change = [](std::map<std::string, std::string>& stored) {
    stored["retention.ms"] = "1000";
    return std::string();
  };
  asio::co_spawn(io_, controller_->alter_topic_configs(std::move(r)), asio::detached);
  ASSERT_TRUE(run_until([&] {
    std::optional<topic_record> stored = stored_topic(made.topic_id);
    return stored && !stored->configs.empty();
  }));
  EXPECT_TRUE(members_[0]->image().topic(made.topic_id)->configs.empty());

  EXPECT_FALSE(run(members_[0]->catch_up_with_topic("followed", 100ms)));
  std::optional<bool> caught_up;
  asio::co_spawn(io_, members_[0]->catch_up_with_topic("followed", 2s),
                 [&caught_up](std::exception_ptr, bool r) { caught_up = r; });
  testing::run_for(io_, 50ms);
  EXPECT_FALSE(caught_up);
  network_.release_watches();
  ASSERT_TRUE(run_until([&] { return caught_up.has_value(); }));
  EXPECT_TRUE(*caught_up);
  EXPECT_EQ(members_[0]->image().topic(made.topic_id)->configs.at("retention.ms"), "1000");
  // A topic the store does not have: nothing to wait for.
  EXPECT_TRUE(run(members_[0]->catch_up_with_topic("never", 100ms)));
}

class controller_isr_test : public controller_test {
 protected:
  void SetUp() override {
    controller_test::SetUp();
    if (HasFatalFailure()) return;
    create_topic_request request = topic("isr", -1, -1);
    request.assignments[0] = {1, 2, 3};
    id_ = create_ok(request).topic_id;
    const partition_state* state = seen_partition(id_, 0);
    ASSERT_NE(state, nullptr);
    partition_epoch_ = state->partition_epoch;
  }
  alter_partition_request request(std::vector<int32_t> isr) {
    alter_partition_request r;
    r.broker_id = 1;
    r.broker_epoch = broker_epoch(1);
    r.topic_id = id_;
    r.partition = 0;
    r.leader_epoch = 0;
    r.new_isr = std::move(isr);
    r.partition_epoch = partition_epoch_;
    return r;
  }
  alter_partition_result alter(alter_partition_request r) {
    return run(controller_->alter_partition(std::move(r)));
  }

  wire::uuid id_{};
  int64_t partition_epoch_ = 0;  // when created
};

TEST_F(controller_isr_test, a_shrink_is_written_and_moves_the_partition_epoch) {
  const int64_t based_on = partition_epoch_;
  alter_partition_result r = alter(request({1, 2}));
  ASSERT_EQ(r.error, error_code::none);
  EXPECT_EQ(r.leader, 1);
  EXPECT_EQ(r.leader_epoch, 0);
  EXPECT_EQ(r.isr, (std::vector<int32_t>{1, 2}));
  EXPECT_GT(r.partition_epoch, based_on);
  std::optional<key_value> kv = get(keys::partition(prefix, id_, 0));
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->mod_revision, r.partition_epoch);
  std::optional<partition_record> stored = decode_partition(kv->value);
  ASSERT_TRUE(stored);
  EXPECT_EQ(*stored, (partition_record{1, 0, {1, 2}}));

  // Proposing the ISR it already has changes nothing.
  alter_partition_request same = request({1, 2});
  same.partition_epoch = r.partition_epoch;
  const int64_t before = store_.revision();
  alter_partition_result unchanged = alter(same);
  EXPECT_EQ(unchanged.error, error_code::none);
  EXPECT_EQ(unchanged.partition_epoch, r.partition_epoch);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_isr_test, a_stale_partition_epoch_is_refused_and_nothing_is_written) {
  alter_partition_request stale = request({1, 3});
  ASSERT_EQ(alter(request({1, 2})).error, error_code::none);
  const int64_t before = store_.revision();
  alter_partition_result r = alter(stale);
  EXPECT_EQ(r.error, error_code::invalid_update_version);
  EXPECT_EQ(store_.revision(), before);
  std::optional<partition_record> stored = stored_partition(id_, 0);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->isr, (std::vector<int32_t>{1, 2}));
}

TEST_F(controller_isr_test, a_stale_broker_epoch_is_refused) {
  alter_partition_request stale = request({1, 2});
  stale.broker_epoch -= 1;
  const int64_t before = store_.revision();
  EXPECT_EQ(alter(stale).error, error_code::stale_broker_epoch);
  alter_partition_request unregistered = request({1, 2});
  unregistered.broker_id = 7;
  EXPECT_EQ(alter(unregistered).error, error_code::stale_broker_epoch);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_isr_test, other_invalid_proposals_get_kafkas_errors) {
  const int64_t before = store_.revision();
  alter_partition_request not_leader = request({1, 2});
  not_leader.broker_id = 2;
  not_leader.broker_epoch = broker_epoch(2);
  EXPECT_EQ(alter(not_leader).error, error_code::invalid_request);
  alter_partition_request old_leader_epoch = request({1, 2});
  old_leader_epoch.leader_epoch = -1;
  EXPECT_EQ(alter(old_leader_epoch).error, error_code::fenced_leader_epoch);
  alter_partition_request newer_leader_epoch = request({1, 2});
  newer_leader_epoch.leader_epoch = 1;
  EXPECT_EQ(alter(newer_leader_epoch).error, error_code::not_controller);
  alter_partition_request newer_partition_epoch = request({1, 2});
  newer_partition_epoch.partition_epoch += 1000;
  EXPECT_EQ(alter(newer_partition_epoch).error, error_code::not_controller);
  EXPECT_EQ(alter(request({2, 3})).error, error_code::invalid_request);  // without the leader
  EXPECT_EQ(alter(request({1, 7})).error, error_code::invalid_request);  // not a replica
  EXPECT_EQ(alter(request({1, 2, 2})).error, error_code::invalid_request);
  alter_partition_request unknown_topic = request({1, 2});
  unknown_topic.topic_id[0] ^= 0xff;
  EXPECT_EQ(alter(unknown_topic).error, error_code::unknown_topic_id);
  alter_partition_request unknown_partition = request({1, 2});
  unknown_partition.partition = 1;
  EXPECT_EQ(alter(unknown_partition).error, error_code::unknown_topic_or_partition);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_isr_test, a_replica_that_left_the_cluster_cannot_join_the_isr) {
  alter_partition_result shrunk = alter(request({1, 2}));
  ASSERT_EQ(shrunk.error, error_code::none);
  bool left = false;
  members_[2]->leave([&] { left = true; });
  ASSERT_TRUE(run_until([&] { return left && members_[0]->image().broker(3) == nullptr; }));
  alter_partition_request expand = request({1, 2, 3});
  expand.partition_epoch = shrunk.partition_epoch;
  const int64_t before = store_.revision();
  EXPECT_EQ(alter(expand).error, error_code::ineligible_replica);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_test,
       a_large_topic_is_written_in_several_transactions_and_visible_once_complete) {
  testing::watch_log log;
  coordination::subscription watch =
      store_.watch_prefix(std::string(prefix) + "/", store_.revision() + 1, log.callbacks());
  // What a broker sees: whenever its image knows the name, the whole topic.
  bool visible = false;
  bool complete_when_visible = true;
  cancel_handle observing = members_[1]->on_change([&] {
    if (auto id = members_[1]->image().topic_id("big")) {
      visible = true;
      complete_when_visible =
          complete_when_visible && members_[1]->image().partitions(*id).size() == 300;
    }
  });

  create_topic_result r = create_ok(topic("big", 300, 2));
  const std::string name_key = keys::topic_name(prefix, "big");
  ASSERT_TRUE(run_until([&] {
    return visible && std::any_of(log.events.begin(), log.events.end(),
                                  [&](const auto& e) { return e.kv.key == name_key; });
  }));
  EXPECT_TRUE(complete_when_visible);
  EXPECT_LE(network_.max_ops, 128u);

  std::map<int64_t, int> events_per_revision;
  int64_t name_revision = 0;
  int64_t topic_revision = 0;
  int64_t last_partition_revision = 0;
  int partitions = 0;
  for (const coordination::watch_event& e : log.events) {
    ASSERT_EQ(e.what, coordination::watch_event::kind::put);
    ++events_per_revision[e.kv.mod_revision];
    if (e.kv.key == name_key) name_revision = e.kv.mod_revision;
    if (e.kv.key == keys::topic(prefix, r.topic_id)) topic_revision = e.kv.mod_revision;
    if (keys::partition_of(prefix, e.kv.key)) {
      ++partitions;
      last_partition_revision = std::max(last_partition_revision, e.kv.mod_revision);
    }
  }
  EXPECT_EQ(partitions, 300);
  EXPECT_GE(events_per_revision.size(), 3u);
  for (const auto& [revision, count] : events_per_revision)
    EXPECT_LE(count, 128) << "revision " << revision;
  EXPECT_EQ(name_revision, events_per_revision.rbegin()->first);
  EXPECT_EQ(topic_revision, name_revision);
  EXPECT_LE(last_partition_revision, name_revision);
}

TEST_F(controller_test, what_an_interrupted_creation_left_is_erased) {
  // The second of three transactions finds the store unreachable.
  network_.fail_txn(2, store_errc::unavailable, false);
  create_topic_result failed = create_one(topic("big", 300, 2));
  EXPECT_EQ(failed.error, error_code::request_timed_out);
  EXPECT_FALSE(get(keys::topic_name(prefix, "big")));
  EXPECT_TRUE(get_prefix(keys::topics(prefix)).empty());
  std::vector<key_value> left = get_prefix(std::string(prefix) + "/partitions/");
  EXPECT_EQ(left.size(), 128u);

  create_topic_result small = create_ok(topic("small", 1, 1));
  std::vector<key_value> now = get_prefix(std::string(prefix) + "/partitions/");
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].key, keys::partition(prefix, small.topic_id, 0));

  create_topic_result retried = create_ok(topic("big", 300, 2));
  EXPECT_EQ(get_prefix(keys::partitions(prefix, retried.topic_id)).size(), 300u);
}

TEST_F(controller_test, partitions_left_beyond_a_topics_assignment_are_erased) {
  create_topic_result made = create_ok(topic("grow", 1, 1));
  // Adding 200 partitions takes two transactions; the second is lost.
  network_.fail_txn(2, store_errc::unavailable, false);
  create_partitions_result failed =
      run(controller_->create_partitions({"grow", 201, std::nullopt}));
  EXPECT_EQ(failed.error, error_code::request_timed_out);
  std::optional<topic_record> record = stored_topic(made.topic_id);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->replicas.size(), 1u);
  EXPECT_EQ(get_prefix(keys::partitions(prefix, made.topic_id)).size(), 129u);

  create_partitions_result retried = run(controller_->create_partitions({"grow", 3, std::nullopt}));
  EXPECT_EQ(retried.error, error_code::none) << retried.message;
  EXPECT_EQ(get_prefix(keys::partitions(prefix, made.topic_id)).size(), 3u);
}

TEST_F(controller_test, an_unknown_outcome_is_success_only_if_the_write_is_there) {
  network_.fail_txn(1, store_errc::outcome_unknown, true);
  create_topic_result applied = create_ok(topic("maybe", 1, 1));
  std::optional<key_value> name = get(keys::topic_name(prefix, "maybe"));
  ASSERT_TRUE(name);
  EXPECT_EQ(name->value, storage::uuid_to_base64(applied.topic_id));
  // The next decision sees it.
  EXPECT_EQ(create_one(topic("maybe", 1, 1)).error, error_code::topic_already_exists);

  const int64_t before = store_.revision();
  network_.fail_txn(1, store_errc::outcome_unknown, false);
  create_topic_result lost = create_one(topic("lost", 1, 1));
  EXPECT_EQ(lost.error, error_code::request_timed_out);
  EXPECT_EQ(lost.topic_id, wire::uuid{});
  EXPECT_EQ(store_.revision(), before);

  network_.fail_txn(1, store_errc::unavailable, false);
  EXPECT_EQ(create_one(topic("lost", 1, 1)).error, error_code::request_timed_out);
  EXPECT_EQ(store_.revision(), before);
  EXPECT_EQ(create_ok(topic("lost", 1, 1)).num_partitions, 1);
}

// Topic "lead": 0 [1,2,3], 1 [2,3,1], 2 [1,3,2], 3 [3,1,2]; topic "solo": 0 [1]. Each partition
// is led by its preferred replica.
class controller_leadership_test : public controller_test {
 protected:
  void SetUp() override {
    controller_test::SetUp();
    if (HasFatalFailure()) return;
    create_topic_request request = topic("lead", -1, -1);
    request.assignments[0] = {1, 2, 3};
    request.assignments[1] = {2, 3, 1};
    request.assignments[2] = {1, 3, 2};
    request.assignments[3] = {3, 1, 2};
    id_ = create_ok(request).topic_id;
    create_topic_request solo = topic("solo", -1, -1);
    solo.assignments[0] = {1};
    solo_ = create_ok(solo).topic_id;
    ASSERT_NE(seen_partition(id_, 3), nullptr);
    ASSERT_NE(seen_partition(solo_, 0), nullptr);
  }
  // Writes a partition's state as another controller would have, and waits until broker 1 sees it.
  void set_partition(int32_t p, partition_record r) {
    coordination::txn_request put;
    put.success.push_back(coordination::operation::put(keys::partition(prefix, id_, p), encode(r)));
    ASSERT_TRUE(run(store_.txn(std::move(put))).succeeded);
    ASSERT_TRUE(run_until([&] {
      const partition_state* s = members_[0]->image().partition(id_, p);
      return s != nullptr && s->record == r;
    }));
  }
  partition_record partition(int32_t p) {
    std::optional<partition_record> r = stored_partition(id_, p);
    EXPECT_TRUE(r);
    return r.value_or(partition_record{});
  }
  elect_leaders_result elect(election_type type,
                             std::optional<std::map<std::string, std::vector<int32_t>>> which) {
    elect_leaders_request r;
    r.type = type;
    r.partitions = std::move(which);
    return run(controller_->elect_leaders(std::move(r)));
  }
  static error_code error_of(const elect_leaders_result& r, const std::string& topic, int32_t p) {
    for (const election_result& each : r.partitions) {
      if (each.topic == topic && each.partition == p) return each.error;
    }
    return error_code::unknown_server_error;
  }

  wire::uuid id_{};
  wire::uuid solo_{};
};

TEST_F(controller_leadership_test,
       a_preferred_election_gives_the_partition_back_to_its_first_replica) {
  elect_leaders_result none_needed =
      elect(election_type::preferred, {{{"lead", {0, 2}}, {"solo", {0}}}});
  ASSERT_EQ(none_needed.error, error_code::none);
  EXPECT_EQ(error_of(none_needed, "lead", 0), error_code::election_not_needed);
  EXPECT_EQ(error_of(none_needed, "lead", 2), error_code::election_not_needed);
  EXPECT_EQ(error_of(none_needed, "solo", 0), error_code::election_not_needed);
  EXPECT_EQ(none_needed.revision, 0);

  set_partition(0, {2, 1, {1, 2, 3}});
  set_partition(1, {3, 1, {3, 1}});  // broker 2 is out of the ISR: it cannot lead
  const int64_t before = store_.revision();
  elect_leaders_result r =
      elect(election_type::preferred, {{{"lead", {0, 1, 7}}, {"missing", {0}}}});
  ASSERT_EQ(r.error, error_code::none);
  EXPECT_EQ(error_of(r, "lead", 0), error_code::none);
  EXPECT_EQ(error_of(r, "lead", 1), error_code::preferred_leader_not_available);
  EXPECT_EQ(error_of(r, "lead", 7), error_code::unknown_topic_or_partition);
  EXPECT_EQ(error_of(r, "missing", 0), error_code::unknown_topic_or_partition);
  EXPECT_GT(r.revision, before);
  EXPECT_EQ(partition(0), (partition_record{1, 2, {1, 2, 3}}));
  EXPECT_EQ(partition(1), (partition_record{3, 1, {3, 1}}));

  // Every partition: only those whose election was needed are answered.
  elect_leaders_result all = elect(election_type::preferred, std::nullopt);
  ASSERT_EQ(all.error, error_code::none);
  ASSERT_EQ(all.partitions.size(), 1u);
  EXPECT_EQ(all.partitions[0].partition, 1);
  EXPECT_EQ(all.partitions[0].error, error_code::preferred_leader_not_available);
}

TEST_F(controller_leadership_test, an_unclean_election_needs_a_gone_leader_and_prefers_the_isr) {
  set_partition(0, {3, 4, {3, 2}});
  set_partition(3, {3, 2, {3}});
  bool left = false;
  members_[2]->leave([&] { left = true; });
  ASSERT_TRUE(run_until([&] { return left && members_[0]->image().broker(3) == nullptr; }));

  elect_leaders_result r = elect(election_type::unclean, {{{"lead", {0, 1, 3}}}});
  ASSERT_EQ(r.error, error_code::none);
  EXPECT_EQ(error_of(r, "lead", 1), error_code::election_not_needed);  // broker 2 lives
  EXPECT_EQ(error_of(r, "lead", 0), error_code::none);
  EXPECT_EQ(error_of(r, "lead", 3), error_code::none);
  // An in-sync replica first; the gone leader leaves the ISR.
  EXPECT_EQ(partition(0), (partition_record{2, 5, {2}}));
  // No in-sync replica left: the first live replica, alone in the ISR.
  EXPECT_EQ(partition(3), (partition_record{1, 3, {1}}));

  // Broker 3 is gone: it cannot take back the partition it prefers.
  elect_leaders_result preferred = elect(election_type::preferred, {{{"lead", {3}}}});
  EXPECT_EQ(error_of(preferred, "lead", 3), error_code::preferred_leader_not_available);
}

TEST_F(controller_leadership_test, a_controlled_shutdown_moves_leaders_and_leaves_the_isrs) {
  set_partition(3, {3, 0, {3, 2}});  // broker 1 is not in this ISR: untouched
  const int64_t before = store_.revision();
  EXPECT_EQ(run(controller_->controlled_shutdown({1, broker_epoch(1) - 1})).error,
            error_code::stale_broker_epoch);
  EXPECT_EQ(store_.revision(), before);

  ASSERT_EQ(run(members_[0]->begin_controlled_shutdown()), "");
  ASSERT_TRUE(run_until([&] {
    const live_broker* b = members_[0]->image().broker(1);
    return b != nullptr && b->record.controlled_shutdown;
  }));
  controlled_shutdown_result r = run(controller_->controlled_shutdown({1, broker_epoch(1)}));
  ASSERT_EQ(r.error, error_code::none) << r.message;
  EXPECT_TRUE(r.remaining.empty());  // solo-0 has one replica: it stays and is not counted
  EXPECT_EQ(partition(0), (partition_record{2, 1, {2, 3}}));
  EXPECT_EQ(partition(1), (partition_record{2, 0, {2, 3}}));  // same leader, same epoch
  EXPECT_EQ(partition(2), (partition_record{3, 1, {3, 2}}));  // the first other ISR member
  EXPECT_EQ(partition(3), (partition_record{3, 0, {3, 2}}));
  std::optional<partition_record> solo = stored_partition(solo_, 0);
  ASSERT_TRUE(solo);
  EXPECT_EQ(*solo, (partition_record{1, 0, {1}}));

  // In controlled shutdown, broker 1 may neither rejoin an ISR nor lead, nor get new replicas.
  const partition_state* state = nullptr;
  ASSERT_TRUE(run_until([&] {
    state = members_[0]->image().partition(id_, 0);
    return state != nullptr && state->record.leader == 2;
  }));
  alter_partition_request rejoin;
  rejoin.broker_id = 2;
  rejoin.broker_epoch = broker_epoch(2);
  rejoin.topic_id = id_;
  rejoin.partition = 0;
  rejoin.leader_epoch = 1;
  rejoin.new_isr = {2, 3, 1};
  rejoin.partition_epoch = state->partition_epoch;
  EXPECT_EQ(run(controller_->alter_partition(rejoin)).error, error_code::ineligible_replica);
  EXPECT_EQ(error_of(elect(election_type::preferred, {{{"lead", {0}}}}), "lead", 0),
            error_code::preferred_leader_not_available);
  EXPECT_EQ(create_one(topic("wide", 1, 3)).error, error_code::invalid_replication_factor);
}

TEST_F(controller_leadership_test, a_leadership_with_no_other_in_sync_replica_remains) {
  set_partition(0, {1, 0, {1}});
  controlled_shutdown_result r = run(controller_->controlled_shutdown({1, broker_epoch(1)}));
  ASSERT_EQ(r.error, error_code::none);
  ASSERT_EQ(r.remaining.size(), 1u);
  EXPECT_EQ(r.remaining[0], (std::pair<std::string, int32_t>{"lead", 0}));
  EXPECT_EQ(partition(0), (partition_record{1, 0, {1}}));
}

TEST_F(controller_leadership_test, leaders_go_back_to_a_broker_that_prefers_too_many_it_lost) {
  set_partition(0, {2, 1, {1, 2, 3}});
  EXPECT_EQ(run(controller_->rebalance_leaders()), 1u);
  EXPECT_EQ(partition(0), (partition_record{1, 2, {1, 2, 3}}));
  ASSERT_TRUE(
      run_until([&] { return members_[0]->image().partition(id_, 0)->record.leader == 1; }));
  EXPECT_EQ(run(controller_->rebalance_leaders()), 0u);

  // Within leader.imbalance.per.broker.percentage nothing moves: broker 1 prefers 3 partitions
  // (lead-0, lead-2, solo-0) and has lost one of them, 33%.
  controller_config tolerant = settings_;
  tolerant.leader_imbalance_per_broker_percentage = 34;
  controller patient(network_, *members_[0], tolerant);
  set_partition(0, {2, 3, {1, 2, 3}});
  EXPECT_EQ(run(patient.rebalance_leaders()), 0u);
}

// The controller started, as on a broker: it watches the registered brokers (failover).
class controller_failover_test : public controller_leadership_test {
 protected:
  void SetUp() override {
    settings_.auto_leader_rebalance = false;
    settings_.offsets_topic_num_partitions = 0;
    controller_leadership_test::SetUp();
    if (HasFatalFailure()) return;
    controller_->start(io_.get_executor());
  }
  void TearDown() override {
    for (auto& c : others_)
      c->stop();
    if (controller_) controller_->stop();
  }
  // Broker `id` goes as a broker whose lease expired does: its registration disappears.
  void lose_broker(int32_t id) {
    bool left = false;
    members_[static_cast<size_t>(id - 1)]->leave([&] { left = true; });
    ASSERT_TRUE(run_until([&] { return left; }));
  }
  // Waits until the store holds `expected` for partition `p` of topic `topic`.
  ::testing::AssertionResult becomes(const wire::uuid& topic, int32_t p,
                                     const partition_record& expected) {
    std::optional<partition_record> seen;
    run_until([&] {
      seen = stored_partition(topic, p);
      return seen && *seen == expected;
    });
    if (seen && *seen == expected) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << "partition " << p << ": leader " << (seen ? seen->leader : -2) << " epoch "
           << (seen ? seen->leader_epoch : -2) << " ISR size " << (seen ? seen->isr.size() : 0);
  }

  std::vector<std::unique_ptr<controller>> others_;
};

TEST_F(controller_failover_test,
       a_gone_brokers_leaderships_move_to_its_isr_and_it_leaves_the_isrs) {
  lose_broker(3);
  EXPECT_TRUE(becomes(id_, 3, {1, 1, {1, 2}}));  // led by 3: the next replica in the ISR leads
  EXPECT_TRUE(becomes(id_, 0, {1, 0, {1, 2}}));  // led elsewhere: same leader and epoch
  EXPECT_TRUE(becomes(id_, 1, {2, 0, {2, 1}}));
  EXPECT_TRUE(becomes(id_, 2, {1, 0, {1, 2}}));
  EXPECT_TRUE(becomes(solo_, 0, {1, 0, {1}}));
}

TEST_F(controller_failover_test, with_no_live_isr_member_a_partition_waits_offline_for_one) {
  set_partition(3, {3, 4, {3}});
  lose_broker(3);
  // Clean elections only: broker 1 and 2 are alive but not in sync.
  EXPECT_TRUE(becomes(id_, 3, {-1, 5, {3}}));
  // The last in-sync replica comes back and leads again.
  members_.push_back(start(3, store_));
  EXPECT_TRUE(becomes(id_, 3, {3, 6, {3}}));
}

TEST_F(controller_failover_test, an_unclean_election_happens_when_the_topic_allows_it) {
  set_partition(3, {3, 4, {3}});
  lose_broker(3);
  EXPECT_TRUE(becomes(id_, 3, {-1, 5, {3}}));
  // Allowed now: the first live replica leads, alone in its ISR.
  ASSERT_EQ(set_configs("lead", {{"unclean.leader.election.enable", "true"}}).error,
            error_code::none);
  EXPECT_TRUE(becomes(id_, 3, {1, 6, {1}}));
}

TEST_F(controller_failover_test, the_next_controller_moves_the_leaderships_of_the_one_that_died) {
  for (size_t i = 1; i < members_.size(); ++i) {
    others_.push_back(std::make_unique<controller>(store_, *members_[i], settings_));
    others_.back()->start(io_.get_executor());
  }
  lose_broker(1);
  ASSERT_TRUE(
      run_until([&] { return members_[1]->is_controller() || members_[2]->is_controller(); }));
  EXPECT_TRUE(becomes(id_, 0, {2, 1, {2, 3}}));
  EXPECT_TRUE(becomes(id_, 1, {2, 0, {2, 3}}));
  EXPECT_TRUE(becomes(id_, 2, {3, 1, {3, 2}}));
  EXPECT_TRUE(becomes(id_, 3, {3, 0, {3, 2}}));
  EXPECT_TRUE(becomes(solo_, 0, {-1, 1, {1}}));  // its one replica is gone: offline
}

}  // namespace
}  // namespace sluice::server::cluster

namespace sluice::server::cluster {
namespace {

// Topic "move": 0 [1,2], 1 [2,3]; each led by its first replica with a full ISR.
class controller_reassignment_test : public controller_test {
 protected:
  void SetUp() override {
    controller_test::SetUp();
    if (HasFatalFailure()) return;
    create_topic_request request = topic("move", -1, -1);
    request.assignments[0] = {1, 2};
    request.assignments[1] = {2, 3};
    id_ = create_ok(request).topic_id;
    ASSERT_NE(seen_partition(id_, 1), nullptr);
  }
  alter_reassignments_result alter(std::vector<reassignment_request> requests) {
    alter_reassignments_result r =
        run(controller_->alter_partition_reassignments(std::move(requests)));
    // As a broker would, before its next request: wait until the image shows the write.
    EXPECT_TRUE(run_until([&] { return members_[0]->image().revision() >= r.revision; }));
    return r;
  }
  error_code reassign(int32_t p, std::optional<std::vector<int32_t>> replicas,
                      const std::string& topic_name = "move") {
    alter_reassignments_result r = alter({{topic_name, p, std::move(replicas)}});
    EXPECT_EQ(r.error, error_code::none);
    EXPECT_EQ(r.partitions.size(), 1u);
    return r.partitions.empty() ? error_code::unknown_server_error : r.partitions[0].error;
  }
  std::vector<ongoing_reassignment> ongoing(
      std::optional<std::map<std::string, std::vector<int32_t>>> which = std::nullopt) {
    list_reassignments_result r = run(controller_->list_partition_reassignments(std::move(which)));
    EXPECT_EQ(r.error, error_code::none);
    return r.partitions;
  }
  std::vector<int32_t> replicas(int32_t p) {
    std::optional<topic_record> t = stored_topic(id_);
    EXPECT_TRUE(t);
    return t ? t->replicas.at(static_cast<size_t>(p)) : std::vector<int32_t>{};
  }
  partition_record partition(int32_t p) {
    std::optional<partition_record> r = stored_partition(id_, p);
    EXPECT_TRUE(r);
    return r.value_or(partition_record{});
  }
  // The leader proposes `isr` for partition `p`, from the state broker 1 sees.
  alter_partition_result propose_isr(int32_t p, std::vector<int32_t> isr) {
    const partition_state* state = seen_partition(id_, p);
    alter_partition_request r;
    r.broker_id = state->record.leader;
    r.broker_epoch = broker_epoch(r.broker_id);
    r.topic_id = id_;
    r.partition = p;
    r.leader_epoch = state->record.leader_epoch;
    r.new_isr = std::move(isr);
    r.partition_epoch = state->partition_epoch;
    alter_partition_result result = run(controller_->alter_partition(std::move(r)));
    EXPECT_TRUE(run_until([&] { return members_[0]->image().revision() >= store_.revision(); }));
    return result;
  }

  wire::uuid id_{};
};

TEST_F(controller_reassignment_test,
       a_reassignment_adds_the_target_and_completes_when_it_is_in_sync) {
  EXPECT_TRUE(ongoing().empty());
  ASSERT_EQ(reassign(0, std::vector<int32_t>{2, 3}), error_code::none);
  // Target first, then the replica being removed; the leader and the ISR stay, epoch too.
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{2, 3, 1}));
  EXPECT_EQ(partition(0), (partition_record{1, 0, {1, 2}, {3}, {1}}));
  std::vector<ongoing_reassignment> listed = ongoing();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].topic, "move");
  EXPECT_EQ(listed[0].partition, 0);
  EXPECT_EQ(listed[0].replicas, (std::vector<int32_t>{2, 3, 1}));
  EXPECT_EQ(listed[0].adding, (std::vector<int32_t>{3}));
  EXPECT_EQ(listed[0].removing, (std::vector<int32_t>{1}));
  // Named partitions: those with none in progress and unknown ones are left out.
  EXPECT_EQ(ongoing({{{"move", {1, 0, 5}}, {"missing", {0}}}}).size(), 1u);
  EXPECT_TRUE(ongoing({{{"move", {1}}}}).empty());

  // An ISR change that does not bring in every target replica completes nothing.
  alter_partition_result shrunk = propose_isr(0, {1});
  ASSERT_EQ(shrunk.error, error_code::none);
  EXPECT_EQ(partition(0), (partition_record{1, 0, {1}, {3}, {1}}));
  ASSERT_EQ(propose_isr(0, {1, 3}).error, error_code::none);
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{2, 3, 1}));
  // Broker 2 coming back brings the last target replica in: replicas become the target, the
  // removed leader hands over to the first in-sync target replica in a new epoch, and the
  // asking leader is told NEW_LEADER_ELECTED (the change is written all the same).
  alter_partition_result done = propose_isr(0, {1, 2, 3});
  EXPECT_EQ(done.error, error_code::new_leader_elected);
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(partition(0), (partition_record{2, 1, {2, 3}, {}, {}}));
  EXPECT_TRUE(ongoing().empty());
}

TEST_F(controller_reassignment_test, a_leader_that_stays_gets_a_new_epoch_when_a_replica_leaves) {
  ASSERT_EQ(reassign(0, std::vector<int32_t>{1, 3}), error_code::none);
  EXPECT_EQ(partition(0), (partition_record{1, 0, {1, 2}, {3}, {2}}));
  alter_partition_result done = propose_isr(0, {1, 2, 3});
  ASSERT_EQ(done.error, error_code::none);
  EXPECT_EQ(done.leader, 1);
  EXPECT_EQ(done.leader_epoch, 1);
  EXPECT_EQ(done.isr, (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{1, 3}));
  EXPECT_EQ(partition(0), (partition_record{1, 1, {1, 3}, {}, {}}));
}

TEST_F(controller_reassignment_test, reorderings_and_shrinks_complete_at_once) {
  const int64_t before = store_.revision();
  ASSERT_EQ(reassign(0, std::vector<int32_t>{1, 2}), error_code::none);  // what it has
  EXPECT_EQ(store_.revision(), before);
  ASSERT_EQ(reassign(0, std::vector<int32_t>{2, 1}), error_code::none);
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{2, 1}));
  EXPECT_EQ(partition(0), (partition_record{1, 0, {1, 2}}));  // no leader change, same epoch
  ASSERT_EQ(reassign(1, std::vector<int32_t>{3}), error_code::none);
  EXPECT_EQ(replicas(1), (std::vector<int32_t>{3}));
  EXPECT_EQ(partition(1), (partition_record{3, 1, {3}}));
  EXPECT_TRUE(ongoing().empty());
}

TEST_F(controller_reassignment_test, a_cancel_reverts_to_the_original_replicas) {
  ASSERT_EQ(reassign(0, std::vector<int32_t>{2, 3}), error_code::none);
  ASSERT_EQ(propose_isr(0, {1}).error, error_code::none);  // an ISR change meanwhile
  ASSERT_EQ(reassign(0, std::nullopt), error_code::none);
  // The original replicas in the order the reassignment left them (KRaft's
  // PartitionReassignmentRevert takes the adding ones out of [2,3,1]).
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{2, 1}));
  // Broker 3, the adding replica, left the replicas: a new leader epoch.
  EXPECT_EQ(partition(0), (partition_record{1, 1, {1}, {}, {}}));
  EXPECT_TRUE(ongoing().empty());
  EXPECT_EQ(reassign(0, std::nullopt), error_code::no_reassignment_in_progress);
  EXPECT_EQ(reassign(1, std::nullopt), error_code::no_reassignment_in_progress);
}

TEST_F(controller_reassignment_test, a_cancel_that_needs_an_unclean_election_is_refused) {
  ASSERT_EQ(reassign(1, std::vector<int32_t>{1}), error_code::none);
  EXPECT_EQ(partition(1), (partition_record{2, 0, {2, 3}, {1}, {2, 3}}));
  // Only the adding replica is left in sync (the others fell behind and it took over).
  coordination::txn_request put;
  put.success.push_back(coordination::operation::put(
      keys::partition(prefix, id_, 1), encode(partition_record{1, 1, {1}, {1}, {2, 3}})));
  ASSERT_TRUE(run(store_.txn(std::move(put))).succeeded);
  ASSERT_TRUE(
      run_until([&] { return members_[0]->image().partition(id_, 1)->record.leader == 1; }));
  const int64_t before = store_.revision();
  alter_reassignments_result r = alter({{"move", 1, std::nullopt}});
  ASSERT_EQ(r.partitions.size(), 1u);
  EXPECT_EQ(r.partitions[0].error, error_code::invalid_replica_assignment);
  EXPECT_NE(r.partitions[0].message.find("unclean leader election"), std::string::npos);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_reassignment_test, invalid_requests_get_kafkas_errors_and_write_nothing) {
  const int64_t before = store_.revision();
  alter_reassignments_result r = alter({{"move", 0, std::vector<int32_t>{}},
                                        {"move", 0, std::vector<int32_t>{2, 2}},
                                        {"move", 0, std::vector<int32_t>{2, 7}},
                                        {"move", 2, std::vector<int32_t>{1}},
                                        {"move", -1, std::vector<int32_t>{1}},
                                        {"missing", 0, std::vector<int32_t>{1}},
                                        {"missing", 0, std::nullopt}});
  ASSERT_EQ(r.error, error_code::none);
  ASSERT_EQ(r.partitions.size(), 7u);
  const std::vector<error_code> expected = {
      error_code::invalid_replica_assignment, error_code::invalid_replica_assignment,
      error_code::invalid_replica_assignment, error_code::unknown_topic_or_partition,
      error_code::unknown_topic_or_partition, error_code::unknown_topic_or_partition,
      error_code::unknown_topic_or_partition};
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.partitions[i].error, expected[i]) << i << ": " << r.partitions[i].message;
    EXPECT_FALSE(r.partitions[i].message.empty()) << i;
  }
  EXPECT_NE(r.partitions[2].message.find("broker 7, but no such broker is registered"),
            std::string::npos);
  EXPECT_EQ(store_.revision(), before);

  // Only the controller reassigns.
  controller other(store_, *members_[1], settings_);
  alter_reassignments_result refused =
      run(other.alter_partition_reassignments({{"move", 0, std::vector<int32_t>{2, 3}}}));
  EXPECT_EQ(refused.error, error_code::not_controller);
  EXPECT_EQ(run(other.list_partition_reassignments(std::nullopt)).error,
            error_code::not_controller);
  EXPECT_EQ(store_.revision(), before);
}

TEST_F(controller_reassignment_test, several_partitions_of_a_topic_in_small_transactions) {
  settings_.max_txn_ops = 3;  // one partition a transaction, with its topic record
  controller_ = std::make_unique<controller>(network_, *members_[0], settings_);
  const int txns = network_.txns;
  alter_reassignments_result r =
      alter({{"move", 0, std::vector<int32_t>{3, 1}}, {"move", 1, std::vector<int32_t>{3, 1}}});
  ASSERT_EQ(r.partitions.size(), 2u);
  EXPECT_EQ(r.partitions[0].error, error_code::none);
  EXPECT_EQ(r.partitions[1].error, error_code::none);
  EXPECT_EQ(network_.txns - txns, 2);
  EXPECT_EQ(replicas(0), (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(replicas(1), (std::vector<int32_t>{3, 1, 2}));
  EXPECT_EQ(ongoing().size(), 2u);
}

}  // namespace
}  // namespace sluice::server::cluster

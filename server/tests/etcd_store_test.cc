// etcd_store against a real etcd 3.4 (Debian's etcd-server): the shared contract
// (metadata_store_contract.h), then what only a real server over real sockets shows: failover
// between endpoints, timeouts, the response cap, a lease lost while etcd is unreachable, and
// shutdown.
//
// Each test starts its own single-member etcd on free loopback ports (never 2379/2380, where the
// package's own service may listen) with a temporary data directory, and kills it by its pid at
// the end: etcd_process (server/coordination/testing/etcd_process.h, shared with the compat
// tests' cluster fixture). $SLUICE_ETCD names the binary, else `etcd` on the PATH. A member starts
// in about half a second, with etcd's default timings, which are also what makes a 1 s lease come
// back as 2 s.

#include "server/coordination/etcd_store.h"

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "server/coordination/testing/etcd_process.h"
#include "server/tests/metadata_store_contract.h"

namespace sluice::server::coordination::testing {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// etcd_process prints etcd's log when the test failed.
bool test_failed() {
  return ::testing::Test::HasFailure();
}

etcd_config config_for(const std::string& endpoints) {
  etcd_config config;
  std::string problem;
  if (!parse_etcd_endpoints(endpoints, config.endpoints, problem)) {
    throw std::runtime_error(problem);
  }
  config.connect_timeout = 500ms;
  config.request_timeout = 2s;
  return config;
}

struct etcd_harness {
  etcd_process etcd{test_failed};
  boost::asio::io_context io;
  etcd_store real{io.get_executor(), config_for(etcd.url())};

  metadata_store& store() { return real; }
  void compact(int64_t revision) {
    // physical: answered once the compaction is applied, not merely scheduled.
    ASSERT_TRUE(etcd.post("/v3/kv/compaction",
                          R"({"revision":")" + std::to_string(revision) + R"(","physical":true})"));
  }
  void break_watches() { etcd.restart(); }
  void expire_lease(int64_t lease) {
    // etcd checks for expired leases every 500 ms; a 2 s lease is gone within 3 s.
    const std::string body = R"({"ID":")" + std::to_string(lease) + R"("})";
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto answer = etcd.post("/v3/lease/timetolive", body);
      ASSERT_TRUE(answer);
      if (answer->find(R"("TTL":"-1")") != std::string::npos) return;
      std::this_thread::sleep_for(100ms);
    }
    FAIL() << "lease " << lease << " did not expire";
  }
  // Renewals go every third of a 2 s TTL: a loss shows within a second.
  std::chrono::milliseconds quiet() { return 1500ms; }
  std::chrono::milliseconds wall(std::chrono::milliseconds d) { return d; }
};

INSTANTIATE_TYPED_TEST_SUITE_P(etcd, metadata_store_contract, etcd_harness);

TEST(etcd_endpoints, are_parsed_from_a_comma_separated_list) {
  std::vector<etcd_endpoint> endpoints;
  std::string problem;
  ASSERT_TRUE(parse_etcd_endpoints("http://127.0.0.1:2379, http://etcd-2:2379/,http://[::1]:23",
                                   endpoints, problem));
  ASSERT_EQ(endpoints.size(), 3u);
  EXPECT_EQ(endpoints[0].url, "http://127.0.0.1:2379");
  EXPECT_EQ(endpoints[1].host, "etcd-2");
  EXPECT_EQ(endpoints[1].url, "http://etcd-2:2379");
  EXPECT_EQ(endpoints[2].host, "::1");
  EXPECT_EQ(endpoints[2].port, "23");
  for (const char* bad : {"", " , ", "127.0.0.1:2379", "https://h:2379", "http://h", "http://h:0",
                          "http://h:65536", "http://:2379", "http://[::1]", "http://h:23x"}) {
    EXPECT_FALSE(parse_etcd_endpoints(bad, endpoints, problem)) << bad;
    EXPECT_FALSE(problem.empty());
  }
}

class etcd_store_test : public ::testing::Test {
 protected:
  template <typename T>
  T run(boost::asio::awaitable<T> call) {
    return testing::run(io_, std::move(call));
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout = 10s) {
    return testing::run_until(io_, done, timeout);
  }
  std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }

  etcd_process etcd_{test_failed};
  boost::asio::io_context io_;
};

TEST_F(etcd_store_test, a_one_second_lease_is_granted_two) {
  etcd_store store(io_.get_executor(), config_for(etcd_.url()));
  lease_grant_result lease = run(store.grant_lease(1));
  ASSERT_FALSE(lease.error) << lease.error.message();
  EXPECT_EQ(lease.ttl_seconds, 2);
}

TEST_F(etcd_store_test, fails_over_to_the_next_endpoint_when_one_is_down) {
  const std::string down = "http://127.0.0.1:" + std::to_string(free_port());
  etcd_store store(io_.get_executor(), config_for(down + "," + etcd_.url()));
  txn_result put = run(store.put("k", "v"));
  ASSERT_FALSE(put.error) << put.error.message();
  range_result got = run(store.get("k"));
  ASSERT_FALSE(got.error) << got.error.message();
  EXPECT_EQ(got.kvs.size(), 1u);

  // A watch and a keep-alive opened on a fresh store fail over the same way.
  etcd_store fresh(io_.get_executor(), config_for(down + "," + etcd_.url()));
  watch_log log;
  subscription watching = fresh.watch_prefix("k", put.revision, log.callbacks());
  ASSERT_TRUE(run_until([&] { return !log.events.empty(); }));
  EXPECT_EQ(log.events[0].kv.value, "v");
  lease_grant_result lease = run(fresh.grant_lease(2));
  ASSERT_FALSE(lease.error) << lease.error.message();
  std::optional<std::error_code> lost;
  subscription keeping = fresh.keep_alive(lease.id, 2, [&](std::error_code ec) { lost = ec; });
  testing::run_for(io_, 2500ms);
  EXPECT_FALSE(lost.has_value());
}

TEST_F(etcd_store_test, every_endpoint_down_is_unavailable_within_the_timeouts) {
  const std::string a = "http://127.0.0.1:" + std::to_string(free_port());
  const std::string b = "http://127.0.0.1:" + std::to_string(free_port());
  etcd_store store(io_.get_executor(), config_for(a + "," + b));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run(store.get("k")).error, store_errc::unavailable);
  EXPECT_EQ(run(store.put("k", "v")).error, store_errc::unavailable);
  EXPECT_EQ(run(store.grant_lease(2)).error, store_errc::unavailable);
  watch_log log;
  subscription watching = store.watch_prefix("k", 1, log.callbacks());
  ASSERT_TRUE(run_until([&] { return log.end.has_value(); }));
  EXPECT_EQ(log.end->why, watch_end::reason::disconnected);
  EXPECT_EQ(log.end->error, store_errc::unavailable);
  EXPECT_LT(elapsed_since(start), 2s) << "refused connections fail fast";
}

// Accepts connections and never answers: a hung etcd, or one behind a dead network.
class silent_server {
 public:
  explicit silent_server(asio::io_context& io)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    accept();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }

 private:
  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      held_.push_back(std::move(s));
      accept();
    });
  }
  tcp::acceptor acceptor_;
  std::vector<tcp::socket> held_;
};

TEST_F(etcd_store_test, a_silent_endpoint_times_out_reads_fail_over_writes_are_unknown) {
  silent_server silent(io_);
  etcd_config config = config_for(silent.url() + "," + etcd_.url());
  config.request_timeout = 300ms;
  etcd_store store(io_.get_executor(), config);

  const auto start = std::chrono::steady_clock::now();
  txn_result write = run(store.put("k", "v"));
  EXPECT_EQ(write.error, store_errc::outcome_unknown);
  EXPECT_LT(elapsed_since(start), 2s);
  // It was not applied, as it happens; the caller could not know.
  range_result read = run(store.get("k"));
  ASSERT_FALSE(read.error) << read.error.message();
  EXPECT_TRUE(read.kvs.empty());
  // The read failed over, and calls now go to the endpoint that answered.
  EXPECT_FALSE(run(store.put("k", "v")).error);
  EXPECT_EQ(run(store.get("k")).kvs.size(), 1u);
}

TEST_F(etcd_store_test, an_answer_over_the_cap_is_an_error_not_an_allocation) {
  etcd_config config = config_for(etcd_.url());
  config.max_response_bytes = 4096;
  etcd_store store(io_.get_executor(), config);
  const int64_t start = run(store.get("big/")).revision + 1;
  watch_log log;
  subscription watching = store.watch_prefix("big/", start, log.callbacks());
  ASSERT_FALSE(run(store.put("big/1", std::string(1000, 'x'))).error);
  ASSERT_TRUE(run_until([&] { return log.events.size() == 1; }));
  ASSERT_FALSE(run(store.put("big/2", std::string(5000, 'y'))).error);
  EXPECT_EQ(run(store.get_prefix("big/")).error, store_errc::response_too_large);
  EXPECT_EQ(run(store.get("big/1")).kvs.size(), 1u);
  ASSERT_TRUE(run_until([&] { return log.end.has_value(); }));
  EXPECT_EQ(log.end->why, watch_end::reason::disconnected);
  EXPECT_EQ(log.end->error, store_errc::response_too_large);
}

TEST_F(etcd_store_test, a_keep_alive_owner_is_told_once_renewals_stop_for_a_ttl) {
  etcd_config config = config_for(etcd_.url());
  config.request_timeout = 500ms;
  etcd_store store(io_.get_executor(), config);
  lease_grant_result lease = run(store.grant_lease(2));
  ASSERT_FALSE(lease.error) << lease.error.message();
  ASSERT_FALSE(run(store.put("brokers/1", "h:9092", lease.id)).error);
  std::optional<std::error_code> lost;
  subscription keeping =
      store.keep_alive(lease.id, lease.ttl_seconds, [&](std::error_code ec) { lost = ec; });
  testing::run_for(io_, 1s);
  ASSERT_FALSE(lost.has_value());

  // A stopped etcd accepts connections and answers nothing, like a partitioned one.
  etcd_.pause();
  const auto paused = std::chrono::steady_clock::now();
  ASSERT_TRUE(run_until([&] { return lost.has_value(); }, 5s));
  EXPECT_EQ(*lost, store_errc::unavailable);
  EXPECT_LE(elapsed_since(paused), std::chrono::seconds(lease.ttl_seconds) + 200ms)
      << "the owner must hear before etcd may have expired the lease";

  // etcd, running again, finds the lease expired and deletes the key.
  etcd_.resume();
  const auto resumed = std::chrono::steady_clock::now();
  bool gone = false;
  while (!gone && elapsed_since(resumed) < 10s) {
    range_result r = run(store.get("brokers/1"));
    gone = !r.error && r.kvs.empty();
    if (!gone) testing::run_for(io_, 100ms);
  }
  EXPECT_TRUE(gone);
}

TEST_F(etcd_store_test, destroying_the_store_ends_everything_without_callbacks) {
  watch_log log;
  std::optional<std::error_code> lost;
  subscription watching;
  subscription keeping;
  std::optional<range_result> late;
  {
    etcd_store store(io_.get_executor(), config_for(etcd_.url()));
    lease_grant_result lease = run(store.grant_lease(2));
    ASSERT_FALSE(lease.error);
    watching = store.watch_prefix("a/", 1, log.callbacks());
    keeping = store.keep_alive(lease.id, 2, [&](std::error_code ec) { lost = ec; });
    run(store.put("a/1", "x"));
    ASSERT_TRUE(run_until([&] { return !log.events.empty(); }));
    // A call in flight when the store goes completes, with unavailable. etcd is stopped so that
    // it cannot answer first.
    etcd_.pause();
    boost::asio::co_spawn(io_, store.get("a/"),
                          [&](std::exception_ptr, range_result r) { late = std::move(r); });
    testing::run_for(io_, 100ms);
    ASSERT_FALSE(late.has_value());
  }
  // Nothing is left to run: the io_context runs out of work.
  const auto start = std::chrono::steady_clock::now();
  io_.restart();
  io_.run_for(5s);
  EXPECT_LT(elapsed_since(start), 1s);
  EXPECT_EQ(log.events.size(), 1u);
  EXPECT_FALSE(log.end.has_value());
  EXPECT_FALSE(lost.has_value());
  ASSERT_TRUE(late.has_value());
  EXPECT_EQ(late->error, store_errc::unavailable);
}

}  // namespace
}  // namespace sluice::server::coordination::testing

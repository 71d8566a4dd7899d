// etcd_store against a real etcd 3.4 (Debian's etcd-server): the shared contract
// (metadata_store_contract.h), then what only a real server over real sockets shows: failover
// between endpoints, timeouts, the response cap, a lease lost while etcd is unreachable, and
// shutdown.
//
// Each test starts its own single-member etcd on free loopback ports (never 2379/2380, where the
// package's own service may listen) with a temporary data directory, and kills it by its pid at
// the end. $SLUICE_ETCD names the binary, else `etcd` on the PATH. A member starts in about half a
// second, with etcd's default timings, which are also what makes a 1 s lease come back as 2 s.

#include "server/coordination/etcd_store.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "server/tests/metadata_store_contract.h"

namespace sluice::server::coordination::testing {
namespace {

namespace asio = boost::asio;
namespace http = boost::beast::http;
namespace fs = std::filesystem;
using tcp = asio::ip::tcp;

// A loopback port nobody listens on right now.
uint16_t free_port() {
  asio::io_context io;
  tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

std::string etcd_binary() {
  const char* env = std::getenv("SLUICE_ETCD");
  std::string bin = env != nullptr && *env != '\0' ? env : "";
  if (bin.empty()) {
    for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
      if (::access((fs::path(dir) / "etcd").c_str(), X_OK) == 0) {
        bin = (fs::path(dir) / "etcd").string();
        break;
      }
    }
  }
  if (bin.empty() || ::access(bin.c_str(), X_OK) != 0) {
    throw std::runtime_error(
        "no etcd binary: scripts/install-deps.sh test installs etcd-server, or set SLUICE_ETCD");
  }
  return bin;
}

// Blocking HTTP for the test thread's own use (readiness, compaction, lease state), with socket
// timeouts so that a stopped etcd cannot hang the test.
std::optional<std::string> blocking_post(uint16_t port, const std::string& path,
                                         const std::string& body) {
  try {
    asio::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval timeout{2, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    http::request<http::string_body> request{http::verb::post, path, 11};
    request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(socket, request);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    if (response.result_int() != 200) return std::nullopt;
    return response.body();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

class etcd_process {
 public:
  etcd_process() {
    std::string tmpl = (fs::temp_directory_path() / "sluice-etcd-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    // Ports are picked free, then bound by etcd: another process can take one in between.
    for (int attempt = 0; attempt < 3; ++attempt) {
      client_port_ = free_port();
      peer_port_ = free_port();
      if (client_port_ == peer_port_) continue;
      if (start()) return;
      fs::remove_all(dir_ / "data");
    }
    throw std::runtime_error("etcd did not start; its log:\n" + log());
  }
  ~etcd_process() {
    resume();
    kill();
    if (::testing::Test::HasFailure()) std::cerr << "---- etcd log ----\n" << log() << "\n----\n";
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }
  etcd_process(const etcd_process&) = delete;
  etcd_process& operator=(const etcd_process&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  uint16_t client_port() const { return client_port_; }

  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  void restart() {
    kill();
    if (!start()) throw std::runtime_error("etcd did not restart; its log:\n" + log());
  }
  // Returns once every thread of etcd is stopped: SIGSTOP takes effect asynchronously, and a
  // thread still running could answer a request sent right after pause().
  void pause() {
    if (pid_ > 0 && !paused_) {
      ::kill(pid_, SIGSTOP);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!all_threads_stopped() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    paused_ = true;
  }
  void resume() {
    if (pid_ > 0 && paused_) ::kill(pid_, SIGCONT);
    paused_ = false;
  }

  bool all_threads_stopped() const {
    std::error_code ec;
    for (const auto& task :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid_) + "/task", ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      // The state follows the parenthesised command name: "pid (comm) S ...".
      size_t close = line.rfind(')');
      if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'T')
        return false;
    }
    return !ec;
  }

  std::optional<std::string> post(const std::string& path, const std::string& body) const {
    return blocking_post(client_port_, path, body);
  }

  std::string log() const {
    std::ifstream in(dir_ / "etcd.log");
    std::ostringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    return text.size() > 8000 ? "...\n" + text.substr(text.size() - 8000) : text;
  }

 private:
  // Starts etcd and waits until it answers; false if it exits or stays silent.
  bool start() {
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args = {etcd_binary(),
                                     "--name=sluice-test",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--listen-client-urls=" + url(),
                                     "--advertise-client-urls=" + url(),
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=sluice-test=" + peer,
                                     "--initial-cluster-state=new",
                                     "--logger=zap",
                                     "--log-outputs=stderr"};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    int log_fd =
        ::open((dir_ / "etcd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot create the etcd log");
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      // Only async-signal-safe calls until exec. etcd dies with the test if the test dies.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::syscall(SYS_close_range, 3u, ~0u, 0u);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + 15s;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (post("/v3/kv/range", R"({"key":"AA=="})")) return true;
      std::this_thread::sleep_for(20ms);
    }
    kill();
    return false;
  }

  fs::path dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

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
  etcd_process etcd;
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

  etcd_process etcd_;
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

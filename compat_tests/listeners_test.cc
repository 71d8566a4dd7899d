// Several named listeners, as Kafka has them.
//
// A client is told the broker's address on the listener it connected to: Metadata (every version),
// DescribeCluster and FindCoordinator answer with that listener's advertised endpoint, as Kafka's
// KafkaApis does with the request's listener name. librdkafka then connects to the address the
// metadata lists, not to its bootstrap address (README 6.10), so a client bootstrapped on one
// listener keeps using that listener's advertised address for produce, fetch and its group.
//
// The listeners are told apart by address: 127.0.0.1 and 127.0.0.2 are both local on Linux.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "compat_tests/broker_fixture.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/tcp_proxy.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;

config_map two_listeners(config_map extra = {}) {
  config_map c = {
      {"listeners", "INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.2:0"},
      {"listener.security.protocol.map", "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT"},
      {"inter.broker.listener.name", "INTERNAL"},
  };
  for (auto& [k, v] : extra)
    c[k] = v;
  return c;
}

std::string address(const std::string& host, int32_t port) {
  return host + ":" + std::to_string(port);
}

// The broker's address as each API that names it answers on a connection to host:port, one
// "API: node host:port" line each, so that one comparison shows every answer.
std::vector<std::string> advertised_by_every_api(const std::string& host, uint16_t port) {
  raw_connection conn(host, port);
  int32_t id = 1;
  std::vector<std::string> out;
  auto add = [&](const std::string& api, int32_t node, const std::string& h, int32_t p) {
    out.push_back(api + ": " + std::to_string(node) + " " + address(h, p));
  };
  for (const metadata_broker& b : parse_metadata_brokers(
           0, split_response(round_trip(conn, metadata_v0_request(id++, {})), false).body)) {
    add("Metadata v0", b.node_id, b.host, b.port);
  }
  for (const metadata_broker& b : parse_metadata_brokers(
           4, split_response(round_trip(conn, metadata_v4_request(id++, {}, false)), false).body)) {
    add("Metadata v4", b.node_id, b.host, b.port);
  }
  metadata_v12 v12 = parse_metadata_v12(
      split_response(round_trip(conn, metadata_v12_request(id++, {}, false, true)), true).body);
  for (const metadata_broker& b : v12.brokers)
    add("Metadata v12", b.node_id, b.host, b.port);
  describe_cluster_v0 cluster = parse_describe_cluster_v0(
      split_response(round_trip(conn, describe_cluster_v0_request(id++)), true).body);
  EXPECT_EQ(cluster.error_code, 0);
  for (const metadata_broker& b : cluster.brokers)
    add("DescribeCluster v0", b.node_id, b.host, b.port);
  for (int16_t version : {0, 4}) {
    bool flexible = version >= 3;
    for (const coordinator_result& c : parse_find_coordinator(
             version, split_response(round_trip(conn, find_coordinator_request(version, id++, "g")),
                                     flexible)
                          .body)) {
      EXPECT_EQ(c.error_code, 0);
      add("FindCoordinator v" + std::to_string(version), c.node_id, c.host, c.port);
    }
  }
  return out;
}

std::vector<std::string> every_api_answers(const std::string& host, int32_t port) {
  std::vector<std::string> out;
  for (const char* api : {"Metadata v0", "Metadata v4", "Metadata v12", "DescribeCluster v0",
                          "FindCoordinator v0", "FindCoordinator v4"}) {
    out.push_back(std::string(api) + ": 1 " + address(host, port));
  }
  return out;
}

TEST(Listeners, EachListenerAnswersWithItsOwnAddress) {
  broker b(two_listeners());
  ASSERT_EQ(b.host("INTERNAL"), "127.0.0.1");
  ASSERT_EQ(b.host("EXTERNAL"), "127.0.0.2");
  ASSERT_NE(b.port("INTERNAL"), b.port("EXTERNAL"));
  // Neither has an advertised.listeners entry: each advertises its own address, with the port
  // it was given for port 0.
  EXPECT_EQ(advertised_by_every_api("127.0.0.1", b.port("INTERNAL")),
            every_api_answers("127.0.0.1", b.port("INTERNAL")));
  EXPECT_EQ(advertised_by_every_api("127.0.0.2", b.port("EXTERNAL")),
            every_api_answers("127.0.0.2", b.port("EXTERNAL")));
  // One start-up line per listener, in the format scripts read.
  std::string log = b.log();
  EXPECT_NE(log.find("listening on INTERNAL://127.0.0.1:" + std::to_string(b.port("INTERNAL")) +
                     " (advertised as 127.0.0.1:" + std::to_string(b.port("INTERNAL")) + ")"),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("listening on EXTERNAL://127.0.0.2:" + std::to_string(b.port("EXTERNAL")) +
                     " (advertised as 127.0.0.2:" + std::to_string(b.port("EXTERNAL")) + ")"),
            std::string::npos)
      << log;

  // A restart binds both listeners again on the same ports.
  const uint16_t internal = b.port("INTERNAL");
  const uint16_t external = b.port("EXTERNAL");
  ASSERT_EQ(b.stop(), 0);
  b.restart();
  EXPECT_EQ(b.port("INTERNAL"), internal);
  EXPECT_EQ(b.port("EXTERNAL"), external);
  EXPECT_EQ(advertised_by_every_api("127.0.0.2", external),
            every_api_answers("127.0.0.2", external));
}

TEST(Listeners, AnAdvertisedEntryAppliesToItsListenerOnly) {
  // EXTERNAL is advertised as a proxy in front of it; INTERNAL has no entry.
  tcp_proxy proxy;
  broker b(two_listeners(
      {{"advertised.listeners", "EXTERNAL://127.0.0.1:" + std::to_string(proxy.port())}}));
  proxy.set_upstream(b.host("EXTERNAL"), b.port("EXTERNAL"));
  EXPECT_EQ(advertised_by_every_api("127.0.0.1", b.port("INTERNAL")),
            every_api_answers("127.0.0.1", b.port("INTERNAL")));
  EXPECT_EQ(advertised_by_every_api("127.0.0.2", b.port("EXTERNAL")),
            every_api_answers("127.0.0.1", proxy.port()));
  EXPECT_EQ(advertised_by_every_api("127.0.0.1", proxy.port()),
            every_api_answers("127.0.0.1", proxy.port()));
}

// Produces `count` messages through a client bootstrapped on `bootstrap`, then reads the topic
// from the start in a new group through a client bootstrapped there too; returns the values read.
std::multiset<std::string> produce_and_consume(const std::string& bootstrap,
                                               const std::string& topic, const std::string& tag,
                                               size_t count, size_t expect_total) {
  producer p(bootstrap);
  for (size_t i = 0; i < count; ++i)
    p.produce(topic, RD_KAFKA_PARTITION_UA, "k", tag + std::to_string(i));
  EXPECT_TRUE(p.flush(30s));
  for (const producer::delivery& d : p.deliveries()) {
    EXPECT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
  }
  std::multiset<std::string> values;
  group_consumer c(bootstrap, "group-" + tag, topic);
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (values.size() < expect_total && std::chrono::steady_clock::now() < deadline) {
    if (auto m = c.poll(200ms); m && m->value) values.insert(*m->value);
  }
  EXPECT_TRUE(c.errors().empty()) << c.errors().front();
  return values;
}

TEST(Listeners, LibrdkafkaProducesAndConsumesOnEitherListener) {
  tcp_proxy proxy;
  broker b(two_listeners(
      {{"advertised.listeners", "EXTERNAL://127.0.0.1:" + std::to_string(proxy.port())}}));
  proxy.set_upstream(b.host("EXTERNAL"), b.port("EXTERNAL"));
  const std::string topic = "two-listeners";

  auto internal = produce_and_consume(b.bootstrap("INTERNAL"), topic, "internal-", 5, 5);
  EXPECT_EQ(internal.size(), 5u);
  EXPECT_TRUE(proxy.client_streams().empty()) << "an INTERNAL client went through EXTERNAL's proxy";

  // Bootstrapped on EXTERNAL's own address, the client is told the proxy's and moves there.
  auto external = produce_and_consume(b.bootstrap("EXTERNAL"), topic, "external-", 5, 10);
  ASSERT_EQ(external.size(), 10u);
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(external.count("internal-" + std::to_string(i)), 1u) << i;
    EXPECT_EQ(external.count("external-" + std::to_string(i)), 1u) << i;
  }
  std::set<int16_t> via_proxy;
  for (const auto& stream : proxy.client_streams()) {
    for (int16_t key : request_api_keys(stream))
      via_proxy.insert(key);
  }
  // The group's FindCoordinator may go to the bootstrap connection; the JoinGroup goes to the
  // coordinator's advertised address.
  for (int16_t key : {0, 1, 11}) {  // Produce, Fetch, JoinGroup
    EXPECT_TRUE(via_proxy.contains(key)) << "API " << key << " did not go through the proxy";
  }
}

// Runs the broker with `overrides` until it exits (at most 10 s); returns its exit code and
// stderr.
std::pair<int, std::string> run_to_exit(const std::vector<std::string>& overrides) {
  const char* bin = std::getenv("SLUICE_BIN");
  if (bin == nullptr) throw std::runtime_error("SLUICE_BIN is not set");
  std::string dir_template =
      (std::filesystem::temp_directory_path() / "sluice-listeners-XXXXXX").string();
  if (::mkdtemp(dir_template.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  const std::filesystem::path dir = dir_template;
  const std::string err_path = (dir / "stderr").string();

  std::vector<std::string> args = {bin, "--override", "log.dirs=" + (dir / "data").string()};
  for (const std::string& o : overrides) {
    args.push_back("--override");
    args.push_back(o);
  }
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
                                   0644);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, bin, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + std::string(bin));

  int status = 0;
  bool exited = wait_until([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 10s);
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  std::ifstream in(err_path);
  std::stringstream text;
  text << in.rdbuf();
  std::filesystem::remove_all(dir);
  int code = exited && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return {code, text.str()};
}

TEST(Listeners, InvalidConfigurationsAreRefusedAtStart) {
  const std::string two = "listeners=INTERNAL://127.0.0.1:0,EXTERNAL://127.0.0.2:0";
  const std::string map = "listener.security.protocol.map=INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT";
  struct refused {
    std::vector<std::string> overrides;
    std::string reason;
  };
  const std::vector<refused> cases = {
      {{"listeners=PLAINTEXT://127.0.0.1:0,plaintext://127.0.0.2:0"},
       "Each listener must have a different name"},
      {{"listeners=PLAINTEXT://localhost:19092,OTHER://:19092",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,OTHER:PLAINTEXT"},
       "Each listener must have a different port"},
      {{"listeners=PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.2:0"},
       "No security protocol defined for listener INTERNAL"},
      {{"listeners=PLAINTEXT://127.0.0.1:0,SSL://127.0.0.2:0"}, "only PLAINTEXT"},
      {{"listener.security.protocol.map=PLAINTEXT:TLS"}, "Invalid security protocol `TLS`"},
      {{two, map}, "inter.broker.listener.name"},
      {{two, map + ",OTHER:PLAINTEXT", "inter.broker.listener.name=OTHER"},
       "inter.broker.listener.name must be a listener name"},
      {{"listeners=PLAINTEXT://127.0.0.1:0", "advertised.listeners=SSL://127.0.0.1:9093"},
       "advertised.listeners listener names must be equal to or a subset"},
      {{"listeners=PLAINTEXT://0.0.0.0:0"}, "cannot use the nonroutable meta-address 0.0.0.0"},
  };
  for (const refused& c : cases) {
    auto [code, err] = run_to_exit(c.overrides);
    EXPECT_EQ(code, 2) << c.reason << "\n" << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
    EXPECT_TRUE(err.starts_with("sluice: ")) << err;
    EXPECT_NE(err.find(c.reason), std::string::npos) << err;
    EXPECT_EQ(err.find("listening on"), std::string::npos) << err;
  }
}

}  // namespace
}  // namespace sluice::compat

// A three-broker Sluice cluster coordinated by a private etcd (cluster_fixture.h), driven by
// librdkafka 2.0.2, raw requests and etcd's own HTTP gateway: registration and the controller,
// replication (acks=all, identical replica logs), the ISR shrinking and growing around a stopped
// follower, min.insync.replicas, the refusals (replication factor, duplicate node.id, another
// cluster's data dir), stray logs of a topic deleted while its broker was down, the fencing of
// a deposed controller, topic configs changed through a broker that is not the controller
// (AlterConfigs and IncrementalAlterConfigs as raw requests to one chosen broker: librdkafka
// 2.0.2 has no IncrementalAlterConfigs and picks the broker itself), producer ids unique
// across the brokers and a restart (InitProducerId as raw requests to each broker), and
// leadership moved on purpose: a rolling restart of controlled shutdowns under idempotent acks=all
// producers, ElectLeaders (raw requests: librdkafka 2.0.2 has no ElectLeaders) and the automatic
// return of leaders to their preferred replicas; and fetch from follower (KIP-392), asked raw and
// by librdkafka with client.rack.
//
// Client behaviour relied on: librdkafka sends Produce to the partition leader named in Metadata
// and CreateTopics/DeleteTopics to the controller named in Metadata (README 6.10); the legacy
// consumer (manual assignment, no group) fetches each partition from its leader and reads only
// up to the high watermark. Raw requests are used where librdkafka's retries would hide the
// broker's exact error code (NOT_ENOUGH_REPLICAS) and to ask one particular broker.

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "compat_tests/cluster_fixture.h"
#include "compat_tests/cluster_workload.h"
#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One key as etcd's gateway returns it (/v3/kv/range), values decoded.
struct etcd_kv {
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

std::optional<etcd_kv> etcd_get(etcd_process& etcd, const std::string& key) {
  auto answer = etcd.post("/v3/kv/range", R"({"key":")" + base64_encode(key) + R"("})");
  if (!answer) throw std::runtime_error("etcd did not answer a range request");
  if (answer->find(R"("kvs")") == std::string::npos) return std::nullopt;
  auto field = [&](const std::string& name) -> std::string {
    std::smatch m;
    if (std::regex_search(*answer, m, std::regex("\"" + name + "\":\"([^\"]*)\""))) return m[1];
    return "";
  };
  etcd_kv kv;
  kv.value = base64_decode(field("value"));
  kv.create_revision = std::stoll("0" + field("create_revision"));
  kv.mod_revision = std::stoll("0" + field("mod_revision"));
  kv.lease = std::stoll("0" + field("lease"));
  return kv;
}

// The node id in a controller record ({"node_id":N}); -1 if there is none.
int32_t controller_node(const std::string& value) {
  std::smatch m;
  if (std::regex_search(value, m, std::regex(R"("node_id"\s*:\s*(-?\d+))"))) {
    return std::stoi(m[1]);
  }
  return -1;
}

struct produce_answer {
  int16_t error_code = -1;
  int64_t base_offset = -1;
};

// Raw Produce v7 of one record to `partition` on broker `node`.
produce_answer raw_produce(cluster& c, int32_t node, const std::string& topic, int32_t partition,
                           int16_t acks, int32_t timeout_ms, const std::string& value) {
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes batch = build_record_batch({{std::string("k"), value, 0}}, now_ms());
  bytes payload = round_trip(conn, produce_request(7, 1, topic, partition, batch, acks, timeout_ms),
                             std::chrono::milliseconds(timeout_ms) + 10s);
  auto results = parse_produce_response(7, split_response(payload, false).body);
  if (results.size() != 1) throw std::runtime_error("Produce answered no single partition");
  return {results[0].error_code, results[0].offset};
}

// A consumer's ListOffsets v7 latest of `partition`, asked of broker `node`: its error and offset.
partition_result list_latest(cluster& c, int32_t node, const std::string& topic,
                             int32_t partition) {
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes payload = round_trip(conn, list_offsets_v7_request(1, topic, partition, -1), 5s);
  auto results = parse_list_offsets_v7(split_response(payload, true).body);
  if (results.size() != 1) throw std::runtime_error("ListOffsets answered no single partition");
  return results[0];
}

// ListOffsets latest (the high watermark) of `partition`, asked of broker `node`.
int64_t latest_offset(cluster& c, int32_t node, const std::string& topic, int32_t partition) {
  partition_result r = list_latest(c, node, topic, partition);
  if (r.error_code != 0) {
    throw std::runtime_error("ListOffsets failed on broker " + std::to_string(node) + ": error " +
                             std::to_string(r.error_code));
  }
  return r.offset;
}

// The partition as broker `node` describes it; nullopt if it does not know it.
std::optional<cluster_metadata::partition> partition_on(cluster& c, int32_t node,
                                                        const std::string& topic, int32_t p) {
  try {
    cluster_metadata md = c.metadata(node, {topic});
    const cluster_metadata::topic* t = md.find(topic);
    if (t == nullptr) return std::nullopt;
    for (const auto& part : t->partitions)
      if (part.index == p) return part;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

std::vector<int32_t> sorted(std::vector<int32_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

// Waits until every broker of `asked` reports `expected` (sorted) as the ISR of topic/p.
bool wait_for_isr(cluster& c, const std::vector<int32_t>& asked, const std::string& topic,
                  int32_t p, const std::vector<int32_t>& expected,
                  std::chrono::milliseconds timeout, std::string* last) {
  return wait_until(
      [&] {
        for (int32_t node : asked) {
          auto part = partition_on(c, node, topic, p);
          if (!part) return false;
          if (last) *last = "broker " + std::to_string(node) + " ISR " + ids(part->isr);
          if (sorted(part->isr) != sorted(expected)) return false;
        }
        return true;
      },
      timeout);
}

// ---- Topic configs, asked of one chosen broker ---------------------------------------------

constexpr int8_t topic_resource = 2;
constexpr int8_t broker_resource = 4;
constexpr int16_t alter_configs_key = 33;
constexpr int16_t incremental_alter_configs_key = 44;
constexpr int8_t dynamic_topic_config = 1;  // DescribeConfigs' config_source

struct config_entry {
  std::string name;
  std::optional<std::string> value;
  int8_t operation = 0;  // IncrementalAlterConfigs only: SET 0, DELETE 1, APPEND 2, SUBTRACT 3
};
struct config_resource {
  int8_t type = topic_resource;
  std::string name;
  std::vector<config_entry> configs;
};
struct config_answer {
  int16_t error_code = -1;
  std::string message;
  int8_t type = 0;
  std::string name;
};

// AlterConfigs v0 or IncrementalAlterConfigs v0 (both non-flexible, with the same answer) of
// `resources`, sent to broker `node` itself.
std::vector<config_answer> alter_configs_on(cluster& c, int32_t node, int16_t api_key,
                                            const std::vector<config_resource>& resources,
                                            bool validate_only = false) {
  byte_writer w;
  w.array_length(static_cast<int32_t>(resources.size()), false);
  for (const config_resource& r : resources) {
    w.i8(r.type);
    w.string(r.name, false);
    w.array_length(static_cast<int32_t>(r.configs.size()), false);
    for (const config_entry& e : r.configs) {
      w.string(e.name, false);
      if (api_key == incremental_alter_configs_key) w.i8(e.operation);
      if (e.value) {
        w.string(*e.value, false);
      } else {
        w.null_string(false);
      }
    }
  }
  w.i8(validate_only ? 1 : 0);
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes payload = round_trip(conn, frame_request(api_key, 0, 1, false, w.data()), 20s);
  byte_reader r(split_response(payload, false).body);
  r.i32();  // throttle
  std::vector<config_answer> out(static_cast<size_t>(std::max(0, r.array_length(false))));
  for (config_answer& a : out) {
    a.error_code = r.i16();
    a.message = r.string(false).value_or("");
    a.type = r.i8();
    a.name = r.string(false).value_or("");
  }
  return out;
}

// One TOPIC resource's answer.
config_answer alter_topic_on(cluster& c, int32_t node, int16_t api_key, const std::string& topic,
                             std::vector<config_entry> configs, bool validate_only = false) {
  std::vector<config_answer> answers = alter_configs_on(
      c, node, api_key, {{topic_resource, topic, std::move(configs)}}, validate_only);
  if (answers.size() != 1) throw std::runtime_error("Alter*Configs answered no single resource");
  return answers[0];
}

struct described_config {
  std::optional<std::string> value;
  int8_t source = 0;
};
struct described_topic {
  int16_t error_code = -1;
  std::map<std::string, described_config> configs;
};

// DescribeConfigs v1 of a topic, asked of broker `node` itself.
described_topic describe_topic_on(cluster& c, int32_t node, const std::string& topic) {
  byte_writer w;
  w.array_length(1, false);
  w.i8(topic_resource);
  w.string(topic, false);
  w.array_length(-1, false);  // every config
  w.i8(0);                    // include_synonyms
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes payload = round_trip(conn, frame_request(32, 1, 1, false, w.data()), 10s);
  byte_reader r(split_response(payload, false).body);
  r.i32();  // throttle
  if (r.array_length(false) != 1) throw std::runtime_error("DescribeConfigs: not one result");
  described_topic out;
  out.error_code = r.i16();
  r.string(false);  // error message
  r.i8();
  r.string(false);
  const int32_t n = r.array_length(false);
  for (int32_t i = 0; i < n; ++i) {
    std::string name = r.string(false).value_or("");
    described_config d;
    d.value = r.string(false);
    r.i8();  // read_only
    d.source = r.i8();
    r.i8();  // is_sensitive
    const int32_t synonyms = r.array_length(false);
    for (int32_t j = 0; j < synonyms; ++j) {
      r.string(false);
      r.string(false);
      r.i8();
    }
    out.configs[name] = d;
  }
  return out;
}

// Whether broker `node` describes the topic's `name` as its own override `value` (nullopt: not
// overridden).
bool shows_override(cluster& c, int32_t node, const std::string& topic, const std::string& name,
                    const std::optional<std::string>& value, std::string* seen = nullptr) {
  described_topic d = describe_topic_on(c, node, topic);
  auto it = d.configs.find(name);
  const bool overridden = it != d.configs.end() && it->second.source == dynamic_topic_config;
  if (seen) {
    *seen = "broker " + std::to_string(node) + ": " + name + "=" +
            (it == d.configs.end() ? "<absent>" : it->second.value.value_or("<null>")) +
            (overridden ? " (topic override)" : " (not overridden)");
  }
  if (d.error_code != 0 || it == d.configs.end()) return false;
  return value ? overridden && it->second.value == value : !overridden;
}

// Waits until every broker describes the topic's `name` as `value` (see shows_override).
bool every_broker_shows(cluster& c, const std::string& topic, const std::string& name,
                        const std::optional<std::string>& value, std::string* seen) {
  return wait_until(
      [&] {
        for (int32_t node = 1; node <= cluster::size; ++node) {
          if (!shows_override(c, node, topic, name, value, seen)) return false;
        }
        return true;
      },
      10s);
}

// The topic's record in etcd.
std::optional<etcd_kv> topic_record_in_etcd(cluster& c, const std::string& topic) {
  auto id = etcd_get(c.etcd(), c.prefix() + "/topic_names/" + topic);
  if (!id) return std::nullopt;
  return etcd_get(c.etcd(), c.prefix() + "/topics/" + id->value);
}

size_t segment_files(const fs::path& partition_dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(partition_dir, ec))
    n += e.path().extension() == ".log" ? 1 : 0;
  return n;
}

// A failing test prints each broker's stderr (the broker fixture does, as its brokers go).
class Cluster : public ::testing::Test {
 protected:
  std::unique_ptr<cluster> c_;
};

TEST_F(Cluster, ThreeBrokersRegisterAndAgreeOnTheController) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  std::vector<cluster_metadata::broker_entry> expected;
  for (int32_t id = 1; id <= 3; ++id)
    expected.push_back({id, c.node(id).host(), c.node(id).port()});

  std::set<int32_t> controllers;
  std::set<std::string> cluster_ids;
  for (int32_t id = 1; id <= 3; ++id) {
    SCOPED_TRACE("asking broker " + std::to_string(id));
    cluster_metadata md = c.metadata(id);
    EXPECT_EQ(md.brokers, expected);
    controllers.insert(md.controller_id);
    ASSERT_TRUE(md.cluster_id.has_value());
    cluster_ids.insert(*md.cluster_id);

    cluster_description dc = c.describe(id);
    EXPECT_EQ(dc.error_code, 0);
    EXPECT_EQ(dc.brokers, expected);
    controllers.insert(dc.controller_id);
    cluster_ids.insert(dc.cluster_id);
  }
  ASSERT_EQ(controllers.size(), 1u) << "brokers name different controllers";
  const int32_t controller = *controllers.begin();
  EXPECT_GE(controller, 1);
  EXPECT_LE(controller, 3);
  EXPECT_EQ(cluster_ids.size(), 1u) << "brokers report different cluster ids";

  // What the brokers say is what etcd holds: the election key names the controller, the cluster
  // id key holds the id, and each broker's registration is there under a lease.
  auto key = etcd_get(c.etcd(), c.prefix() + "/controller");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(controller_node(key->value), controller) << key->value;
  EXPECT_NE(key->lease, 0);
  auto id = etcd_get(c.etcd(), c.prefix() + "/cluster_id");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->value, *cluster_ids.begin());
  for (int32_t node = 1; node <= 3; ++node) {
    auto registration = etcd_get(c.etcd(), c.prefix() + "/brokers/" + std::to_string(node));
    ASSERT_TRUE(registration.has_value()) << "broker " << node;
    EXPECT_NE(registration->lease, 0);
    EXPECT_NE(registration->value.find(std::to_string(c.node(node).port())), std::string::npos)
        << registration->value;
  }
}

TEST_F(Cluster, AcksAllMessagesAreReadOnceInOrderAndReplicasHoldTheSameBytes) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string topic = "replicated";
  constexpr int partitions = 12;
  ASSERT_EQ(c.create_topic(topic, partitions, 3, {}, 2), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto described = c.wait_for_topic(topic, partitions, 3);
  ASSERT_TRUE(described.has_value());
  std::map<int32_t, int> led;
  for (const auto& p : described->partitions) {
    ++led[p.leader];
    EXPECT_EQ(std::set<int32_t>(p.replicas.begin(), p.replicas.end()).size(), 3u)
        << "partition " << p.index << " has a replica twice";
  }
  // Kafka's placement: leaders round-robin over the brokers.
  EXPECT_EQ(led, (std::map<int32_t, int>{{1, 4}, {2, 4}, {3, 4}}));

  constexpr int producers = 2;
  constexpr int per_producer = 10000;
  std::vector<std::unique_ptr<producer>> prods;
  for (int i = 0; i < producers; ++i) {
    prods.push_back(std::make_unique<producer>(
        c.bootstrap(), std::map<std::string, std::string>{
                           {"acks", "all"}, {"linger.ms", "5"}, {"message.timeout.ms", "60000"}}));
  }
  std::atomic<int> finished{0};
  std::vector<std::string> thread_errors(producers);
  std::vector<std::thread> threads;
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&, i] {
      try {
        for (int seq = 0; seq < per_producer; ++seq) {
          std::string key = "key-";
          key += std::to_string(seq % 997);
          prods[i]->produce(topic, -1, key, value_of(i, seq));
        }
        if (!prods[i]->flush(90s)) thread_errors[i] = "flush timed out";
      } catch (const std::exception& e) {
        thread_errors[i] = e.what();
      }
      ++finished;
    });
  }

  // Meanwhile a consumer with a manual assignment of every partition reads from the start.
  simple_consumer consumer(c.bootstrap(), topic, {{"fetch.wait.max.ms", "100"}});
  for (int32_t p = 0; p < partitions; ++p)
    consumer.start(p, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> consumed;
  const auto deadline = std::chrono::steady_clock::now() + 100s;
  constexpr size_t total = static_cast<size_t>(producers) * per_producer;
  while (std::chrono::steady_clock::now() < deadline &&
         (finished.load() < producers || consumed.size() < total)) {
    auto got = consumer.consume(total - std::min(total, consumed.size()) + 1, 200ms);
    consumed.insert(consumed.end(), got.begin(), got.end());
  }
  for (auto& t : threads)
    t.join();
  // Anything read twice would arrive now.
  auto late = consumer.consume(1, 1s);
  consumed.insert(consumed.end(), late.begin(), late.end());
  for (int i = 0; i < producers; ++i)
    EXPECT_EQ(thread_errors[i], "") << "producer " << i;

  size_t delivery_errors = 0;
  std::string first_error;
  for (int i = 0; i < producers; ++i) {
    for (const auto& d : prods[i]->deliveries()) {
      if (!d.done || d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (delivery_errors++ == 0) first_error = d.done ? rd_kafka_err2str(d.err) : "no report";
      }
    }
  }
  EXPECT_EQ(delivery_errors, 0u) << "first: " << first_error;
  EXPECT_TRUE(consumer.errors().empty())
      << consumer.errors().size() << " consume errors, first: " << consumer.errors().front();
  ASSERT_EQ(consumed.size(), total);

  // Per partition, the consumer saw offsets 0, 1, 2, ... in order, each once.
  std::map<int32_t, std::vector<const message*>> by_partition;
  for (const auto& m : consumed)
    by_partition[m.partition].push_back(&m);
  std::map<std::pair<int32_t, int64_t>, std::string> at;
  for (const auto& [p, list] : by_partition) {
    for (size_t i = 0; i < list.size(); ++i) {
      ASSERT_EQ(list[i]->offset, static_cast<int64_t>(i)) << "partition " << p;
      at[{p, list[i]->offset}] = list[i]->value.value_or("<null>");
    }
  }
  // Every acknowledged message is at the offset its delivery report gave, and each producer's
  // messages are in produce order within a partition.
  for (int i = 0; i < producers; ++i) {
    auto deliveries = prods[i]->deliveries();
    ASSERT_EQ(deliveries.size(), static_cast<size_t>(per_producer));
    std::map<int32_t, int64_t> last_offset;
    for (int seq = 0; seq < per_producer; ++seq) {
      const auto& d = deliveries[seq];
      if (d.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
      auto found = at.find({d.partition, d.offset});
      ASSERT_NE(found, at.end()) << value_of(i, seq) << " acknowledged at " << d.partition << "/"
                                 << d.offset << " was not read";
      ASSERT_EQ(found->second, value_of(i, seq));
      auto prev = last_offset.find(d.partition);
      if (prev != last_offset.end()) {
        ASSERT_GT(d.offset, prev->second) << value_of(i, seq);
      }
      last_offset[d.partition] = d.offset;
    }
  }

  // The three replicas of each partition hold the same bytes, up to the high watermark: once the
  // followers have caught up (their logs stop differing from the leader's), the .log files are
  // identical and end at the high watermark.
  for (const auto& p : described->partitions) {
    SCOPED_TRACE("partition " + std::to_string(p.index));
    const int64_t hw = latest_offset(c, p.leader, topic, p.index);
    EXPECT_EQ(hw, static_cast<int64_t>(by_partition[p.index].size()));
    std::vector<std::string> logs(3);
    bool same = wait_until(
        [&] {
          for (size_t r = 0; r < 3; ++r)
            logs[r] = read_partition_log(c.node(p.replicas[r]).partition_dir(topic, p.index));
          return logs[0] == logs[1] && logs[1] == logs[2];
        },
        20s);
    EXPECT_TRUE(same) << "replica log sizes " << logs[0].size() << ", " << logs[1].size() << ", "
                      << logs[2].size() << " (replicas " << ids(p.replicas) << ")";
    auto batches = batches_of(logs[0]);
    ASSERT_FALSE(batches.empty());
    EXPECT_EQ(batches.back().base_offset + batches.back().records, hw);
  }
}

TEST_F(Cluster, AStoppedFollowerLeavesTheIsrAndRejoinsAndMinInsyncReplicasRefuses) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string topic = "isr";
  ASSERT_EQ(c.create_topic(topic, 3, 3, {{"min.insync.replicas", "2"}}, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  const int32_t controller = c.wait_for_brokers({1, 2, 3}, {1, 2, 3});
  ASSERT_GT(controller, 0);
  // A partition led by the controller: its AlterPartition requests never depend on a stopped
  // broker.
  auto described = c.wait_for_topic(topic, 3, 3);
  ASSERT_TRUE(described.has_value());
  int32_t p = -1;
  std::vector<int32_t> followers;
  for (const auto& part : described->partitions) {
    if (part.leader != controller) continue;
    p = part.index;
    for (int32_t r : part.replicas)
      if (r != controller) followers.push_back(r);
  }
  ASSERT_GE(p, 0) << "no partition led by the controller " << controller;
  ASSERT_EQ(followers.size(), 2u);
  const int32_t leader = controller;
  const int32_t stopped = followers[0];
  const int32_t other = followers[1];

  producer prod(c.bootstrap(), {{"acks", "all"},
                                {"linger.ms", "0"},
                                {"message.timeout.ms", "30000"},
                                {"request.timeout.ms", "25000"}});
  size_t warm = prod.produce(topic, p, std::string("k"), std::string("before"));
  ASSERT_TRUE(prod.flush(15s));
  ASSERT_EQ(prod.delivery_of(warm).err, RD_KAFKA_RESP_ERR_NO_ERROR);

  {
    stopped_process pause(c.node(stopped).pid());
    const auto start = std::chrono::steady_clock::now();
    size_t id = prod.produce(topic, p, std::string("k"), std::string("while-stopped"));
    ASSERT_TRUE(prod.flush(30s));
    auto d = prod.delivery_of(id);
    EXPECT_EQ(d.err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(d.err);
    // acks=all waited for the stopped follower until it left the ISR (replica.lag.time.max.ms
    // after its last fetch, 3 s): not answered while it was still a member.
    EXPECT_GE(d.at - start, 1500ms);
    std::string last;
    EXPECT_TRUE(wait_for_isr(c, {leader, other}, topic, p, {leader, other}, 10s, &last))
        << "the stopped follower " << stopped << " did not leave the ISR; " << last;
    auto part = partition_on(c, leader, topic, p);
    ASSERT_TRUE(part.has_value());
    EXPECT_EQ(part->leader, leader);
    EXPECT_EQ(part->replicas.size(), 3u);
  }
  // Running again, it catches up and is added back.
  {
    std::string last;
    EXPECT_TRUE(wait_for_isr(c, {1, 2, 3}, topic, p, {1, 2, 3}, 30s, &last))
        << "broker " << stopped << " did not rejoin the ISR; " << last;
  }

  // Both followers stopped: once the ISR shrank to the leader alone, acks=all is refused with
  // NOT_ENOUGH_REPLICAS (min.insync.replicas=2) before anything is appended.
  {
    stopped_process pause_one(c.node(followers[0]).pid());
    stopped_process pause_two(c.node(followers[1]).pid());
    std::vector<int16_t> codes;
    bool refused = wait_until(
        [&] {
          produce_answer a = raw_produce(c, leader, topic, p, -1, 1000, "acks-all");
          codes.push_back(a.error_code);
          return a.error_code == 19;  // NOT_ENOUGH_REPLICAS
        },
        30s);
    std::string seen;
    for (int16_t code : codes)
      seen += std::to_string(code) + " ";
    ASSERT_TRUE(refused) << "error codes seen: " << seen;
    // Before: REQUEST_TIMED_OUT (7) while the stopped followers were still in the ISR, or
    // NOT_ENOUGH_REPLICAS_AFTER_APPEND (20) for a batch appended before the ISR shrank and
    // answered after.
    for (size_t i = 0; i + 1 < codes.size(); ++i)
      EXPECT_TRUE(codes[i] == 7 || codes[i] == 20) << "answer " << i << " of " << seen;
    std::string last;
    EXPECT_TRUE(wait_for_isr(c, {leader}, topic, p, {leader}, 5s, &last)) << last;

    const int64_t before = latest_offset(c, leader, topic, p);
    EXPECT_EQ(raw_produce(c, leader, topic, p, -1, 1000, "refused").error_code, 19);
    EXPECT_EQ(latest_offset(c, leader, topic, p), before) << "a refused batch was appended";
    // acks=1 does not look at min.insync.replicas.
    produce_answer one = raw_produce(c, leader, topic, p, 1, 1000, "acks-one");
    EXPECT_EQ(one.error_code, 0);
    EXPECT_EQ(one.base_offset, before);
  }
  // Both back: they register again if their sessions expired, and rejoin the ISR.
  EXPECT_EQ(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}, 30s), leader);
  std::string last;
  EXPECT_TRUE(wait_for_isr(c, {1, 2, 3}, topic, p, {1, 2, 3}, 30s, &last))
      << "the followers did not rejoin the ISR; " << last;
}

// A follower down while the leader deleted everything it had (DeleteRecords here; retention
// alike) finds its fetch offset below the leader's log start: it deletes its log, starts it again
// at that offset (Kafka's truncateFullyAndStartAt), catches up and rejoins the ISR.
TEST_F(Cluster, AFollowerWhollyBelowTheLeadersLogStartStartsAgainThere) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string topic = "start-again";
  ASSERT_EQ(c.create_topic(topic, 1, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  const int32_t leader = c.leader_of(topic, 0);
  ASSERT_GT(leader, 0);
  const int32_t follower = leader % 3 + 1;
  producer prod(c.bootstrap(), {{"acks", "all"},
                                {"linger.ms", "0"},
                                {"message.timeout.ms", "40000"},
                                {"request.timeout.ms", "30000"}});
  auto produce = [&](int n) {
    for (int i = 0; i < n; ++i)
      prod.produce(topic, 0, std::string("k"), "v" + std::to_string(i));
    return prod.flush(45s);
  };
  ASSERT_TRUE(produce(10));
  broker& down = c.node(follower);
  ASSERT_EQ(down.stop(), 0);
  // acks=all goes on once the stopped follower left the ISR.
  ASSERT_TRUE(produce(30));
  ASSERT_EQ(prod.acked_count(), 40u);
  int64_t low = -1;
  ASSERT_EQ(delete_records(prod.get(), topic, 0, 40, low), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(low, 40);

  down.restart();
  std::string last;
  ASSERT_TRUE(wait_for_isr(c, {1, 2, 3}, topic, 0, {1, 2, 3}, 30s, &last))
      << "broker " << follower << " did not rejoin the ISR; " << last << "\n"
      << c.logs_tail();
  ASSERT_TRUE(produce(5));
  ASSERT_EQ(prod.acked_count(), 45u);
  // Its log now starts at 40 and holds the leader's batches from there on, nothing before.
  auto log_files = [](const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".log") names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  };
  auto spans_from = [&](const fs::path& dir, int64_t from) {
    std::vector<std::pair<int64_t, int32_t>> out;
    for (const std::string& name : log_files(dir))
      for (const batch_span& b : batches_of(slurp(dir / name)))
        if (b.base_offset >= from) out.emplace_back(b.base_offset, b.records);
    return out;
  };
  const fs::path restarted = down.partition_dir(topic, 0);
  const fs::path leading = c.node(leader).partition_dir(topic, 0);
  EXPECT_EQ(log_files(restarted), std::vector<std::string>{"00000000000000000040.log"});
  EXPECT_TRUE(wait_until([&] { return spans_from(restarted, 0) == spans_from(leading, 40); }, 10s))
      << "the restarted follower does not hold the leader's batches from 40 on";
  int32_t records = 0;
  for (const auto& [base, count] : spans_from(restarted, 0))
    records += count;
  EXPECT_EQ(records, 5);
}

// A leader restarted with followers that cannot fetch (stopped) comes back with the high
// watermark of its checkpoint, below the log end where its epoch starts: until the high
// watermark gets there, a consumer's ListOffsets of the latest offset is OFFSET_NOT_AVAILABLE,
// never an offset behind what the leader may have acknowledged (Kafka's maybeOffsetsError).
TEST_F(Cluster, ARestartedLeaderWhoseHighWatermarkLagsAnswersOffsetNotAvailable) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string topic = "lagging";
  ASSERT_EQ(c.create_topic(topic, 1, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  const int32_t leader = c.leader_of(topic, 0);
  ASSERT_GT(leader, 0);
  // The leader's replica may still be being created: clients retry, and so does this.
  int64_t committed_end = -1;
  ASSERT_TRUE(wait_until(
      [&] {
        produce_answer a = raw_produce(c, leader, topic, 0, -1, 10000, "committed");
        committed_end = a.base_offset + 1;
        return a.error_code == 0;
      },
      15s));
  std::vector<int16_t> codes;
  std::vector<int64_t> offsets;
  {
    stopped_process one(c.node(leader % 3 + 1).pid());
    stopped_process two(c.node((leader + 1) % 3 + 1).pid());
    produce_answer tail = raw_produce(c, leader, topic, 0, 1, 10000, "acks-one");
    ASSERT_EQ(tail.error_code, 0);
    ASSERT_EQ(tail.base_offset, committed_end);
    c.node(leader).kill9();
    c.node(leader).restart();
    // Registration waits out the killed session; then the leader takes its partition back.
    ASSERT_TRUE(wait_until(
        [&] {
          partition_result r = list_latest(c, leader, topic, 0);
          codes.push_back(r.error_code);
          offsets.push_back(r.offset);
          return r.error_code == 78;  // OFFSET_NOT_AVAILABLE
        },
        30s))
        << "last answer: error " << codes.back() << " offset " << offsets.back();
    // Meanwhile a consumer's fetch between the high watermark and the log end is answered
    // empty, not OFFSET_OUT_OF_RANGE: the offset exists, it is not committed yet.
    raw_connection conn(c.node(leader).host(), c.node(leader).port());
    bytes payload = round_trip(conn, fetch_request(4, 9, topic, 0, committed_end, 0, 1), 5s);
    auto parts = parse_fetch_v4(split_response(payload, false).body);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].error_code, 0);
    EXPECT_TRUE(parts[0].records.empty());
    EXPECT_LE(parts[0].high_watermark, committed_end);
  }
  // The followers fetch again (or leave the ISR): the high watermark reaches the log end.
  int64_t latest = -1;
  ASSERT_TRUE(wait_until(
      [&] {
        partition_result r = list_latest(c, leader, topic, 0);
        codes.push_back(r.error_code);
        offsets.push_back(r.offset);
        latest = r.offset;
        return r.error_code == 0;
      },
      30s));
  EXPECT_EQ(latest, committed_end + 1);
  for (size_t i = 0; i < codes.size(); ++i) {
    if (codes[i] == 0) {
      EXPECT_EQ(offsets[i], committed_end + 1) << "answer " << i;
    }
    // Before it leads again: UNKNOWN_TOPIC_OR_PARTITION (3) until it read the cluster state,
    // then LEADER_NOT_AVAILABLE (5) or NOT_LEADER_OR_FOLLOWER (6).
    EXPECT_TRUE(codes[i] == 0 || codes[i] == 3 || codes[i] == 5 || codes[i] == 6 || codes[i] == 78)
        << "answer " << i << ": error " << codes[i];
  }
  EXPECT_EQ(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}, 30s) > 0, true);
}

TEST_F(Cluster, TooManyReplicasAndADuplicateNodeIdAreRefused) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  std::string message;
  EXPECT_EQ(c.create_topic("four-replicas", 1, 4, {}, 1, &message),
            RD_KAFKA_RESP_ERR_INVALID_REPLICATION_FACTOR)
      << message;
  for (int32_t id = 1; id <= 3; ++id) {
    cluster_metadata md = c.metadata(id, {"four-replicas"});
    const auto* t = md.find("four-replicas");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->error_code, 3) << "broker " << id << ": the refused topic exists";
  }
  EXPECT_FALSE(etcd_get(c.etcd(), c.prefix() + "/topic_names/four-replicas").has_value());

  // A fourth broker claiming node.id 2, which is alive: refused after one session timeout.
  const auto start = std::chrono::steady_clock::now();
  try {
    broker duplicate(c.broker_config(2));
    ADD_FAILURE() << "a second broker with node.id 2 started; its log:\n" << duplicate.log();
  } catch (const start_error& e) {
    EXPECT_EQ(e.exit_code, 2) << e.log;
    EXPECT_NE(e.log.find("node.id"), std::string::npos) << e.log;
  }
  EXPECT_GE(std::chrono::steady_clock::now() - start,
            std::chrono::milliseconds(cluster::session_timeout_ms - 1500))
      << "refused before the live broker's session could have expired";
  // The live broker 2 is untouched: still registered with its own address, still serving.
  EXPECT_GT(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}), 0);
  for (int32_t id = 1; id <= 3; ++id) {
    cluster_metadata md = c.metadata(id);
    ASSERT_EQ(md.brokers.size(), 3u);
    EXPECT_EQ(md.brokers[1].port, c.node(2).port()) << "asking broker " << id;
  }
  EXPECT_EQ(c.create_topic("after-duplicate", 3, 3, {}, 2), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST_F(Cluster, StrayLogsOfATopicDeletedWhileItsBrokerWasDownAreRemoved) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  ASSERT_EQ(c.create_topic("doomed", 3, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(c.create_topic("kept", 1, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  {
    producer prod(c.bootstrap(), {{"acks", "all"}});
    for (int i = 0; i < 30; ++i) {
      prod.produce("doomed", i % 3, std::string("k"), "v" + std::to_string(i));
      prod.produce("kept", 0, std::string("k"), "v" + std::to_string(i));
    }
    ASSERT_TRUE(prod.flush(30s));
    ASSERT_EQ(prod.acked_count(), 60u);
  }
  broker& third = c.node(3);
  for (int32_t p = 0; p < 3; ++p)
    ASSERT_TRUE(fs::exists(third.partition_dir("doomed", p))) << p;

  EXPECT_EQ(third.stop(), 0);
  ASSERT_GT(c.wait_for_brokers({1, 2}, {1, 2}), 0);
  {
    cluster_admin admin(c.bootstrap({1, 2}));
    ASSERT_EQ(admin.remove("doomed"), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  EXPECT_TRUE(wait_until(
      [&] {
        for (int32_t id : {1, 2}) {
          cluster_metadata md = c.metadata(id, {"doomed"});
          const auto* t = md.find("doomed");
          if (t == nullptr || t->error_code != 3) return false;
        }
        return true;
      },
      15s))
      << "brokers 1 and 2 still list the deleted topic";
  for (int32_t id : {1, 2})
    for (int32_t p = 0; p < 3; ++p)
      EXPECT_TRUE(wait_until([&] { return !fs::exists(c.node(id).partition_dir("doomed", p)); }))
          << "broker " << id << " kept doomed-" << p;
  // Broker 3 was down: its copies are still there until it starts.
  for (int32_t p = 0; p < 3; ++p)
    ASSERT_TRUE(fs::exists(third.partition_dir("doomed", p))) << p;

  third.restart();
  EXPECT_GT(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}), 0);
  for (int32_t p = 0; p < 3; ++p) {
    EXPECT_TRUE(wait_until([&] { return !fs::exists(third.partition_dir("doomed", p)); }, 15s))
        << "broker 3 kept the stray doomed-" << p;
  }
  // What is still in the cluster stays, and the restarted replica is back in its ISR.
  EXPECT_TRUE(fs::exists(third.partition_dir("kept", 0)));
  std::string last;
  EXPECT_TRUE(wait_for_isr(c, {1, 2, 3}, "kept", 0, {1, 2, 3}, 30s, &last)) << last;
  EXPECT_EQ(latest_offset(c, c.leader_of("kept", 0), "kept", 0), 30);
}

TEST_F(Cluster, ADeposedControllersFencedWriteFailsAndANewControllerServes) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string controller_key = c.prefix() + "/controller";
  auto before = etcd_get(c.etcd(), controller_key);
  ASSERT_TRUE(before.has_value());
  const int64_t old_revision = before->create_revision;
  ASSERT_GT(old_revision, 0);

  // The election key goes (as when an operator or a lost lease removes it): the controller is
  // deposed, and the brokers elect one again, under a new create_revision.
  auto deleted =
      c.etcd().post("/v3/kv/deleterange", R"({"key":")" + base64_encode(controller_key) + R"("})");
  ASSERT_TRUE(deleted.has_value());
  ASSERT_NE(deleted->find(R"("deleted":"1")"), std::string::npos) << *deleted;
  std::optional<etcd_kv> after;
  ASSERT_TRUE(wait_until(
      [&] {
        after = etcd_get(c.etcd(), controller_key);
        return after && after->create_revision > old_revision;
      },
      20s))
      << "no controller was elected again";
  const int32_t new_controller = controller_node(after->value);
  EXPECT_EQ(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}), new_controller);

  // A controller write fenced on the old election (as every controller transaction is) fails and
  // writes nothing.
  const std::string fenced_key = c.prefix() + "/topic_names/fenced";
  const auto fenced_put = [&](int64_t election_revision, const std::string& key) {
    return R"({"compare":[{"key":")" + base64_encode(controller_key) +
           R"(","target":"CREATE","result":"EQUAL","create_revision":")" +
           std::to_string(election_revision) + R"("}],"success":[{"request_put":{"key":")" +
           base64_encode(key) + R"(","value":")" + base64_encode("fenced") + R"("}}]})";
  };
  auto answer = c.etcd().post("/v3/kv/txn", fenced_put(old_revision, fenced_key));
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->find(R"("succeeded":true)"), std::string::npos) << *answer;
  EXPECT_FALSE(etcd_get(c.etcd(), fenced_key).has_value());
  // The same transaction on the new election's revision succeeds: the comparison is what fenced.
  const std::string probe_key = c.prefix() + "/test-probe";
  const std::string current = fenced_put(after->create_revision, probe_key);
  answer = c.etcd().post("/v3/kv/txn", current);
  ASSERT_TRUE(answer.has_value());
  EXPECT_NE(answer->find(R"("succeeded":true)"), std::string::npos) << *answer;

  // The new controller writes under its own election: a topic created through a broker that is
  // not the controller lands in etcd and is served.
  const int32_t via = new_controller == 1 ? 2 : 1;
  EXPECT_EQ(c.create_topic("after-election", 3, 3, {}, via), RD_KAFKA_RESP_ERR_NO_ERROR);
  EXPECT_TRUE(etcd_get(c.etcd(), c.prefix() + "/topic_names/after-election").has_value());
}

TEST_F(Cluster, AStandaloneBrokersDataDirIsRefused) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  std::string tmpl = (fs::temp_directory_path() / "sluice-standalone-XXXXXX").string();
  ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
  const fs::path dir = fs::path(tmpl) / "data";
  struct remove_dir {
    fs::path path;
    ~remove_dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  } cleanup{tmpl};
  {
    // node.id 4, as the cluster broker below: only the cluster id differs.
    broker standalone({{"node.id", "4"}, {"log.dirs", dir.string()}});
    producer prod(standalone.bootstrap(), {{"acks", "all"}});
    prod.produce("alone", 0, std::string("k"), std::string("v"));
    ASSERT_TRUE(prod.flush(15s));
    ASSERT_EQ(prod.acked_count(), 1u);
    EXPECT_EQ(standalone.stop(), 0);
  }
  const std::string meta = slurp(dir / "meta.properties");
  ASSERT_NE(meta.find("cluster.id="), std::string::npos) << meta;

  config_map config = c.broker_config(4);
  config["log.dirs"] = dir.string();
  try {
    broker joining(config);
    ADD_FAILURE() << "a broker started in a cluster on another cluster's data dir; its log:\n"
                  << joining.log();
  } catch (const start_error& e) {
    EXPECT_EQ(e.exit_code, 2) << e.log;
    EXPECT_NE(e.log.find("belongs to cluster"), std::string::npos) << e.log;
  }
  // Nothing changed: the data dir still belongs to the standalone broker, and the cluster never
  // saw a broker 4.
  EXPECT_EQ(slurp(dir / "meta.properties"), meta);
  EXPECT_TRUE(fs::exists(dir / "alone-0"));
  EXPECT_FALSE(etcd_get(c.etcd(), c.prefix() + "/brokers/4").has_value());
  EXPECT_EQ(c.metadata(1).node_ids(), (std::vector<int32_t>{1, 2, 3}));
}

TEST_F(Cluster, TopicConfigsChangedThroughABrokerThatIsNotTheControllerApplyOnEveryBroker) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string topic = "tuned";
  ASSERT_EQ(c.create_topic(topic, 3, 3, {{"retention.ms", "3600000"}}, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  auto described = c.wait_for_topic(topic, 3, 3);
  ASSERT_TRUE(described.has_value());
  const int32_t controller = c.wait_for_brokers({1, 2, 3}, {1, 2, 3});
  ASSERT_GT(controller, 0);
  const int32_t via = controller == 1 ? 2 : 1;
  // Kafka's placement leads the three partitions from the three brokers: what is checked on
  // every leader is checked on every broker.
  std::set<int32_t> leaders;
  for (const auto& p : described->partitions)
    leaders.insert(p.leader);
  ASSERT_EQ(leaders, (std::set<int32_t>{1, 2, 3}));
  // Metadata names a leader as soon as the cluster state does; its replica takes writes once made.
  for (const auto& p : described->partitions) {
    EXPECT_TRUE(wait_until([&] {
      return raw_produce(c, p.leader, topic, p.index, -1, 5000, "first").error_code == 0;
    })) << "partition "
        << p.index << " led by " << p.leader << " takes no write";
  }

  // AlterConfigs replaces the whole set: retention.ms goes back to the broker's value.
  config_answer replaced = alter_topic_on(
      c, via, alter_configs_key, topic, {{"max.message.bytes", "1000"}, {"segment.bytes", "4096"}});
  ASSERT_EQ(replaced.error_code, 0) << replaced.message;
  std::string seen;
  // The broker that answered shows it at once.
  EXPECT_TRUE(shows_override(c, via, topic, "max.message.bytes", "1000", &seen)) << seen;
  EXPECT_TRUE(shows_override(c, via, topic, "retention.ms", std::nullopt, &seen)) << seen;
  EXPECT_TRUE(every_broker_shows(c, topic, "max.message.bytes", "1000", &seen)) << seen;
  EXPECT_TRUE(every_broker_shows(c, topic, "segment.bytes", "4096", &seen)) << seen;
  EXPECT_TRUE(every_broker_shows(c, topic, "retention.ms", std::nullopt, &seen)) << seen;
  auto record = topic_record_in_etcd(c, topic);
  ASSERT_TRUE(record.has_value());
  EXPECT_NE(record->value.find(R"("max.message.bytes":"1000")"), std::string::npos)
      << record->value;
  EXPECT_EQ(record->value.find("retention.ms"), std::string::npos) << record->value;

  // Every leader refuses a batch over the new max.message.bytes and takes one under it.
  const std::string big(2000, 'b');
  for (const auto& p : described->partitions) {
    SCOPED_TRACE("partition " + std::to_string(p.index) + " led by " + std::to_string(p.leader));
    EXPECT_EQ(raw_produce(c, p.leader, topic, p.index, 1, 5000, big).error_code, 10);
    EXPECT_EQ(raw_produce(c, p.leader, topic, p.index, -1, 5000, "small").error_code, 0);
  }
  // Followers roll their copies at the new segment.bytes too.
  const auto& first = described->partitions.front();
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(raw_produce(c, first.leader, topic, first.index, -1, 5000, std::string(300, 'x'))
                  .error_code,
              0);
  }
  for (int32_t replica : first.replicas) {
    EXPECT_TRUE(wait_until([&] {
      return segment_files(c.node(replica).partition_dir(topic, first.index)) >= 3;
    })) << "broker "
        << replica << " has " << segment_files(c.node(replica).partition_dir(topic, first.index))
        << " segment(s) of partition " << first.index;
  }

  // IncrementalAlterConfigs changes only what it names.
  config_answer edited =
      alter_topic_on(c, via, incremental_alter_configs_key, topic,
                     {{"min.insync.replicas", "4", 0}, {"max.message.bytes", std::nullopt, 1}});
  ASSERT_EQ(edited.error_code, 0) << edited.message;
  EXPECT_TRUE(shows_override(c, via, topic, "min.insync.replicas", "4", &seen)) << seen;
  EXPECT_TRUE(every_broker_shows(c, topic, "min.insync.replicas", "4", &seen)) << seen;
  EXPECT_TRUE(every_broker_shows(c, topic, "max.message.bytes", std::nullopt, &seen)) << seen;
  EXPECT_TRUE(every_broker_shows(c, topic, "segment.bytes", "4096", &seen)) << seen;
  // min.insync.replicas 4 with three replicas: every leader refuses acks=all before appending,
  // and takes the batch it refused before as max.message.bytes is back to the broker's.
  for (const auto& p : described->partitions) {
    SCOPED_TRACE("partition " + std::to_string(p.index) + " led by " + std::to_string(p.leader));
    EXPECT_EQ(raw_produce(c, p.leader, topic, p.index, -1, 5000, "refused").error_code, 19);
    EXPECT_EQ(raw_produce(c, p.leader, topic, p.index, 1, 5000, big).error_code, 0);
  }
}

TEST_F(Cluster, ABrokerDownWhileATopicsConfigsChangedAppliesThemWhenItReturns) {
  // Without a controlled shutdown the broker that goes keeps its leaderships (its partitions wait
  // for it): back, it leads with the configs it left with until the cluster state corrects them.
  c_ = std::make_unique<cluster>(config_map{{"controlled.shutdown.enable", "false"}});
  cluster& c = *c_;
  const std::string topic = "while-away";
  ASSERT_EQ(c.create_topic(topic, 3, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto described = c.wait_for_topic(topic, 3, 3);
  ASSERT_TRUE(described.has_value());
  const int32_t controller = c.wait_for_brokers({1, 2, 3}, {1, 2, 3});
  ASSERT_GT(controller, 0);
  // Two brokers that are not the controller: one goes away, the other takes the change.
  std::vector<int32_t> others;
  for (int32_t id = 1; id <= cluster::size; ++id)
    if (id != controller) others.push_back(id);
  const int32_t away = others[0];
  const int32_t via = others[1];
  int32_t led_by_away = -1;
  for (const auto& p : described->partitions)
    if (p.leader == away) led_by_away = p.index;
  ASSERT_GE(led_by_away, 0);

  EXPECT_EQ(c.node(away).stop(), 0);
  ASSERT_GT(c.wait_for_brokers({controller, via}, {controller, via}), 0);
  config_answer changed =
      alter_topic_on(c, via, alter_configs_key, topic, {{"max.message.bytes", "1000"}});
  ASSERT_EQ(changed.error_code, 0) << changed.message;

  // Back with the logs it had, loaded with the broker's values: the cluster state gives them the
  // topic's, and as the partition's leader again (a preferred election gives back what the
  // failover moved while it was away) it refuses what they refuse.
  c.node(away).restart();
  ASSERT_GT(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}), 0);
  ASSERT_TRUE(c.wait_for_topic(topic, 3, 3, {1, 2, 3}, 60s)) << c.logs_tail();
  EXPECT_TRUE(wait_until(
      [&] {
        raw_connection conn(c.node(via).host(), c.node(via).port());
        round_trip(conn, elect_leaders_v1_request(1, 0, {{{topic, {led_by_away}}}}, 30000), 40s);
        return c.leader_of(topic, led_by_away, away) == away;
      },
      30s));
  std::string seen;
  EXPECT_TRUE(shows_override(c, away, topic, "max.message.bytes", "1000", &seen)) << seen;
  int16_t code = -1;
  EXPECT_TRUE(wait_until(
      [&] {
        code = raw_produce(c, away, topic, led_by_away, 1, 5000, std::string(2000, 'b')).error_code;
        return code != 6 && code != 5;  // not the leader yet, or no leader
      },
      20s));
  EXPECT_EQ(code, 10) << "a batch over the topic's max.message.bytes on broker " << away;
}

TEST_F(Cluster, ValidateOnlyAndRefusedTopicConfigChangesChangeNothing) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  const std::string topic = "steady";
  ASSERT_EQ(c.create_topic(topic, 1, 3, {{"retention.ms", "3600000"}}, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(topic, 1, 3).has_value());
  const int32_t controller = c.wait_for_brokers({1, 2, 3}, {1, 2, 3});
  ASSERT_GT(controller, 0);
  const int32_t via = controller == 3 ? 2 : 3;
  auto before = topic_record_in_etcd(c, topic);
  ASSERT_TRUE(before.has_value());

  // validate_only checks and writes nothing.
  EXPECT_EQ(
      alter_topic_on(c, via, alter_configs_key, topic, {{"retention.ms", "1000"}}, true).error_code,
      0);
  EXPECT_EQ(alter_topic_on(c, via, incremental_alter_configs_key, topic,
                           {{"retention.ms", "1000", 0}}, true)
                .error_code,
            0);
  config_answer dry_invalid =
      alter_topic_on(c, via, incremental_alter_configs_key, topic, {{"segment.ms", "-5", 0}}, true);
  EXPECT_EQ(dry_invalid.error_code, 40) << dry_invalid.message;

  // Refused values: INVALID_CONFIG with the reason, as a standalone broker gives it.
  config_answer negative = alter_topic_on(c, via, alter_configs_key, topic, {{"segment.ms", "-5"}});
  EXPECT_EQ(negative.error_code, 40);
  EXPECT_NE(negative.message, "");
  config_answer unknown =
      alter_topic_on(c, via, alter_configs_key, topic, {{"no.such.config", "1"}});
  EXPECT_EQ(unknown.error_code, 40);
  EXPECT_NE(unknown.message.find("Unknown topic config name"), std::string::npos)
      << unknown.message;
  config_answer append =
      alter_topic_on(c, via, incremental_alter_configs_key, topic, {{"retention.ms", "5", 2}});
  EXPECT_EQ(append.error_code, 40);
  EXPECT_EQ(append.message, "Config value append is not allowed for config key: retention.ms");
  EXPECT_EQ(alter_topic_on(c, via, alter_configs_key, "absent", {{"retention.ms", "1"}}).error_code,
            3);

  // BROKER resources are the receiving broker's to answer (the controller would find the id not
  // its own), next to a TOPIC resource that goes to the controller (here asking for what the
  // topic already has, which writes nothing).
  const std::string self = std::to_string(via);
  std::vector<config_answer> mixed =
      alter_configs_on(c, via, alter_configs_key,
                       {{broker_resource, self, {{"log.retention.hours", "1"}}},
                        {topic_resource, topic, {{"retention.ms", "3600000"}}},
                        {broker_resource, "", {}}});
  ASSERT_EQ(mixed.size(), 3u);
  EXPECT_EQ(mixed[0].error_code, 42);
  EXPECT_NE(mixed[0].message.find("Cannot update these configs dynamically"), std::string::npos)
      << mixed[0].message;
  EXPECT_EQ(mixed[1].error_code, 0) << mixed[1].message;
  EXPECT_EQ(mixed[1].name, topic);
  EXPECT_EQ(mixed[2].error_code, 0) << mixed[2].message;

  auto after = topic_record_in_etcd(c, topic);
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ(after->mod_revision, before->mod_revision) << after->value;
  EXPECT_EQ(after->value, before->value);
  for (int32_t node = 1; node <= cluster::size; ++node) {
    std::string seen;
    EXPECT_TRUE(shows_override(c, node, topic, "retention.ms", "3600000", &seen)) << seen;
    EXPECT_TRUE(shows_override(c, node, topic, "segment.ms", std::nullopt, &seen)) << seen;
  }
}

// A block of producer ids as etcd holds it ({"node_id":N,"first_id":F,"last_id":L}).
struct id_block {
  int32_t node_id = -1;
  int64_t first_id = -1;
  int64_t last_id = -1;
};

id_block producer_id_block_in_etcd(cluster& c) {
  auto kv = etcd_get(c.etcd(), c.prefix() + "/producer_id_block");
  if (!kv) throw std::runtime_error("no producer id block in etcd");
  auto number = [&](const std::string& name) -> int64_t {
    std::smatch m;
    if (!std::regex_search(kv->value, m, std::regex("\"" + name + "\"\\s*:\\s*(-?\\d+)"))) {
      throw std::runtime_error("no " + name + " in the producer id block " + kv->value);
    }
    return std::stoll(m[1]);
  };
  return {static_cast<int32_t>(number("node_id")), number("first_id"), number("last_id")};
}

// InitProducerId of an idempotent producer, as a raw request to broker `node`: the id, after
// checking the answer.
int64_t init_producer_id(cluster& c, int32_t node, int16_t version) {
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes payload = round_trip(conn, init_producer_id_request(version, 7), 10s);
  init_producer_id_result r =
      parse_init_producer_id(version, split_response(payload, version >= 2).body);
  EXPECT_EQ(r.error_code, 0) << "broker " << node << ", v" << version;
  EXPECT_EQ(r.producer_epoch, 0) << "broker " << node << ", v" << version;
  return r.producer_id;
}

// Producer ids are the cluster's: each broker takes its blocks of 1,000 from the one key in etcd,
// so InitProducerId asked of any broker never repeats an id, and a restarted broker goes on above
// every id handed out before (the rest of its old block is skipped, not reused).
TEST_F(Cluster, ProducerIdsAreUniqueAcrossBrokersAndRestarts) {
  c_ = std::make_unique<cluster>();
  cluster& c = *c_;
  std::set<int64_t> ids;
  std::map<int32_t, std::vector<int64_t>> by_broker;
  auto take = [&](int32_t node, int16_t version) {
    const int64_t id = init_producer_id(c, node, version);
    EXPECT_GE(id, 0);
    EXPECT_TRUE(ids.insert(id).second)
        << "id " << id << " from broker " << node << " (v" << version << ") was handed out before";
    by_broker[node].push_back(id);
    return id;
  };
  for (int round = 0; round < 4; ++round) {
    for (int32_t node = 1; node <= cluster::size; ++node)
      take(node, static_cast<int16_t>(1 + (round + node) % 4));  // v1 to v4
  }
  // Each broker took one block of its own: 0-999, 1000-1999 and 2000-2999 in some order.
  std::set<int64_t> firsts;
  for (const auto& [node, got] : by_broker) {
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got.front() % 1000, 0) << "broker " << node;
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i], got.front() + static_cast<int64_t>(i)) << "broker " << node;
    firsts.insert(got.front());
  }
  EXPECT_EQ(firsts, (std::set<int64_t>{0, 1000, 2000}));
  id_block latest = producer_id_block_in_etcd(c);
  EXPECT_EQ(latest.first_id, 2000);
  EXPECT_EQ(latest.last_id, 2999);
  EXPECT_EQ(by_broker[latest.node_id].front(), 2000) << "the key names another broker's block";

  const int64_t highest = *ids.rbegin();
  const int32_t restarted = 2;
  ASSERT_EQ(c.node(restarted).stop(), 0);
  c.node(restarted).restart();
  ASSERT_GT(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}), 0) << c.logs_tail();
  for (int16_t version = 1; version <= 4; ++version)
    EXPECT_GT(take(restarted, version), highest);
  latest = producer_id_block_in_etcd(c);
  EXPECT_EQ(latest.node_id, restarted);
  EXPECT_EQ(latest.first_id, 3000);
  EXPECT_EQ(latest.last_id, 3999);
  // The others go on in their blocks, never meeting the restarted broker's ids.
  for (int32_t node : {1, 3})
    take(node, 3);
  EXPECT_EQ(ids.size(), 18u);
}

// ElectLeaders v1 asked of broker `node`.
elect_leaders_v1 elect_leaders(
    cluster& c, int32_t node, int8_t election_type,
    const std::optional<std::map<std::string, std::vector<int32_t>>>& partitions) {
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes payload =
      round_trip(conn, elect_leaders_v1_request(1, election_type, partitions, 30000), 40s);
  return parse_elect_leaders_v1(split_response(payload, false).body);
}

// Whether broker `asked` sees every partition of `topic` led by its first (preferred) replica.
bool led_by_preferred(cluster& c, const std::string& topic, int32_t asked) {
  cluster_metadata md = c.metadata(asked, {topic});
  const cluster_metadata::topic* t = md.find(topic);
  if (t == nullptr || t->partitions.empty()) return false;
  for (const auto& p : t->partitions) {
    if (p.replicas.empty() || p.leader != p.replicas.front()) return false;
  }
  return true;
}

// The partitions of `topic` that broker `asked` says `node` leads.
std::vector<int32_t> led_by(cluster& c, const std::string& topic, int32_t node, int32_t asked) {
  std::vector<int32_t> out;
  cluster_metadata md = c.metadata(asked, {topic});
  if (const cluster_metadata::topic* t = md.find(topic)) {
    for (const auto& p : t->partitions) {
      if (p.leader == node) out.push_back(p.index);
    }
  }
  return out;
}

TEST_F(Cluster, ARollingRestartOfControlledShutdownsLosesNothingAndShowsClientsNoErrors) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  const std::string topic = "rolling";
  constexpr int partitions = 6;
  ASSERT_EQ(c.create_topic(topic, partitions, 3, {{"min.insync.replicas", "2"}}, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(topic, partitions, 3));
  const std::string solo = "solo";
  ASSERT_EQ(c.create_topic(solo, 3, 1, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(solo, 3, 1));
  // A topic written once, before the restarts: its leaders change with no batch in their epochs,
  // and each follower must still find where its log meets its new leader's.
  const std::string quiet = "quiet";
  ASSERT_EQ(c.create_topic(quiet, 1, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(quiet, 1, 3));
  {
    producer once(c.bootstrap(), {{"acks", "all"}});
    once.produce(quiet, 0, "k", "before the restarts");
    ASSERT_TRUE(once.flush(30s));
    ASSERT_EQ(once.acked_count(), 1u);
  }

  // Idempotent acks=all producers, paced, and a consumer reading everything meanwhile.
  constexpr int producers = 2;
  constexpr int max_per_producer = 100000;
  std::vector<std::unique_ptr<producer>> prods;
  for (int i = 0; i < producers; ++i) {
    prods.push_back(std::make_unique<producer>(
        c.bootstrap(), std::map<std::string, std::string>{{"enable.idempotence", "true"},
                                                          {"acks", "all"},
                                                          {"linger.ms", "5"},
                                                          {"message.timeout.ms", "120000"}}));
  }
  std::atomic<bool> stop_producing{false};
  std::vector<std::string> thread_errors(producers);
  std::vector<std::thread> threads;
  for (int i = 0; i < producers; ++i) {
    threads.emplace_back([&, i] {
      try {
        for (int seq = 0; seq < max_per_producer && !stop_producing.load(); ++seq) {
          prods[i]->produce(topic, -1, "key-" + std::to_string(seq % 101), value_of(i, seq));
          if (seq % 20 == 19) std::this_thread::sleep_for(10ms);
        }
      } catch (const std::exception& e) {
        thread_errors[i] = e.what();
      }
    });
  }
  std::atomic<bool> stop_consuming{false};
  std::atomic<size_t> consumed_count{0};
  std::vector<message> consumed;
  std::vector<std::string> consume_errors;
  // A failed ASSERT returns with the threads running: they stop and are joined first.
  struct joiner {
    std::vector<std::thread>& threads;
    std::atomic<bool>& stop_producing;
    std::atomic<bool>& stop_consuming;
    ~joiner() {
      stop_producing = true;
      stop_consuming = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_at_exit{threads, stop_producing, stop_consuming};
  threads.emplace_back([&] {
    simple_consumer consumer(c.bootstrap(), topic, {{"fetch.wait.max.ms", "100"}});
    for (int32_t p = 0; p < partitions; ++p)
      consumer.start(p, RD_KAFKA_OFFSET_BEGINNING);
    while (!stop_consuming.load()) {
      auto got = consumer.consume(10000, 200ms);
      consumed.insert(consumed.end(), got.begin(), got.end());
      consumed_count = consumed.size();
    }
    consume_errors = consumer.errors();
  });
  // A consumer group too: its coordinator (the leader of its __consumer_offsets partition) moves
  // with each restart, and the member keeps reading and committing through the moves.
  const std::string group = "rolling-readers";
  std::atomic<size_t> group_read_count{0};
  std::set<std::string> group_read;
  std::map<int32_t, int64_t> group_next;  // partition -> next offset after what it committed
  std::vector<std::string> group_errors;
  size_t group_commit_failures = 0;
  threads.emplace_back([&] {
    group_consumer member(c.bootstrap(), group, topic, {{"fetch.wait.max.ms", "100"}});
    while (!stop_consuming.load()) {
      std::optional<message> m = member.poll(100ms);
      if (!m) continue;
      group_read.insert(m->value.value_or(""));
      group_read_count = group_read.size();
      if (m->offset % 10 == 9) {
        if (member.commit(*m) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          group_next[m->partition] = m->offset + 1;
        } else {
          ++group_commit_failures;
        }
      }
    }
    group_errors = member.errors();
  });

  for (int32_t node = 1; node <= cluster::size; ++node) {
    SCOPED_TRACE("broker " + std::to_string(node));
    std::this_thread::sleep_for(2s);  // traffic on the partitions it leads
    const std::vector<int32_t> solo_led = led_by(c, solo, node, node);
    const auto began = std::chrono::steady_clock::now();
    ASSERT_EQ(c.node(node).stop(60s), 0);
    const auto took = std::chrono::steady_clock::now() - began;
    EXPECT_LT(took, 20s) << "the controlled shutdown took "
                         << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                         << " ms";
    const std::string log = c.node(node).log();
    EXPECT_NE(log.find("controlled shutdown: this broker leads no partition of several replicas"),
              std::string::npos)
        << log.substr(log.size() > 3000 ? log.size() - 3000 : 0);
    if (!solo_led.empty()) {
      EXPECT_NE(log.find("with replication factor 1 go offline until this broker is back"),
                std::string::npos);
    }
    // The others lead every partition of the replicated topic, and never named it leader after
    // it stopped.
    const int32_t other = node % cluster::size + 1;
    EXPECT_TRUE(led_by(c, topic, node, other).empty());
    c.node(node).restart();
    // Back in every ISR before the next broker goes.
    ASSERT_TRUE(c.wait_for_topic(topic, partitions, 3, {1, 2, 3}, 60s)) << c.logs_tail();
    ASSERT_TRUE(c.wait_for_topic(quiet, 1, 3, {1, 2, 3}, 30s)) << c.logs_tail();
  }
  // Every replica of the quiet topic fetches again: acks=all completes only once all have it.
  {
    producer after(c.bootstrap(), {{"acks", "all"}, {"message.timeout.ms", "20000"}});
    after.produce(quiet, 0, "k", "after the restarts");
    ASSERT_TRUE(after.flush(30s));
    EXPECT_EQ(after.acked_count(), 1u) << "the quiet topic's followers did not take its new record";
  }
  std::this_thread::sleep_for(1s);
  stop_producing = true;
  for (int i = 0; i < producers; ++i)
    threads[static_cast<size_t>(i)].join();
  size_t acked = 0;
  size_t delivery_errors = 0;
  std::string first_error;
  std::set<std::string> acked_values;
  for (int i = 0; i < producers; ++i) {
    EXPECT_EQ(thread_errors[i], "") << "producer " << i;
    ASSERT_TRUE(prods[i]->flush(120s)) << "producer " << i;
    const auto deliveries = prods[i]->deliveries();
    for (size_t seq = 0; seq < deliveries.size(); ++seq) {
      const auto& d = deliveries[seq];
      if (!d.done || d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (delivery_errors++ == 0) first_error = d.done ? rd_kafka_err2str(d.err) : "no report";
        continue;
      }
      ++acked;
      acked_values.insert(value_of(i, static_cast<int>(seq)));
    }
  }
  EXPECT_EQ(delivery_errors, 0u) << "first: " << first_error;
  EXPECT_GT(acked, 1000u);

  // Every acknowledged message is read, once: an idempotent producer's retries across the moves
  // left no duplicate in the log.
  EXPECT_TRUE(wait_until([&] { return consumed_count.load() >= acked; }, 60s))
      << consumed_count.load() << " of " << acked << " read";
  EXPECT_TRUE(wait_until([&] { return group_read_count.load() >= acked; }, 60s))
      << group_read_count.load() << " of " << acked << " read by the group";
  std::this_thread::sleep_for(1s);  // anything read twice would arrive now
  stop_consuming = true;
  threads[threads.size() - 2].join();
  threads.back().join();
  // The group read every acknowledged record, and what it committed is the group's: asked
  // afterwards, its coordinator answers at least the last acknowledged commit of each partition.
  size_t group_missing = 0;
  for (const std::string& v : acked_values)
    group_missing += group_read.contains(v) ? 0 : 1;
  EXPECT_EQ(group_missing, 0u);
  EXPECT_TRUE(group_errors.empty())
      << group_errors.size() << " group consumer errors, first: " << group_errors.front();
  EXPECT_LT(group_commit_failures, 10u);
  {
    coordinator_result coordinator;
    ASSERT_TRUE(wait_until(
        [&] {
          raw_connection conn(c.node(1).host(), c.node(1).port());
          bytes payload = round_trip(conn, find_coordinator_request(4, 1, group), 10s);
          auto r = parse_find_coordinator(4, split_response(payload, true).body);
          if (r.empty() || r[0].error_code != 0) return false;
          coordinator = r[0];
          return true;
        },
        30s));
    raw_connection conn(c.node(coordinator.node_id).host(), c.node(coordinator.node_id).port());
    bytes payload = round_trip(conn, offset_fetch_v8_request(2, group), 10s);
    offset_fetch_group committed = parse_offset_fetch_v8(split_response(payload, true).body);
    EXPECT_EQ(committed.error_code, 0);
    for (const auto& [partition, next] : group_next) {
      auto it = committed.offsets.find({topic, partition});
      ASSERT_NE(it, committed.offsets.end()) << "partition " << partition;
      // Never below an acknowledged commit; above it only if a commit answered with an error
      // landed after all.
      EXPECT_GE(it->second, next) << "partition " << partition;
    }
  }
  EXPECT_TRUE(consume_errors.empty())
      << consume_errors.size() << " consume errors, first: " << consume_errors.front();
  std::map<std::string, int> times_read;
  for (const auto& m : consumed)
    ++times_read[m.value.value_or("<null>")];
  size_t missing = 0;
  size_t duplicated = 0;
  for (const std::string& v : acked_values)
    missing += times_read.contains(v) ? 0 : 1;
  for (const auto& [v, n] : times_read)
    duplicated += n > 1 ? 1 : 0;
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicated, 0u);
  EXPECT_EQ(consumed.size(), acked);

  // The last broker restarted leads nothing; a preferred election (forwarded to the controller
  // by whichever broker is asked) gives every partition back to its first replica.
  const int32_t asked = 3;
  elect_leaders_v1 elected = elect_leaders(c, asked, 0, std::nullopt);
  EXPECT_EQ(elected.error_code, 0);
  EXPECT_FALSE(elected.results.empty());
  for (const election_answer& a : elected.results) {
    EXPECT_EQ(a.error_code, 0) << a.topic << "-" << a.partition << ": " << a.message.value_or("");
  }
  for (int32_t node = 1; node <= cluster::size; ++node) {
    EXPECT_TRUE(wait_until([&] { return led_by_preferred(c, topic, node); }, 10s))
        << "broker " << node;
  }
  // Asked again, there is nothing to do.
  elect_leaders_v1 again = elect_leaders(
      c, 1, 0,
      std::map<std::string, std::vector<int32_t>>{{topic, {0, 1}}, {"no-such-topic", {0}}});
  EXPECT_EQ(again.error_code, 0);
  ASSERT_EQ(again.results.size(), 3u);
  for (const election_answer& a : again.results) {
    EXPECT_EQ(a.error_code, a.topic == topic ? 84 : 3)  // ELECTION_NOT_NEEDED, UNKNOWN_TOPIC
        << a.topic << "-" << a.partition;
  }
}

TEST_F(Cluster, AutoLeaderRebalanceGivesLeadershipBackAfterARestart) {
  c_ = std::make_unique<cluster>(config_map{{"leader.imbalance.check.interval.seconds", "1"}});
  cluster& c = *c_;
  const std::string topic = "balanced";
  ASSERT_EQ(c.create_topic(topic, 3, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(topic, 3, 3));
  ASSERT_TRUE(wait_until([&] { return led_by_preferred(c, topic, 1); }, 10s));
  const int32_t restarted = 2;
  ASSERT_FALSE(led_by(c, topic, restarted, 1).empty());
  ASSERT_EQ(c.node(restarted).stop(), 0);
  EXPECT_TRUE(led_by(c, topic, restarted, 1).empty());
  c.node(restarted).restart();
  // Once back in the ISR, the controller's next check gives it its partitions back.
  EXPECT_TRUE(wait_until([&] { return led_by_preferred(c, topic, 1); }, 30s)) << c.logs_tail();
  EXPECT_TRUE(wait_until([&] { return led_by_preferred(c, topic, restarted); }, 10s));
}

// Fetch v12 of partition 0 from offset 0, asked of broker `node`, as a consumer in `rack`.
fetch_v12_partition consumer_fetch(cluster& c, int32_t node, const std::string& topic,
                                   const std::string& rack) {
  raw_connection conn(c.node(node).host(), c.node(node).port());
  fetch_v12_options options;
  options.rack_id = rack;
  bytes payload = round_trip(conn, fetch_v12_request(1, topic, 0, 0, 0, 1, options), 10s);
  fetch_v12_body body = parse_fetch_v12_full(split_response(payload, true).body);
  if (body.partitions.size() != 1) throw std::runtime_error("Fetch answered no single partition");
  return body.partitions.front();
}

TEST_F(Cluster, AConsumerWithARackReadsFromTheFollowerInItsRack) {
  const std::map<int32_t, std::string> rack_of{{1, "rack-a"}, {2, "rack-b"}, {3, "rack-c"}};
  std::map<int32_t, config_map> per_node;
  for (const auto& [node, rack] : rack_of)
    per_node[node] = {{"broker.rack", rack}};
  c_ = std::make_unique<cluster>(
      config_map{
          {"replica.selector.class", "org.apache.kafka.common.replica.RackAwareReplicaSelector"}},
      per_node);
  cluster& c = *c_;
  const std::string topic = "nearby";
  ASSERT_EQ(c.create_topic(topic, 1, 3, {}, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(topic, 1, 3));
  const int32_t leader = c.leader_of(topic, 0);
  ASSERT_GT(leader, 0);
  const int32_t near = leader % cluster::size + 1;
  constexpr int records = 20;
  {
    producer p(c.bootstrap(), {{"acks", "all"}});
    for (int i = 0; i < records; ++i)
      p.produce(topic, 0, "k", "v" + std::to_string(i));
    ASSERT_TRUE(p.flush(30s));
    ASSERT_EQ(p.acked_count(), static_cast<size_t>(records));
  }

  // The leader sends a consumer of the follower's rack there, with no records; one of its own
  // rack, or without one, it serves itself.
  fetch_v12_partition sent = consumer_fetch(c, leader, topic, rack_of.at(near));
  EXPECT_EQ(sent.error_code, 0);
  EXPECT_EQ(sent.preferred_read_replica, near);
  EXPECT_TRUE(sent.records.empty());
  for (const std::string& rack : {rack_of.at(leader), std::string()}) {
    fetch_v12_partition kept = consumer_fetch(c, leader, topic, rack);
    EXPECT_EQ(kept.preferred_read_replica, -1) << "rack '" << rack << "'";
    EXPECT_FALSE(kept.records.empty()) << "rack '" << rack << "'";
  }
  // The follower serves it, up to its high watermark (the leader's, once it has fetched again).
  fetch_v12_partition served;
  EXPECT_TRUE(wait_until(
      [&] {
        served = consumer_fetch(c, near, topic, rack_of.at(near));
        return served.error_code == 0 && served.high_watermark == records;
      },
      10s))
      << "error " << served.error_code << ", high watermark " << served.high_watermark;
  EXPECT_EQ(served.preferred_read_replica, -1);
  EXPECT_FALSE(served.records.empty());
  // A consumer older than KIP-392 (Fetch v4) is still sent to the leader.
  {
    raw_connection conn(c.node(near).host(), c.node(near).port());
    bytes payload = round_trip(conn, fetch_request(4, 2, topic, 0, 0, 0, 1), 5s);
    auto parts = parse_fetch_v4(split_response(payload, false).body);
    ASSERT_EQ(parts.size(), 1u);
    EXPECT_EQ(parts[0].error_code, 6);  // NOT_LEADER_OR_FOLLOWER
  }
  // A consumer ahead of what the follower has copied (come on stale metadata) and without a
  // leader epoch gets no records, not OFFSET_OUT_OF_RANGE that would make it reset its position
  // (Kafka since apache/kafka#12734); one that sent an epoch is told, and asks the leader.
  {
    std::optional<cluster_metadata::partition> now = partition_on(c, near, topic, 0);
    ASSERT_TRUE(now.has_value());
    raw_connection conn(c.node(near).host(), c.node(near).port());
    fetch_v12_options ahead;
    ahead.rack_id = rack_of.at(near);
    bytes payload =
        round_trip(conn, fetch_v12_request(3, topic, 0, records + 1000, 0, 1, ahead), 10s);
    fetch_v12_body body = parse_fetch_v12_full(split_response(payload, true).body);
    ASSERT_EQ(body.partitions.size(), 1u);
    EXPECT_EQ(body.partitions[0].error_code, 0);
    EXPECT_TRUE(body.partitions[0].records.empty());
    ahead.current_leader_epoch = now->leader_epoch;
    payload = round_trip(conn, fetch_v12_request(4, topic, 0, records + 1000, 0, 1, ahead), 10s);
    body = parse_fetch_v12_full(split_response(payload, true).body);
    ASSERT_EQ(body.partitions.size(), 1u);
    EXPECT_EQ(body.partitions[0].error_code, 1);  // OFFSET_OUT_OF_RANGE
  }

  // librdkafka with client.rack follows the leader's answer: its statistics name the broker it
  // fetches from, and it reads every record there.
  struct seen_stats {
    std::mutex mu;
    std::set<int32_t> fetched_from;
  } seen;
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [k, v] : std::map<std::string, std::string>{{"bootstrap.servers", c.bootstrap()},
                                                               {"client.rack", rack_of.at(near)},
                                                               {"statistics.interval.ms", "100"},
                                                               {"fetch.wait.max.ms", "100"}}) {
    ASSERT_EQ(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof errstr),
              RD_KAFKA_CONF_OK)
        << errstr;
  }
  rd_kafka_conf_set_opaque(conf, &seen);
  rd_kafka_conf_set_stats_cb(conf, [](rd_kafka_t*, char* json, size_t len, void* opaque) {
    auto* s = static_cast<seen_stats*>(opaque);
    static const std::regex partition_zero(R"("partition":\s*0,\s*"broker":\s*(-?\d+))");
    const std::string text(json, len);
    std::smatch m;
    if (std::regex_search(text, m, partition_zero)) {
      std::lock_guard lock(s->mu);
      s->fetched_from.insert(std::stoi(m[1]));
    }
    return 0;
  });
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  ASSERT_NE(rk, nullptr) << errstr;
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  ASSERT_EQ(rd_kafka_consume_start(rkt, 0, RD_KAFKA_OFFSET_BEGINNING), 0);
  int consumed = 0;
  std::vector<std::string> errors;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  auto near_seen = [&] {
    std::lock_guard lock(seen.mu);
    return seen.fetched_from.contains(near);
  };
  while (std::chrono::steady_clock::now() < deadline && (consumed < records || !near_seen())) {
    if (rd_kafka_message_t* m = rd_kafka_consume(rkt, 0, 100)) {
      if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        ++consumed;
      } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        errors.push_back(rd_kafka_message_errstr(m));
      }
      rd_kafka_message_destroy(m);
    }
    rd_kafka_poll(rk, 0);
  }
  rd_kafka_consume_stop(rkt, 0);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  EXPECT_EQ(consumed, records);
  EXPECT_TRUE(errors.empty()) << errors.size() << " errors, first: " << errors.front();
  EXPECT_TRUE(near_seen()) << "librdkafka never fetched from broker " << near;
}

// ListPartitionReassignments v0 asked of broker `node`.
list_partition_reassignments_v0 list_reassignments(
    cluster& c, int32_t node,
    const std::optional<std::map<std::string, std::vector<int32_t>>>& which = std::nullopt) {
  raw_connection conn(c.node(node).host(), c.node(node).port());
  bytes payload = round_trip(conn, list_partition_reassignments_v0_request(1, which, 30000), 40s);
  return parse_list_partition_reassignments_v0(split_response(payload, true).body);
}

// Runs the sluice-reassign tool (README "Moving partitions") as a user would: its exit status
// and what it printed.
std::pair<int, std::string> run_reassign_tool(const std::string& args) {
  const std::string command = std::string(SLUICE_REASSIGN_BIN) + " " + args + " 2>&1";
  FILE* out = ::popen(command.c_str(), "r");
  if (out == nullptr) throw std::runtime_error("cannot run " + command);
  std::string text;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, out))
    text.append(buf, n);
  const int status = ::pclose(out);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text};
}

TEST_F(Cluster, AReassignmentMovesAPartitionUnderAcksAllProducersAndLosesNothing) {
  c_ = std::make_unique<cluster>(
      config_map{{"auto.leader.rebalance.enable", "false"}, {"log.segment.delete.delay.ms", "0"}});
  cluster& c = *c_;
  const std::string topic = "moving";
  ASSERT_EQ(c.create_topic(topic, 1, 2, {{"min.insync.replicas", "2"}}, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  std::optional<cluster_metadata::topic> created = c.wait_for_topic(topic, 1, 2);
  ASSERT_TRUE(created);
  // From [from, stays] to [stays, to]: the leader (the first replica) is the one that leaves.
  const std::vector<int32_t> before = created->partitions[0].replicas;
  ASSERT_EQ(before.size(), 2u);
  const int32_t from = before[0];
  const int32_t stays = before[1];
  const int32_t to = 6 - from - stays;
  ASSERT_EQ(c.leader_of(topic, 0), from);
  const std::vector<int32_t> target = {stays, to};
  // The target broker is paused below; the controller must not be the one paused.
  if (c.wait_for_brokers({1, 2, 3}, {1, 2, 3}) == to) {
    ASSERT_EQ(c.node(to).stop(60s), 0);
    c.node(to).restart();
  }
  ASSERT_NE(c.wait_for_brokers({1, 2, 3}, {1, 2, 3}), to);

  // An idempotent acks=all producer writes all along, paced.
  paced_producer prod(c, topic, 1);
  ASSERT_TRUE(wait_until([&] { return prod.sent() > 500; }, 30s));

  // The target broker is paused, so the reassignment stays in progress while it is looked at.
  const std::string args = "--bootstrap-server " + c.bootstrap({stays}) + " --execute " + topic +
                           ":0=" + std::to_string(stays) + "," + std::to_string(to);
  {
    stopped_process paused(c.node(to).pid());
    auto [status, out] = run_reassign_tool(args);
    ASSERT_EQ(status, 0) << out;
    EXPECT_NE(out.find(topic + "-0: accepted"), std::string::npos) << out;

    // Every broker's Metadata lists the full replica set meanwhile: target, then the leaving one.
    const std::vector<int32_t> during = {stays, to, from};
    for (int32_t node : {from, stays}) {
      std::optional<cluster_metadata::partition> p = partition_on(c, node, topic, 0);
      ASSERT_TRUE(p) << "broker " << node;
      EXPECT_EQ(p->replicas, during) << "broker " << node;
      EXPECT_EQ(sorted(p->isr), sorted(before)) << "broker " << node;
    }
    list_partition_reassignments_v0 listed = list_reassignments(c, from);
    EXPECT_EQ(listed.error_code, 0);
    ASSERT_EQ(listed.partitions.size(), 1u);
    EXPECT_EQ(listed.partitions[0].topic, topic);
    EXPECT_EQ(listed.partitions[0].partition, 0);
    EXPECT_EQ(listed.partitions[0].replicas, during);
    EXPECT_EQ(listed.partitions[0].adding, std::vector<int32_t>{to});
    EXPECT_EQ(listed.partitions[0].removing, std::vector<int32_t>{from});
    // Named: unknown topics and partitions are left out.
    list_partition_reassignments_v0 named = list_reassignments(
        c, stays, std::map<std::string, std::vector<int32_t>>{{topic, {0, 3}}, {"nope", {0}}});
    EXPECT_EQ(named.partitions.size(), 1u);
    auto [list_status, list_out] =
        run_reassign_tool("--bootstrap-server " + c.bootstrap({from}) + " --list");
    EXPECT_EQ(list_status, 0);
    EXPECT_NE(list_out.find(topic + "-0: replicas " + ids(during) + " adding [" +
                            std::to_string(to) + "] removing [" + std::to_string(from) + "]"),
              std::string::npos)
        << list_out;
    // A broker named twice is refused, and the reassignment in progress is left as it was.
    auto [bad_status, bad_out] =
        run_reassign_tool("--bootstrap-server " + c.bootstrap({from}) + " --execute " + topic +
                          ":0=" + std::to_string(to) + "," + std::to_string(to));
    EXPECT_EQ(bad_status, 1);
    EXPECT_NE(bad_out.find("error 39"), std::string::npos)
        << bad_out;  // INVALID_REPLICA_ASSIGNMENT
    EXPECT_EQ(list_reassignments(c, stays).partitions.size(), 1u);
    std::this_thread::sleep_for(1s);  // acks=all goes on with the ISR alone meanwhile
  }

  // The new replica catches up and joins the ISR; that completes the reassignment: the target is
  // the replica set, on every broker, led by the broker that stayed.
  for (int32_t node = 1; node <= cluster::size; ++node) {
    EXPECT_TRUE(wait_until(
        [&] {
          std::optional<cluster_metadata::partition> p = partition_on(c, node, topic, 0);
          return p && p->replicas == target && sorted(p->isr) == sorted(target) &&
                 p->leader == stays;
        },
        60s))
        << "broker " << node << c.logs_tail();
  }
  EXPECT_TRUE(list_reassignments(c, to).partitions.empty());
  auto [done_status, done_out] =
      run_reassign_tool("--bootstrap-server " + c.bootstrap({to}) + " --list");
  EXPECT_EQ(done_status, 0);
  EXPECT_NE(done_out.find("no reassignment in progress"), std::string::npos) << done_out;
  // The broker that left deletes its replica (renamed aside at once, removed after
  // log.segment.delete.delay.ms, 0 here); the new one holds it.
  EXPECT_TRUE(wait_until(
      [&] {
        for (const auto& e : fs::directory_iterator(c.node(from).data_dir())) {
          if (e.path().filename().string().starts_with(topic + "-0")) return false;
        }
        return true;
      },
      30s))
      << "broker " << from << " still has a directory of " << topic << "-0";
  EXPECT_TRUE(fs::exists(c.node(to).partition_dir(topic, 0)));
  EXPECT_NE(c.node(from).log().find("is no longer one of its replicas; deleting its local log"),
            std::string::npos);

  // More writes after the move, then everything acknowledged is there, once.
  const int sent_at_completion = prod.sent();
  ASSERT_TRUE(wait_until([&] { return prod.sent() > sent_at_completion + 300; }, 30s));
  prod.stop();
  size_t failed = 0;
  std::string first_error;
  const std::set<std::string> acked = prod.acknowledged(failed, first_error);
  EXPECT_EQ(failed, 0u) << "first: " << first_error;
  EXPECT_GT(acked.size(), 800u);
  const size_t read = expect_each_read_once(c, topic, 1, acked, c.bootstrap());
  // The new replica holds what the leader holds.
  EXPECT_TRUE(wait_until(
      [&] { return latest_offset(c, stays, topic, 0) == static_cast<int64_t>(read); }, 10s));
  EXPECT_TRUE(wait_until(
      [&] {
        std::optional<cluster_metadata::partition> p = partition_on(c, to, topic, 0);
        return p && sorted(p->isr) == sorted(target);
      },
      10s));
}

// The issue's move: a replication-factor-3 topic from brokers {1,2,3} to {2,3,4}, a broker that
// joined the cluster after the topic was made, under an acks=all producer. Broker 1 led every
// partition; the new replicas catch up, leadership moves off broker 1, which deletes its copies.
TEST_F(Cluster, AReassignmentOntoANewFourthBrokerCompletesUnderLoadAndLosesNothing) {
  c_ = std::make_unique<cluster>(
      config_map{{"auto.leader.rebalance.enable", "false"}, {"log.segment.delete.delay.ms", "0"}});
  cluster& c = *c_;
  const std::string topic = "growing";
  constexpr int partitions = 2;
  ASSERT_EQ(c.create_topic(topic, partitions, 3, {{"min.insync.replicas", "2"}}, 1),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(c.wait_for_topic(topic, partitions, 3));
  // Every partition led by broker 1 first, so that the move takes leadership away from it.
  for (int32_t p = 0; p < partitions; ++p) {
    if (c.leader_of(topic, p) == 1) continue;
    auto [status, out] = run_reassign_tool("--bootstrap-server " + c.bootstrap() + " --execute " +
                                           topic + ":" + std::to_string(p) + "=1,2,3");
    ASSERT_EQ(status, 0) << out;
    elect_leaders_v1 e =
        elect_leaders(c, 2, 0, std::map<std::string, std::vector<int32_t>>{{topic, {p}}});
    ASSERT_EQ(e.error_code, 0);
    ASSERT_TRUE(wait_until([&] { return c.leader_of(topic, p) == 1; }, 30s));
  }

  broker fourth(c.broker_config(4));
  ASSERT_GT(c.wait_for_brokers({1, 2, 3}, {1, 2, 3, 4}), 0) << c.logs_tail();

  paced_producer prod(c, topic, partitions);
  ASSERT_TRUE(wait_until([&] { return prod.sent() > 500; }, 30s));

  std::string moves;
  for (int32_t p = 0; p < partitions; ++p)
    moves += (p ? " " : "") + topic + ":" + std::to_string(p) + "=2,3,4";
  auto [status, out] =
      run_reassign_tool("--bootstrap-server " + c.bootstrap({2}) + " --execute " + moves);
  ASSERT_EQ(status, 0) << out;
  const std::vector<int32_t> target = {2, 3, 4};
  for (int32_t node = 2; node <= 3; ++node) {
    for (int32_t p = 0; p < partitions; ++p) {
      EXPECT_TRUE(wait_until(
          [&] {
            std::optional<cluster_metadata::partition> now = partition_on(c, node, topic, p);
            return now && now->replicas == target && sorted(now->isr) == target && now->leader != 1;
          },
          60s))
          << "broker " << node << ", partition " << p << c.logs_tail();
    }
  }
  EXPECT_TRUE(list_reassignments(c, 2).partitions.empty());
  EXPECT_TRUE(wait_until(
      [&] {
        for (const auto& e : fs::directory_iterator(c.node(1).data_dir())) {
          if (e.path().filename().string().starts_with(topic + "-")) return false;
        }
        return true;
      },
      30s))
      << "broker 1 still holds a directory of " << topic;
  for (int32_t p = 0; p < partitions; ++p)
    EXPECT_TRUE(fs::exists(fourth.partition_dir(topic, p))) << "partition " << p;

  const int sent_at_completion = prod.sent();
  ASSERT_TRUE(wait_until([&] { return prod.sent() > sent_at_completion + 300; }, 30s));
  prod.stop();
  size_t failed = 0;
  std::string first_error;
  const std::set<std::string> acked = prod.acknowledged(failed, first_error);
  EXPECT_EQ(failed, 0u) << "first: " << first_error;
  EXPECT_GT(acked.size(), 800u);
  expect_each_read_once(c, topic, partitions, acked, c.bootstrap({2, 3}));
}

// unclean.leader.election.enable, Kafka's rule: a partition whose in-sync replicas are all gone
// stays offline while the flag is false, even with a live replica that is out of sync; set on
// the topic, that replica is elected (logged as a possible loss) and serves; the old leader comes
// back as its follower and drops what the new leader never had.
TEST_F(Cluster, APartitionWithNoLiveInSyncReplicaStaysOfflineUntilUncleanElectionIsAllowed) {
  c_ = std::make_unique<cluster>(config_map{{"auto.leader.rebalance.enable", "false"}});
  cluster& c = *c_;
  const std::string topic = "unclean";
  ASSERT_EQ(c.create_topic(topic, 1, 2), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto described = c.wait_for_topic(topic, 1, 2);
  ASSERT_TRUE(described.has_value());
  const auto& first = described->partitions.at(0);
  const int32_t leader = first.leader;
  const int32_t follower =
      first.replicas.at(0) == leader ? first.replicas.at(1) : first.replicas.at(0);
  const int32_t third = 6 - leader - follower;
  auto write = [&](const std::vector<int32_t>& via, const std::string& prefix, int n) {
    return produce_acks_all(c, via, topic, 0, prefix, n);
  };
  ASSERT_EQ(write({1, 2, 3}, "both-", 10), 10u);
  // The follower stops (cleanly: it leaves the ISR); the leader alone takes more.
  ASSERT_EQ(c.node(follower).stop(60s), 0);
  ASSERT_TRUE(wait_until(
      [&] {
        std::optional<cluster_metadata::partition> p = partition_on(c, leader, topic, 0);
        return p && p->isr == std::vector<int32_t>{leader};
      },
      30s));
  ASSERT_EQ(write({leader}, "leader-only-", 5), 5u) << c.logs_tail();
  c.node(leader).kill9();
  c.node(follower).restart();

  // No in-sync replica lives: offline, and it stays so.
  EXPECT_TRUE(wait_until(
      [&] { return c.leader_of(topic, 0, third) == -1 && c.leader_of(topic, 0, follower) == -1; },
      std::chrono::milliseconds(cluster::session_timeout_ms * 3)))
      << c.logs_tail();
  std::this_thread::sleep_for(2s);
  EXPECT_EQ(c.leader_of(topic, 0, third), -1);
  EXPECT_NE((c.node(third).log() + c.node(follower).log()).find("stay offline until one returns"),
            std::string::npos);

  // Allowed on the topic: the out-of-sync replica leads, and says what that may cost.
  config_answer allowed = alter_topic_on(c, third, alter_configs_key, topic,
                                         {{"unclean.leader.election.enable", "true"}});
  ASSERT_EQ(allowed.error_code, 0) << allowed.message;
  ASSERT_TRUE(wait_until([&] { return c.leader_of(topic, 0, third) == follower; }, 30s))
      << c.logs_tail();
  EXPECT_NE((c.node(third).log() + c.node(follower).log())
                .find("unclean election of broker " + std::to_string(follower)),
            std::string::npos);
  ASSERT_EQ(write({follower, third}, "unclean-", 3), 3u);

  // The old leader returns as a follower and cuts the records only it had.
  c.node(leader).restart();
  ASSERT_TRUE(c.wait_for_topic(topic, 1, 2, {1, 2, 3}, 60s)) << c.logs_tail();
  std::string old_log;
  std::string new_log;
  EXPECT_TRUE(replica_logs_match(c, leader, follower, topic, 0, &old_log, &new_log))
      << "log sizes " << old_log.size() << " and " << new_log.size();
  EXPECT_EQ(old_log.find("leader-only-"), std::string::npos);
  simple_consumer consumer(c.bootstrap(), topic, {{"fetch.wait.max.ms", "100"}});
  consumer.start(0, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> read = consumer.consume(13, 30s);
  ASSERT_EQ(read.size(), 13u);
  EXPECT_EQ(read.front().value, "both-0");
  EXPECT_EQ(read.back().value, "unclean-2");
}

}  // namespace
}  // namespace sluice::compat

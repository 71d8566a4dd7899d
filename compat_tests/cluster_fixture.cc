#include "compat_tests/cluster_fixture.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::atomic<int> clusters_started{0};

std::string tail(const std::string& text, size_t bytes) {
  return text.size() > bytes ? "...\n" + text.substr(text.size() - bytes) : text;
}

bool sorted_equal(std::vector<int32_t> a, std::vector<int32_t> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  return a == b;
}

}  // namespace

const cluster_metadata::topic* cluster_metadata::find(const std::string& name) const {
  for (const auto& t : topics)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<int32_t> cluster_metadata::node_ids() const {
  std::vector<int32_t> ids;
  for (const auto& b : brokers)
    ids.push_back(b.node_id);
  return ids;
}

cluster_metadata fetch_metadata(const std::string& host, uint16_t port,
                                const std::vector<std::string>& topics, bool all_topics) {
  raw_connection conn(host, port);
  bytes payload = round_trip(conn, metadata_v12_request(1, topics, false, all_topics), 5s);
  response resp = split_response(payload, true);
  cluster_metadata out;
  static_cast<metadata_v12&>(out) = parse_metadata_v12(resp.body);
  std::sort(out.brokers.begin(), out.brokers.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  for (auto& t : out.topics) {
    std::sort(t.partitions.begin(), t.partitions.end(),
              [](const auto& a, const auto& b) { return a.index < b.index; });
  }
  return out;
}

cluster_description describe_cluster(const std::string& host, uint16_t port) {
  raw_connection conn(host, port);
  bytes payload = round_trip(conn, describe_cluster_v0_request(1), 5s);
  response resp = split_response(payload, true);
  describe_cluster_v0 raw = parse_describe_cluster_v0(resp.body);
  cluster_description out;
  out.error_code = raw.error_code;
  out.cluster_id = raw.cluster_id;
  out.controller_id = raw.controller_id;
  for (const auto& b : raw.brokers)
    out.brokers.push_back({b.node_id, b.host, b.port});
  std::sort(out.brokers.begin(), out.brokers.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  return out;
}

// ---- cluster_admin -------------------------------------------------------------------------

cluster_admin::cluster_admin(const std::string& bootstrap) {
  char err[512];
  rd_kafka_conf_t* conf = make_conf({{"bootstrap.servers", bootstrap}});
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(err);
  }
  queue_ = rd_kafka_queue_new(rk_);
}

cluster_admin::~cluster_admin() {
  rd_kafka_queue_destroy(queue_);
  rd_kafka_destroy(rk_);
}

rd_kafka_event_t* cluster_admin::wait(std::chrono::milliseconds timeout) {
  rd_kafka_event_t* e = rd_kafka_queue_poll(queue_, static_cast<int>(timeout.count()));
  if (e == nullptr) throw std::runtime_error("admin call got no answer in time");
  return e;
}

rd_kafka_resp_err_t cluster_admin::create(const std::string& name, int partitions,
                                          int replication_factor,
                                          const std::map<std::string, std::string>& configs,
                                          std::string* message) {
  char err[512];
  rd_kafka_NewTopic_t* t =
      rd_kafka_NewTopic_new(name.c_str(), partitions, replication_factor, err, sizeof err);
  if (t == nullptr) throw std::runtime_error(err);
  for (const auto& [k, v] : configs)
    rd_kafka_NewTopic_set_config(t, k.c_str(), v.c_str());
  rd_kafka_AdminOptions_t* o = rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(o, 15000, err, sizeof err);
  rd_kafka_AdminOptions_set_operation_timeout(o, 10000, err, sizeof err);
  rd_kafka_CreateTopics(rk_, &t, 1, o, queue_);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_NewTopic_destroy(t);
  rd_kafka_event_t* e = wait(20s);
  rd_kafka_resp_err_t result = rd_kafka_event_error(e);
  if (result != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (message && rd_kafka_event_error_string(e)) *message = rd_kafka_event_error_string(e);
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(e), &n);
    if (n != 1) {
      rd_kafka_event_destroy(e);
      throw std::runtime_error("CreateTopics answered " + std::to_string(n) + " topics");
    }
    result = rd_kafka_topic_result_error(results[0]);
    if (message && rd_kafka_topic_result_error_string(results[0])) {
      *message = rd_kafka_topic_result_error_string(results[0]);
    }
  }
  rd_kafka_event_destroy(e);
  return result;
}

rd_kafka_resp_err_t cluster_admin::remove(const std::string& name) {
  char err[512];
  rd_kafka_DeleteTopic_t* t = rd_kafka_DeleteTopic_new(name.c_str());
  rd_kafka_AdminOptions_t* o = rd_kafka_AdminOptions_new(rk_, RD_KAFKA_ADMIN_OP_DELETETOPICS);
  rd_kafka_AdminOptions_set_request_timeout(o, 15000, err, sizeof err);
  rd_kafka_AdminOptions_set_operation_timeout(o, 10000, err, sizeof err);
  rd_kafka_DeleteTopics(rk_, &t, 1, o, queue_);
  rd_kafka_AdminOptions_destroy(o);
  rd_kafka_DeleteTopic_destroy(t);
  rd_kafka_event_t* e = wait(20s);
  rd_kafka_resp_err_t result = rd_kafka_event_error(e);
  if (result == RD_KAFKA_RESP_ERR_NO_ERROR) {
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(e), &n);
    result = n == 1 ? rd_kafka_topic_result_error(results[0]) : RD_KAFKA_RESP_ERR__FAIL;
  }
  rd_kafka_event_destroy(e);
  return result;
}

// ---- stopped_process -----------------------------------------------------------------------

stopped_process::stopped_process(pid_t pid) : pid_(pid) {
  if (pid_ <= 0) throw std::invalid_argument("stopped_process: no process");
  ::kill(pid_, SIGSTOP);
  // SIGSTOP takes effect asynchronously: wait until no thread can still answer a request.
  auto all_stopped = [&] { return server::coordination::testing::all_threads_stopped(pid_); };
  if (!wait_until(all_stopped, 5s)) {
    resume();
    throw std::runtime_error("process " + std::to_string(pid) + " did not stop");
  }
}

void stopped_process::resume() {
  if (pid_ > 0) ::kill(pid_, SIGCONT);
  pid_ = -1;
}

// ---- cluster -------------------------------------------------------------------------------

cluster::cluster(config_map extra, std::map<int32_t, config_map> per_node,
                 const before_brokers_hook& before_brokers)
    : extra_(std::move(extra)), per_node_(std::move(per_node)) {
  etcd_ = std::make_unique<etcd_process>([] { return ::testing::Test::HasFailure(); });
  if (before_brokers) before_brokers(*etcd_, per_node_);
  std::random_device random;
  prefix_ = "/sluice-test-" + std::to_string(::getpid()) + "-" +
            std::to_string(clusters_started.fetch_add(1)) + "-" + std::to_string(random() % 100000);
  for (int32_t id = 1; id <= size; ++id)
    brokers_.push_back(std::make_unique<broker>(broker_config(id)));
  if (wait_for_brokers({1, 2, 3}, {1, 2, 3}) < 0) {
    throw std::runtime_error("the three brokers did not agree on the cluster; logs:\n" +
                             logs_tail());
  }
}

cluster::~cluster() {
  // Brokers first: they would otherwise log etcd's absence while they stop.
  brokers_.clear();
  etcd_.reset();
}

config_map cluster::broker_config(int32_t node_id) const {
  config_map config = {
      {"node.id", std::to_string(node_id)},
      {"metadata.etcd.endpoints", etcd_->url()},
      {"metadata.etcd.prefix", prefix_},
      {"broker.session.timeout.ms", std::to_string(session_timeout_ms)},
      {"replica.lag.time.max.ms", std::to_string(replica_lag_time_max_ms)},
      // The follower's parked fetch: short, so that a test's produce does not wait on it.
      {"replica.fetch.wait.max.ms", "200"},
      {"replica.fetch.backoff.ms", "200"},
      {"group.initial.rebalance.delay.ms", "0"},
      // Every cluster creates __consumer_offsets once its three brokers are up: 5 partitions
      // rather than Kafka's 50 keep each test's start light (the suite's cluster uses 50).
      {"offsets.topic.num.partitions", "5"},
      // A controlled shutdown that cannot move a leadership (the last broker of a test going)
      // gives up after three short tries rather than three of Kafka's 5 s ones.
      {"controlled.shutdown.retry.backoff.ms", "300"},
  };
  for (const auto& [k, v] : extra_)
    config[k] = v;
  if (auto own = per_node_.find(node_id); own != per_node_.end()) {
    for (const auto& [k, v] : own->second)
      config[k] = v;
  }
  return config;
}

std::string cluster::bootstrap(const std::vector<int32_t>& nodes) {
  std::string out;
  for (int32_t id : nodes)
    out += (out.empty() ? "" : ",") + node(id).bootstrap();
  return out;
}

cluster_metadata cluster::metadata(int32_t node_id, const std::vector<std::string>& topics,
                                   bool all_topics) {
  return fetch_metadata(node(node_id).host(), node(node_id).port(), topics, all_topics);
}

cluster_description cluster::describe(int32_t node_id) {
  return describe_cluster(node(node_id).host(), node(node_id).port());
}

int32_t cluster::wait_for_brokers(const std::vector<int32_t>& asked,
                                  const std::vector<int32_t>& expected,
                                  std::chrono::milliseconds timeout) {
  int32_t agreed = -1;
  std::string last;
  bool ok = wait_until(
      [&] {
        int32_t controller = -1;
        for (int32_t id : asked) {
          try {
            cluster_metadata md = metadata(id);
            cluster_description dc = describe(id);
            std::ostringstream seen;
            seen << "broker " << id << ": metadata brokers";
            for (int32_t n : md.node_ids())
              seen << " " << n;
            seen << " controller " << md.controller_id << "; describe controller "
                 << dc.controller_id;
            last = seen.str();
            if (!sorted_equal(md.node_ids(), expected)) return false;
            std::vector<int32_t> described;
            for (const auto& b : dc.brokers)
              described.push_back(b.node_id);
            if (!sorted_equal(described, expected)) return false;
            if (md.controller_id < 0 || md.controller_id != dc.controller_id) return false;
            if (controller >= 0 && md.controller_id != controller) return false;
            controller = md.controller_id;
          } catch (const std::exception& e) {
            last = "broker " + std::to_string(id) + ": " + e.what();
            return false;
          }
        }
        agreed = controller;
        return true;
      },
      timeout);
  if (!ok) {
    ADD_FAILURE() << "brokers did not agree on the cluster within " << timeout.count()
                  << " ms; last answer: " << last;
    return -1;
  }
  return agreed;
}

std::optional<cluster_metadata::topic> cluster::wait_for_topic(const std::string& topic,
                                                               int partitions,
                                                               int replication_factor,
                                                               const std::vector<int32_t>& asked,
                                                               std::chrono::milliseconds timeout) {
  std::optional<cluster_metadata::topic> first;
  std::string last;
  bool ok = wait_until(
      [&] {
        first.reset();
        for (int32_t id : asked) {
          try {
            cluster_metadata md = metadata(id, {topic});
            const cluster_metadata::topic* t = md.find(topic);
            if (t == nullptr || t->error_code != 0 ||
                t->partitions.size() != static_cast<size_t>(partitions)) {
              last = "broker " + std::to_string(id) + ": topic error " +
                     (t ? std::to_string(t->error_code) + " with " +
                              std::to_string(t->partitions.size()) + " partitions"
                        : "absent");
              return false;
            }
            for (const auto& p : t->partitions) {
              if (p.error_code != 0 || p.leader < 0 ||
                  p.replicas.size() != static_cast<size_t>(replication_factor) ||
                  !sorted_equal(p.isr, p.replicas) ||
                  std::find(p.replicas.begin(), p.replicas.end(), p.leader) == p.replicas.end()) {
                last = "broker " + std::to_string(id) + ": partition " + std::to_string(p.index) +
                       " error " + std::to_string(p.error_code) + " leader " +
                       std::to_string(p.leader) + " replicas " + std::to_string(p.replicas.size()) +
                       " isr " + std::to_string(p.isr.size());
                return false;
              }
            }
            if (!first) {
              first = *t;
            } else {
              for (size_t i = 0; i < t->partitions.size(); ++i) {
                if (t->partitions[i].leader != first->partitions[i].leader ||
                    t->partitions[i].leader_epoch != first->partitions[i].leader_epoch) {
                  last = "brokers disagree on partition " + std::to_string(i);
                  return false;
                }
              }
            }
          } catch (const std::exception& e) {
            last = "broker " + std::to_string(id) + ": " + e.what();
            return false;
          }
        }
        return true;
      },
      timeout);
  if (!ok) {
    ADD_FAILURE() << "topic " << topic << " did not settle within " << timeout.count()
                  << " ms; last: " << last;
    return std::nullopt;
  }
  return first;
}

rd_kafka_resp_err_t cluster::create_topic(const std::string& name, int partitions,
                                          int replication_factor,
                                          const std::map<std::string, std::string>& configs,
                                          int32_t via, std::string* message) {
  rd_kafka_resp_err_t err;
  {
    cluster_admin admin(node(via).bootstrap());
    err = admin.create(name, partitions, replication_factor, configs, message);
  }
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::vector<int32_t> running;
    for (int32_t id = 1; id <= size; ++id)
      if (node(id).running()) running.push_back(id);
    if (!wait_for_topic(name, partitions, replication_factor, running)) {
      return RD_KAFKA_RESP_ERR__TIMED_OUT;
    }
  }
  return err;
}

int32_t cluster::leader_of(const std::string& topic, int32_t partition, int32_t asked) {
  cluster_metadata md = metadata(asked, {topic});
  const cluster_metadata::topic* t = md.find(topic);
  if (t == nullptr) return -1;
  for (const auto& p : t->partitions)
    if (p.index == partition) return p.leader;
  return -1;
}

std::string cluster::logs_tail(size_t bytes_per_broker) {
  std::string out;
  for (size_t i = 0; i < brokers_.size(); ++i) {
    out += "---- broker " + std::to_string(i + 1) + " ----\n" +
           tail(brokers_[i]->log(), bytes_per_broker) + "\n";
  }
  return out;
}

// ---- helpers -------------------------------------------------------------------------------

std::string base64_encode(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value(c);
    if (v < 0) {
      if (c == '=') break;
      throw std::invalid_argument("not base64: " + text);
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

std::vector<batch_span> batches_of(const std::string& log_bytes) {
  std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(log_bytes.data()),
                                log_bytes.size());
  std::vector<batch_span> out;
  for (std::span<const uint8_t> batch : split_batches(data)) {
    // baseOffset (0), batchLength (8), partitionLeaderEpoch (12), magic (16), crc (17),
    // attributes (21), lastOffsetDelta (23), ..., records count (57).
    byte_reader r(batch);
    batch_span s;
    s.base_offset = r.i64();
    r.take(57 - 8);
    s.records = r.i32();
    out.push_back(s);
  }
  return out;
}

}  // namespace sluice::compat

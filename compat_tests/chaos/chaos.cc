// sluice-chaos: the fault-injection checker of issue 14 (docs/RELIABILITY.md, "Fault injection").
//
// Three real brokers and a real etcd, every link between them behind a fault_proxy: broker k
// reaches broker j through P(k->j) (Kafka's own per-listener addresses: listeners FROM_1..FROM_3,
// inter.broker.listener.name=FROM_k, and j advertising P(k->j) as its FROM_k address), each broker
// reaches etcd through a proxy of its own, and clients reach each broker through one. Two
// idempotent acks=all producers and a group of two consumers run while a nemesis, driven by a
// seed, kills, pauses and cuts things off; then everything is healed and the history is checked
// in the manner of Jepsen's queue checker.
//
// Threading: the cluster and the nemesis live on the main thread (the children are tied to it by
// PR_SET_PDEATHSIG); each producer and each consumer has a thread of its own.

#include <librdkafka/rdkafka.h>
#include <signal.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "compat_tests/chaos/fault_proxy.h"
#include "compat_tests/cluster_fixture.h"
#include "compat_tests/cluster_workload.h"
#include "compat_tests/rdkafka_helpers.h"

namespace sluice::compat::chaos {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

const std::array<std::string, 2> topics = {"chaos-a", "chaos-b"};
constexpr int32_t partitions = 3;
constexpr int producers = 2;
constexpr int consumers = 2;
constexpr size_t min_acknowledged = 10000;
// The stated bound: every partition writable with acks=all and every broker in every ISR within
// this long after a fault heals (a restarted broker included).
constexpr auto recovery_bound = 60s;

int64_t ms_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

std::string now_text() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
  return buf;
}

void log_line(const std::string& line) {
  std::cout << now_text() << " " << line << std::endl;
}

// ---- topology ------------------------------------------------------------------------------

std::string listener_name(int32_t from) {
  return "FROM_" + std::to_string(from);
}

struct topology {
  // Listener ports, chosen before the brokers start so that the proxies in front of them exist
  // first: broker -> listener name -> port.
  std::map<int32_t, std::map<std::string, uint16_t>> ports;
  std::map<std::pair<int32_t, int32_t>, std::unique_ptr<fault_proxy>> between;  // (from, to)
  std::map<int32_t, std::unique_ptr<fault_proxy>> clients;
  std::map<int32_t, std::unique_ptr<fault_proxy>> etcd;

  topology() {
    for (int32_t k = 1; k <= cluster::size; ++k) {
      ports[k]["CLIENT"] = server::coordination::testing::free_port();
      for (int32_t from = 1; from <= cluster::size; ++from)
        ports[k][listener_name(from)] = server::coordination::testing::free_port();
    }
    for (int32_t k = 1; k <= cluster::size; ++k) {
      clients[k] =
          std::make_unique<fault_proxy>("clients->" + std::to_string(k), ports[k]["CLIENT"]);
      for (int32_t j = 1; j <= cluster::size; ++j) {
        if (j == k) continue;
        between[{k, j}] = std::make_unique<fault_proxy>(
            std::to_string(k) + "->" + std::to_string(j), ports[j][listener_name(k)]);
      }
    }
  }

  std::map<int32_t, config_map> broker_configs() const {
    std::map<int32_t, config_map> out;
    for (int32_t k = 1; k <= cluster::size; ++k) {
      std::string listeners = "CLIENT://127.0.0.1:" + std::to_string(ports.at(k).at("CLIENT"));
      std::string advertised = "CLIENT://127.0.0.1:" + std::to_string(clients.at(k)->port());
      std::string map = "CLIENT:PLAINTEXT";
      for (int32_t from = 1; from <= cluster::size; ++from) {
        const std::string name = listener_name(from);
        listeners += "," + name + "://127.0.0.1:" + std::to_string(ports.at(k).at(name));
        // Broker `from` reaches k at k's FROM_<from> address: the proxy P(from->k). k's own
        // FROM_k is never dialled (nobody fetches from itself), so it stays direct.
        const uint16_t port = from == k ? ports.at(k).at(name) : between.at({from, k})->port();
        advertised += "," + name + "://127.0.0.1:" + std::to_string(port);
        map += "," + name + ":PLAINTEXT";
      }
      out[k] = {{"listeners", listeners},
                {"advertised.listeners", advertised},
                {"listener.security.protocol.map", map},
                {"inter.broker.listener.name", listener_name(k)}};
    }
    return out;
  }

  std::string bootstrap() const {
    std::string out;
    for (const auto& [k, p] : clients) {
      // Appended piece by piece: GCC 12 warns falsely (-Wrestrict) on "literal" + std::string.
      if (!out.empty()) out += ',';
      out += "127.0.0.1:";
      out += std::to_string(p->port());
    }
    return out;
  }

  // Every proxy that carries broker k's traffic to or from the other brokers.
  std::vector<fault_proxy*> brokers_side(int32_t k) {
    std::vector<fault_proxy*> out;
    for (auto& [pair, p] : between)
      if (pair.first == k || pair.second == k) out.push_back(p.get());
    return out;
  }

  void heal_all() {
    for (auto& [pair, p] : between)
      p->heal();
    for (auto& [k, p] : clients)
      p->heal();
    for (auto& [k, p] : etcd)
      p->heal();
  }
};

// ---- workload ------------------------------------------------------------------------------

size_t slot(const std::string& topic, int32_t partition) {
  return (topic == topics[0] ? 0 : 1) * partitions + static_cast<size_t>(partition);
}

struct acknowledgement {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string value;
  clock_type::time_point at;
};

// An idempotent acks=all producer writing value_of(id, seq) to topics[seq % 2], partition
// (seq / 2) % 3, paced, from its own thread. Message `seq` is the producer's message id `seq`.
class writer {
 public:
  writer(int id, const std::string& bootstrap)
      : id_(id),
        prod_(bootstrap, {{"enable.idempotence", "true"},
                          {"acks", "all"},
                          {"linger.ms", "5"},
                          // Long enough that no message expires across any fault and its heal:
                          // a failure is then a broker's answer, not the client giving up.
                          {"message.timeout.ms", "600000"}}),
        thread_([this] { run(); }) {}
  ~writer() { stop(); }
  writer(const writer&) = delete;
  writer& operator=(const writer&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // The last time a message of topic/partition was acknowledged (steady clock, ns since epoch).
  int64_t last_ack_ns(size_t s) const { return last_ack_[s].load(); }
  const std::string& error() const { return error_; }

  // After stop(): waits for the outstanding deliveries; every acknowledgement, and the failures
  // (deliveries with an error, or none by the end) in `failures`.
  std::vector<acknowledgement> history(std::vector<std::string>& failures) {
    if (!prod_.flush(120s))
      failures.push_back("producer " + std::to_string(id_) + ": flush timed out");
    std::vector<acknowledgement> out;
    const auto deliveries = prod_.deliveries();
    for (size_t seq = 0; seq < deliveries.size(); ++seq) {
      const auto& d = deliveries[seq];
      const std::string value = value_of(id_, static_cast<int>(seq));
      if (!d.done || d.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        failures.push_back(value + ": " + (d.done ? rd_kafka_err2str(d.err) : "no report"));
        continue;
      }
      out.push_back({topics[seq % 2], d.partition, d.offset, value, d.at});
    }
    return out;
  }

 private:
  void run() {
    try {
      // Every delivery before `settled` is done; those from it on are looked at again each time,
      // so that one message held up on a stalled partition does not hide the others' reports.
      size_t settled = 0;
      for (int seq = 0; !stop_.load(); ++seq) {
        prod_.produce(topics[static_cast<size_t>(seq) % 2], (seq / 2) % partitions, "k",
                      value_of(id_, seq));
        if (seq % 2 == 0) continue;
        // About 100 messages a second: enough for the counts the checks need, and light enough
        // that two cores running three brokers and etcd keep their timing.
        prod_.poll(0);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        bool all_done = true;
        for (size_t id = settled; id <= static_cast<size_t>(seq); ++id) {
          const producer::delivery d = prod_.delivery_of(id);
          if (!d.done) {
            all_done = false;
            continue;
          }
          if (all_done) settled = id + 1;
          if (d.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::atomic<int64_t>& last = last_ack_[slot(topics[id % 2], d.partition)];
            last = std::max(last.load(), static_cast<int64_t>(d.at.time_since_epoch().count()));
          }
        }
      }
    } catch (const std::exception& e) {
      error_ = e.what();
    }
  }

  int id_;
  producer prod_;
  std::array<std::atomic<int64_t>, 2 * partitions> last_ack_{};
  std::atomic<bool> stop_{false};
  std::string error_;
  std::thread thread_;  // last: it starts once the rest is built
};

struct polled {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::string value;
  int generation = 0;  // rebalances this consumer had seen when it polled the record
};

struct committed {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;  // the next offset to read, as committed
};

const std::string group_id = "chaos-group";

// A member of the group: polls, and commits synchronously every 50 records the offset after the
// record polled last; records every poll, every commit the broker acknowledged, every error.
class reader {
 public:
  reader(int id, std::string bootstrap) : id_(id), bootstrap_(std::move(bootstrap)) {
    thread_ = std::thread([this] { run(); });
  }
  ~reader() { stop(); }
  reader(const reader&) = delete;
  reader& operator=(const reader&) = delete;

  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  size_t polled_count() const { return count_.load(); }
  // After stop().
  const std::vector<polled>& polls() const { return polls_; }
  const std::vector<committed>& commits() const { return commits_; }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  void run() {
    try {
      int generation = 0;
      group_consumer gc(bootstrap_, group_id, "^chaos-.*",
                        {{"session.timeout.ms", "10000"},
                         {"heartbeat.interval.ms", "1000"},
                         {"fetch.wait.max.ms", "100"},
                         {"topic.metadata.refresh.interval.ms", "2000"}},
                        [&generation](const group_consumer::rebalance_event&) { ++generation; });
      for (size_t n = 0; !stop_.load();) {
        std::optional<message> m = gc.poll(100ms);
        if (!m) continue;
        polls_.push_back({m->topic, m->partition, m->offset, m->value.value_or(""), generation});
        count_ = polls_.size();
        if (++n % 50 != 0) continue;
        const rd_kafka_resp_err_t err = gc.commit(*m);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
          commits_.push_back({m->topic, m->partition, m->offset + 1});
        } else {
          errors_.push_back(std::string("commit: ") + rd_kafka_err2str(err));
        }
      }
      for (std::string& e : gc.errors())
        errors_.push_back(std::move(e));
      gc.close();
    } catch (const std::exception& e) {
      errors_.push_back(std::string("consumer: ") + e.what());
    }
  }

  int id_;
  std::string bootstrap_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> count_{0};
  std::vector<polled> polls_;
  std::vector<committed> commits_;
  std::vector<std::string> errors_;
  std::thread thread_;
};

// ---- nemesis -------------------------------------------------------------------------------

enum class fault_kind {
  kill_leader,
  kill_controller,
  kill_random,
  kill_etcd,
  pause_broker,
  isolate_from_brokers,
  isolate_from_etcd,
  isolate_from_clients,
};
constexpr int fault_kinds = 8;

const char* name_of(fault_kind k) {
  switch (k) {
    case fault_kind::kill_leader:
      return "kill-leader";
    case fault_kind::kill_controller:
      return "kill-controller";
    case fault_kind::kill_random:
      return "kill-random-broker";
    case fault_kind::kill_etcd:
      return "kill-etcd";
    case fault_kind::pause_broker:
      return "pause-broker";
    case fault_kind::isolate_from_brokers:
      return "cut-from-brokers";
    case fault_kind::isolate_from_etcd:
      return "cut-from-etcd";
    case fault_kind::isolate_from_clients:
      return "cut-from-clients";
  }
  return "?";
}

struct fault_record {
  fault_kind kind = fault_kind::kill_leader;
  int32_t target = -1;  // broker; -1 for etcd
  clock_type::time_point applied;
  clock_type::time_point healed;
  std::optional<int64_t> recovery_ms;  // none: not within recovery_bound
  size_t acked_during = 0;
};

class checker {
 public:
  checker(uint64_t seed, int cycles) : seed_(seed), cycles_(cycles), random_(seed) {}

  int run();

 private:
  int32_t any_running() {
    for (int32_t n = 1; n <= cluster::size; ++n)
      if (c_->node(n).running()) return n;
    return 1;
  }
  int32_t pick_broker() {
    return std::uniform_int_distribution<int32_t>(1, cluster::size)(random_);
  }
  int32_t find_leader(int32_t fallback);
  int32_t find_controller(int32_t fallback);
  bool healthy(clock_type::time_point since, std::string& why);
  void apply(fault_record& f, int64_t hold_ms);
  void final_checks(const std::vector<fault_record>& faults);
  void violation(const std::string& what) {
    violations_.push_back(what);
    log_line("VIOLATION: " + what);
  }

  uint64_t seed_;
  int cycles_;
  std::mt19937_64 random_;
  std::unique_ptr<topology> net_;
  std::unique_ptr<cluster> c_;
  std::vector<std::unique_ptr<writer>> writers_;
  std::vector<std::unique_ptr<reader>> readers_;
  std::vector<std::string> violations_;
  size_t acknowledged_ = 0;
  size_t lost_ = 0;
  size_t duplicates_ = 0;
};

int32_t checker::find_leader(int32_t fallback) {
  const std::string& topic = topics[random_() % topics.size()];
  const int32_t partition = static_cast<int32_t>(random_() % partitions);
  try {
    const int32_t l = c_->leader_of(topic, partition, any_running());
    if (l > 0) return l;
  } catch (const std::exception&) {
  }
  return fallback;
}

int32_t checker::find_controller(int32_t fallback) {
  try {
    const int32_t id = c_->describe(any_running()).controller_id;
    if (id > 0) return id;
  } catch (const std::exception&) {
  }
  return fallback;
}

// Every broker lists every partition with a leader they agree on and all three replicas in
// sync, and every partition has had a write acknowledged since `since`.
bool checker::healthy(clock_type::time_point since, std::string& why) {
  std::vector<std::string> names(topics.begin(), topics.end());
  std::map<std::pair<std::string, int32_t>, int32_t> leaders;
  for (int32_t n = 1; n <= cluster::size; ++n) {
    try {
      cluster_metadata md = c_->metadata(n, names);
      for (const std::string& topic : topics) {
        const cluster_metadata::topic* t = md.find(topic);
        if (t == nullptr || t->partitions.size() != partitions) {
          why = "broker " + std::to_string(n) + " does not list " + topic;
          return false;
        }
        for (const auto& p : t->partitions) {
          if (p.leader <= 0 || p.isr.size() != cluster::size) {
            why = "broker " + std::to_string(n) + ": " + topic + "-" + std::to_string(p.index) +
                  " leader " + std::to_string(p.leader) + " isr " + std::to_string(p.isr.size());
            return false;
          }
          auto [it, fresh] = leaders.emplace(std::make_pair(topic, p.index), p.leader);
          if (!fresh && it->second != p.leader) {
            why = "brokers disagree on the leader of " + topic + "-" + std::to_string(p.index);
            return false;
          }
        }
      }
    } catch (const std::exception& e) {
      why = "broker " + std::to_string(n) + ": " + e.what();
      return false;
    }
  }
  const int64_t since_ns = since.time_since_epoch().count();
  for (size_t s = 0; s < 2 * partitions; ++s) {
    bool written = false;
    for (const auto& w : writers_)
      written = written || w->last_ack_ns(s) > since_ns;
    if (!written) {
      why = "no acknowledgement yet on " + topics[s / partitions] + "-" +
            std::to_string(s % partitions);
      return false;
    }
  }
  return true;
}

// Applies the fault, holds it for `hold_ms`, heals it (a killed process restarted, a paused one
// continued, a cut healed).
void checker::apply(fault_record& f, int64_t hold_ms) {
  const auto hold = std::chrono::milliseconds(hold_ms);
  switch (f.kind) {
    case fault_kind::kill_leader:
    case fault_kind::kill_controller:
    case fault_kind::kill_random: {
      f.target = f.kind == fault_kind::kill_leader       ? find_leader(pick_broker())
                 : f.kind == fault_kind::kill_controller ? find_controller(pick_broker())
                                                         : pick_broker();
      f.applied = clock_type::now();
      c_->node(f.target).kill9();
      std::this_thread::sleep_for(hold);
      c_->node(f.target).restart();
      break;
    }
    case fault_kind::kill_etcd:
      f.applied = clock_type::now();
      c_->etcd().kill();
      std::this_thread::sleep_for(hold);
      c_->etcd().restart();
      break;
    case fault_kind::pause_broker: {
      f.target = pick_broker();
      f.applied = clock_type::now();
      stopped_process paused(c_->node(f.target).pid());
      std::this_thread::sleep_for(hold);
      break;
    }
    case fault_kind::isolate_from_brokers:
    case fault_kind::isolate_from_etcd:
    case fault_kind::isolate_from_clients: {
      f.target = pick_broker();
      std::vector<fault_proxy*> cut =
          f.kind == fault_kind::isolate_from_brokers ? net_->brokers_side(f.target)
          : f.kind == fault_kind::isolate_from_etcd
              ? std::vector<fault_proxy*>{net_->etcd.at(f.target).get()}
              : std::vector<fault_proxy*>{net_->clients.at(f.target).get()};
      f.applied = clock_type::now();
      for (fault_proxy* p : cut)
        p->cut();
      std::this_thread::sleep_for(hold);
      for (fault_proxy* p : cut)
        p->heal();
      break;
    }
  }
  f.healed = clock_type::now();
}

int checker::run() {
  std::cout << "seed=" << seed_ << std::endl;
  net_ = std::make_unique<topology>();
  c_ = std::make_unique<cluster>(
      config_map{}, net_->broker_configs(),
      [this](etcd_process& etcd, std::map<int32_t, config_map>& per_node) {
        for (int32_t k = 1; k <= cluster::size; ++k) {
          net_->etcd[k] =
              std::make_unique<fault_proxy>(std::to_string(k) + "->etcd", etcd.client_port());
          per_node[k]["metadata.etcd.endpoints"] =
              "http://127.0.0.1:" + std::to_string(net_->etcd[k]->port());
        }
      });
  for (const std::string& topic : topics) {
    std::string message;
    const rd_kafka_resp_err_t err =
        c_->create_topic(topic, partitions, 3, {{"min.insync.replicas", "2"}}, 1, &message);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw std::runtime_error("cannot create " + topic + ": " + rd_kafka_err2str(err) + " " +
                               message);
    }
  }
  log_line("cluster up: three brokers, etcd, " +
           std::to_string(net_->between.size() + net_->clients.size() + net_->etcd.size()) +
           " proxies; clients bootstrap " + net_->bootstrap());
  for (int i = 0; i < producers; ++i)
    writers_.push_back(std::make_unique<writer>(i, net_->bootstrap()));
  for (int i = 0; i < consumers; ++i)
    readers_.push_back(std::make_unique<reader>(i, net_->bootstrap()));
  {
    std::string why;
    if (!wait_until([&] { return healthy(clock_type::now() - 1h, why); }, 60s))
      throw std::runtime_error("the workload did not start: " + why);
  }

  // Every kind once, in an order of the seed's, then picks of the seed's.
  std::vector<fault_kind> schedule;
  for (int k = 0; k < fault_kinds; ++k)
    schedule.push_back(static_cast<fault_kind>(k));
  // Picks of a generator of their own: the first cycles of a seed are the same whatever --cycles.
  std::shuffle(schedule.begin(), schedule.end(), random_);
  std::mt19937_64 picks(seed_ ^ 0x9e3779b97f4a7c15ULL);
  while (static_cast<int>(schedule.size()) < cycles_)
    schedule.push_back(static_cast<fault_kind>(picks() % fault_kinds));

  std::vector<fault_record> faults;
  for (int cycle = 0; cycle < static_cast<int>(schedule.size()); ++cycle) {
    fault_record f;
    f.kind = schedule[static_cast<size_t>(cycle)];
    // Longer than broker.session.timeout.ms (6 s): the broker's lease expires in every fault.
    const int64_t hold_ms = std::uniform_int_distribution<int64_t>(8000, 11000)(random_);
    const int64_t gap_ms = std::uniform_int_distribution<int64_t>(1000, 3000)(random_);
    apply(f, hold_ms);
    std::string why;
    const bool recovered = wait_until([&] { return healthy(f.healed, why); }, recovery_bound);
    if (recovered) f.recovery_ms = ms_between(f.healed, clock_type::now());
    std::ostringstream line;
    line << "cycle " << cycle + 1 << "/" << schedule.size() << ": " << name_of(f.kind);
    if (f.target > 0) line << " broker " << f.target;
    line << " held " << ms_between(f.applied, f.healed) << " ms; ";
    if (recovered) {
      line << "recovered in " << *f.recovery_ms << " ms";
    } else {
      line << "NOT recovered within " << recovery_bound.count() << " s: " << why;
    }
    log_line(line.str());
    if (!recovered) {
      violation(std::string("the cluster did not recover within ") +
                std::to_string(recovery_bound.count()) + " s after " + name_of(f.kind) +
                " (cycle " + std::to_string(cycle + 1) + "): " + why);
    }
    faults.push_back(f);
    if (!recovered) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms));
  }

  // Heal everything (already healed after each fault; a failed run may stop mid-way) and settle.
  net_->heal_all();
  for (int32_t n = 1; n <= cluster::size; ++n)
    if (!c_->node(n).running()) c_->node(n).restart();
  {
    // Measured from the last heal, as each cycle's recovery is.
    const clock_type::time_point last_heal =
        faults.empty() ? clock_type::now() : faults.back().healed;
    std::string why;
    if (!wait_until([&] { return healthy(last_heal, why); }, recovery_bound))
      violation("the cluster did not settle after the last heal: " + why);
  }
  final_checks(faults);

  std::vector<int64_t> recoveries;
  for (const auto& f : faults)
    if (f.recovery_ms) recoveries.push_back(*f.recovery_ms);
  std::sort(recoveries.begin(), recoveries.end());
  const int64_t p50 = recoveries.empty() ? -1 : recoveries[recoveries.size() / 2];
  const int64_t max = recoveries.empty() ? -1 : recoveries.back();
  const bool pass = violations_.empty();
  std::ostringstream summary;
  summary << "sluice-chaos: " << (pass ? "PASS" : "FAIL") << " runs=1 cycles=" << faults.size()
          << " acknowledged=" << acknowledged_ << " lost=" << lost_ << " duplicates=" << duplicates_
          << " recovery_p50_ms=" << p50 << " recovery_max_ms=" << max << " seed=" << seed_;
  if (!pass) {
    summary << " violations=" << violations_.size() << " first: " << violations_.front();
    // The brokers' directories (logs, data) stay for the post-mortem.
    ::setenv("SLUICE_COMPAT_KEEP", "1", 1);
    std::cout << c_->logs_tail(4000);
  }
  std::cout << summary.str() << std::endl;
  readers_.clear();
  writers_.clear();
  c_.reset();
  net_.reset();
  return pass ? 0 : 1;
}

void checker::final_checks(const std::vector<fault_record>& faults_in) {
  std::vector<fault_record> faults = faults_in;
  for (auto& w : writers_)
    w->stop();
  for (auto& r : readers_)
    r->stop();
  std::vector<acknowledgement> acks;
  std::vector<std::string> failures;
  for (auto& w : writers_) {
    if (!w->error().empty()) violation("producer thread: " + w->error());
    std::vector<acknowledgement> mine = w->history(failures);
    acks.insert(acks.end(), mine.begin(), mine.end());
  }
  acknowledged_ = acks.size();
  log_line("workload: " + std::to_string(acks.size()) + " acknowledged, " +
           std::to_string(failures.size()) + " failed deliveries" +
           (failures.empty() ? "" : " (first: " + failures.front() + ")"));

  // The final log of every partition, read from the beginning by a fresh consumer.
  using partition_key = std::pair<std::string, int32_t>;
  std::map<partition_key, std::map<int64_t, std::string>> log;
  std::map<partition_key, int64_t> high;
  for (const std::string& topic : topics) {
    simple_consumer reader(net_->bootstrap(), topic, {{"fetch.wait.max.ms", "100"}});
    size_t expected = 0;
    for (int32_t p = 0; p < partitions; ++p) {
      auto [lo, hi] = watermarks(reader.get(), topic, p, 30s);
      high[{topic, p}] = hi;
      if (lo != 0) violation(topic + "-" + std::to_string(p) + " starts at " + std::to_string(lo));
      expected += static_cast<size_t>(hi - lo);
      reader.start(p, RD_KAFKA_OFFSET_BEGINNING);
    }
    for (const message& m : reader.consume(expected, 120s)) {
      auto& slot = log[{topic, m.partition}];
      const std::string value = m.value.value_or("");
      auto [it, fresh] = slot.emplace(m.offset, value);
      if (!fresh && it->second != value) {
        violation(topic + "-" + std::to_string(m.partition) + " offset " +
                  std::to_string(m.offset) + " read as two values");
      }
    }
  }
  std::map<std::string, std::vector<std::pair<partition_key, int64_t>>> where;
  for (const auto& [key, records] : log) {
    const int64_t hi = high[key];
    if (static_cast<int64_t>(records.size()) != hi) {
      violation(key.first + "-" + std::to_string(key.second) + ": read " +
                std::to_string(records.size()) + " records below the high watermark " +
                std::to_string(hi));
    }
    int64_t expect = 0;
    for (const auto& [offset, value] : records) {
      if (offset != expect) {
        violation(key.first + "-" + std::to_string(key.second) + ": offset " +
                  std::to_string(offset) + " follows " + std::to_string(expect - 1) +
                  " (not contiguous)");
        expect = offset;
      }
      ++expect;
      where[value].push_back({key, offset});
    }
  }
  for (const auto& [value, places] : where) {
    if (places.size() > 1) {
      ++duplicates_;
      if (duplicates_ <= 5)
        violation("value " + value + " at " + std::to_string(places.size()) + " offsets");
    }
  }
  size_t misplaced = 0;
  for (const acknowledgement& a : acks) {
    auto it = where.find(a.value);
    if (it == where.end()) {
      if (++lost_ <= 5) {
        violation("acknowledged " + a.value + " at " + a.topic + "-" + std::to_string(a.partition) +
                  " offset " + std::to_string(a.offset) + " is lost");
      }
      continue;
    }
    const auto& [key, offset] = it->second.front();
    if (key != partition_key{a.topic, a.partition} || offset != a.offset) {
      if (++misplaced <= 5) {
        violation("acknowledged " + a.value + " at " + a.topic + "-" + std::to_string(a.partition) +
                  " offset " + std::to_string(a.offset) + " is at " + key.first + "-" +
                  std::to_string(key.second) + " offset " + std::to_string(offset));
      }
    }
  }
  if (lost_ > 5) violation(std::to_string(lost_) + " acknowledged messages lost in all");

  // Consumers: monotonic polls within an assignment, nothing read that the log lost.
  size_t polls = 0;
  size_t truncated_reads = 0;
  std::map<partition_key, int64_t> max_commit;
  for (size_t r = 0; r < readers_.size(); ++r) {
    const reader& rd = *readers_[r];
    std::map<partition_key, std::pair<int, int64_t>> last;  // generation, offset
    for (const polled& p : rd.polls()) {
      ++polls;
      const partition_key key{p.topic, p.partition};
      auto it = last.find(key);
      if (it != last.end() && it->second.first == p.generation && p.offset <= it->second.second) {
        violation("consumer " + std::to_string(r) + " polled " + p.topic + "-" +
                  std::to_string(p.partition) + " offset " + std::to_string(p.offset) + " after " +
                  std::to_string(it->second.second) + " (not monotonic)");
      }
      last[key] = {p.generation, p.offset};
      auto lit = log.find(key);
      const std::string* final_value = nullptr;
      if (lit != log.end()) {
        auto oit = lit->second.find(p.offset);
        if (oit != lit->second.end()) final_value = &oit->second;
      }
      if (final_value == nullptr || *final_value != p.value) {
        if (++truncated_reads <= 5) {
          violation("consumer " + std::to_string(r) + " read " + p.value + " at " + p.topic + "-" +
                    std::to_string(p.partition) + " offset " + std::to_string(p.offset) +
                    ", which the final log " +
                    (final_value ? "holds as " + *final_value : std::string("lacks")));
        }
      }
    }
    for (const committed& c : rd.commits()) {
      int64_t& m = max_commit[{c.topic, c.partition}];
      m = std::max(m, c.offset);
    }
    for (size_t i = 0; i < rd.errors().size() && i < 3; ++i)
      log_line("consumer " + std::to_string(r) + " error: " + rd.errors()[i]);
  }
  size_t commit_count = 0;
  for (const auto& rd : readers_)
    commit_count += rd->commits().size();
  log_line("consumers: " + std::to_string(polls) + " polls, " + std::to_string(commit_count) +
           " acknowledged commits");
  if (polls == 0) violation("the consumers read nothing");

  // Offset commits: the group's final committed offsets against every acknowledged commit.
  {
    rd_kafka_conf_t* conf = make_conf({{"bootstrap.servers", net_->bootstrap()},
                                       {"group.id", group_id},
                                       {"enable.auto.commit", "false"}});
    char err[512];
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (rk == nullptr) throw std::runtime_error(err);
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(6);
    for (const std::string& topic : topics)
      for (int32_t p = 0; p < partitions; ++p)
        rd_kafka_topic_partition_list_add(list, topic.c_str(), p);
    const rd_kafka_resp_err_t e = rd_kafka_committed(rk, list, 30000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
      violation(std::string("cannot read the group's committed offsets: ") + rd_kafka_err2str(e));
    } else {
      for (int i = 0; i < list->cnt; ++i) {
        const auto& el = list->elems[i];
        const partition_key key{el.topic, el.partition};
        auto it = max_commit.find(key);
        if (it != max_commit.end() && el.offset < it->second) {
          violation("commit lost: " + key.first + "-" + std::to_string(key.second) + " committed " +
                    std::to_string(el.offset) + ", but " + std::to_string(it->second) +
                    " was acknowledged");
        }
      }
    }
    rd_kafka_topic_partition_list_destroy(list);
    rd_kafka_destroy(rk);
  }

  // Replicas: identical bytes up to the high watermark.
  for (const auto& [key, hi] : high) {
    std::array<std::string, cluster::size> logs;
    const bool same = wait_until(
        [&] {
          for (int32_t n = 1; n <= cluster::size; ++n)
            logs[static_cast<size_t>(n - 1)] =
                read_partition_log(c_->node(n).partition_dir(key.first, key.second));
          return logs[0] == logs[1] && logs[1] == logs[2];
        },
        30s);
    if (same) continue;
    // Only bytes below the high watermark must agree; a tail beyond it may still be in flight.
    std::array<std::string, cluster::size> committed_part;
    for (size_t i = 0; i < logs.size(); ++i) {
      size_t bytes = 0;
      int64_t next = 0;
      size_t at = 0;
      for (const batch_span& b : batches_of(logs[i])) {
        const size_t length =
            12 + static_cast<size_t>(static_cast<uint32_t>(
                     (uint8_t(logs[i][at + 8]) << 24) | (uint8_t(logs[i][at + 9]) << 16) |
                     (uint8_t(logs[i][at + 10]) << 8) | uint8_t(logs[i][at + 11])));
        if (b.base_offset + b.records > hi) break;
        at += length;
        bytes = at;
        next = b.base_offset + b.records;
      }
      (void)next;
      committed_part[i] = logs[i].substr(0, bytes);
    }
    if (committed_part[0] != committed_part[1] || committed_part[1] != committed_part[2]) {
      violation("replicas of " + key.first + "-" + std::to_string(key.second) +
                " differ below the high watermark " + std::to_string(hi) + " (sizes " +
                std::to_string(logs[0].size()) + ", " + std::to_string(logs[1].size()) + ", " +
                std::to_string(logs[2].size()) + ")");
    }
  }

  // Counts that keep "0 lost" honest.
  if (acks.size() < min_acknowledged) {
    violation("only " + std::to_string(acks.size()) + " writes acknowledged (at least " +
              std::to_string(min_acknowledged) + " needed)");
  }
  std::set<fault_kind> applied;
  for (fault_record& f : faults) {
    applied.insert(f.kind);
    for (const acknowledgement& a : acks)
      if (a.at >= f.applied && a.at <= f.healed) ++f.acked_during;
    if (f.acked_during == 0) {
      violation(std::string("no write acknowledged during ") + name_of(f.kind) +
                (f.target > 0 ? " of broker " + std::to_string(f.target) : std::string()));
    }
  }
  if (static_cast<int>(applied.size()) != fault_kinds)
    violation("only " + std::to_string(applied.size()) + " fault kinds applied");
  std::ostringstream during;
  during << "acknowledged during each fault:";
  for (const fault_record& f : faults)
    during << " " << name_of(f.kind) << "=" << f.acked_during;
  log_line(during.str());
}

int usage() {
  std::cerr << "usage: sluice-chaos [--seed N] [--cycles N]   (SLUICE_BIN names the broker)\n"
               "  --cycles N  fault cycles (default 10; every fault kind needs 8)\n";
  return 2;
}

}  // namespace
}  // namespace sluice::compat::chaos

int main(int argc, char** argv) {
  using namespace sluice::compat::chaos;
  ::signal(SIGPIPE, SIG_IGN);
  uint64_t seed = std::random_device{}();
  int cycles = 10;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (arg == "--cycles" && i + 1 < argc) {
      cycles = std::atoi(argv[++i]);
      if (cycles < fault_kinds || cycles > 10000) return usage();
    } else {
      return usage();
    }
  }
  try {
    checker c(seed, cycles);
    return c.run();
  } catch (const std::exception& e) {
    std::cout << "sluice-chaos: FAIL (error) seed=" << seed << ": " << e.what() << std::endl;
    return 1;
  }
}

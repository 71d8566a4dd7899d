// sluice-clusterprobe: the cluster measurements of bench/cluster.sh that librdkafka's tools cannot
// make: a topic created with a manual replica assignment, the time a topic creation takes to
// appear in other brokers' Metadata, and the time a follower takes to catch up with its leader.
//
//   sluice-clusterprobe create --brokers H:P --topic T --partitions N
//                             [--assign 1,2,3] [--replication-factor R] [--configs k=v,...]
//     CreateTopics v4 to that broker. --assign: every partition on these brokers, the first one
//     its preferred leader (replication factor and partition count then come from the
//     assignment); otherwise N partitions with R replicas (-1: the broker's default) placed by
//     the controller. Reports how long the broker took to answer.
//
//   sluice-clusterprobe propagation --create-on H:P --watch H:P[,H:P...] --count N
//                                   [--prefix T] [--partitions P] [--interval-us U]
//     N times: a CreateTopics for a new topic (P partitions, the default replication factor) to
//     --create-on while one thread per --watch broker asks that broker for Metadata of the topic
//     (allow_auto_topic_creation false) on one connection, one request at a time, U us apart
//     (default 0: the next request as soon as the answer is in), until the topic is there with
//     every partition led. Times are from just before the CreateTopics is sent: its answer, and
//     when each watched broker first showed the topic. Prints one line per topic and a summary.
//
//   sluice-clusterprobe logsize --brokers H:P --topic T
//     The bytes of T's partitions on that broker (DescribeLogDirs), leader or follower.
//
//   sluice-clusterprobe catchup --leader H:P --follower H:P --topic T [--resume-pid PID]
//                              [--leader-pid PID] [--follower-pid PID] [--interval-ms 5]
//                              [--follower-start-bytes B]
//     Reads the size of every partition of T on the leader (DescribeLogDirs: the bytes of the
//     partition's segments, which a follower copies verbatim), then sends SIGCONT to
//     --resume-pid (a follower stopped with SIGSTOP; none given: the follower is running) and
//     asks the follower for its sizes every --interval-ms until every partition has the leader's
//     size. Reports the time from SIGCONT, the bytes fetched (leader size - --follower-start-
//     bytes, default 0), and the CPU seconds of the leader and the follower meanwhile, also per
//     GB of records.
//
// Common: [--timeout-s S] [--label L]. Each result is one JSON line; requests are encoded and
// answers decoded with the project's generated codec (wire/).

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"
#include "wire/codec.h"
#include "wire/error_code.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/create_topics_request.h"
#include "wire/generated/create_topics_response.h"
#include "wire/generated/describe_log_dirs_request.h"
#include "wire/generated/describe_log_dirs_response.h"
#include "wire/generated/metadata_request.h"
#include "wire/generated/metadata_response.h"
#include "wire/generated/request_header.h"

namespace {

using namespace sluice::bench;
namespace wire = sluice::wire;

constexpr std::string_view tool = "sluice-clusterprobe";
constexpr int16_t create_topics_version = 4;
constexpr int16_t metadata_version = 4;
constexpr int16_t describe_log_dirs_version = 1;

std::vector<std::string> split(const std::string& list, char sep = ',') {
  std::vector<std::string> out;
  for (size_t pos = 0; pos <= list.size();) {
    size_t next = std::min(list.find(sep, pos), list.size());
    if (next > pos) out.push_back(list.substr(pos, next - pos));
    pos = next + 1;
  }
  return out;
}

// One blocking connection, one request at a time.
class connection {
 public:
  explicit connection(const std::string& host_port) {
    size_t colon = host_port.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("want host:port: " + host_port);
    std::string host = host_port.substr(0, colon);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(host_port.substr(colon + 1))));
    if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1) {
      throw std::invalid_argument("want an IPv4 address: " + host_port);
    }
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      const int e = errno;
      if (fd_ >= 0) ::close(fd_);
      throw std::runtime_error("connect " + host_port + ": " + std::strerror(e));
    }
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~connection() { ::close(fd_); }
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  template <class Req, class Resp>
  Resp call(const Req& req, int16_t version) {
    const int32_t correlation_id = ++correlation_;
    wire::frame f;
    f.bytes.resize(4);
    {
      wire::writer w(f);
      wire::request_header h;
      h.request_api_key = Req::api_key;
      h.request_api_version = version;
      h.correlation_id = correlation_id;
      h.client_id = "sluice-clusterprobe";
      h.encode(w, wire::request_header_version(Req::api_key, version));
      req.encode(w, version);
    }
    const auto size = static_cast<uint32_t>(f.bytes.size() - 4);
    for (int i = 0; i < 4; ++i)
      f.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(size >> (24 - 8 * i));
    send_all(f.bytes);

    uint8_t prefix[4];
    recv_all(prefix, 4);
    const size_t body_size = (size_t{prefix[0]} << 24) | (size_t{prefix[1]} << 16) |
                             (size_t{prefix[2]} << 8) | prefix[3];
    buffer_.resize(body_size);
    recv_all(buffer_.data(), body_size);
    wire::reader r(buffer_);
    if (r.i32() != correlation_id) throw std::runtime_error("answer to another request");
    if (wire::response_header_version(Req::api_key, version) >= 1) {
      std::vector<wire::raw_tagged_field> ignored;
      r.tagged_fields(ignored, [](uint32_t, wire::reader&) { return false; });
    }
    Resp resp;
    if (!resp.decode(r, version) || !r.ok()) throw std::runtime_error("malformed answer");
    return resp;
  }

 private:
  void send_all(const std::vector<uint8_t>& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
      sent += static_cast<size_t>(n);
    }
  }
  void recv_all(uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t r = ::recv(fd_, p, n, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) throw std::runtime_error(r == 0 ? "connection closed" : std::strerror(errno));
      p += r;
      n -= static_cast<size_t>(r);
    }
  }

  int fd_ = -1;
  int32_t correlation_ = 0;
  std::vector<uint8_t> buffer_;
};

std::string error_text(int16_t code) {
  return std::string(wire::error_name(static_cast<wire::error_code>(code)));
}

// CreateTopics of one topic; returns "" or the error.
std::string create_topic(connection& c, const std::string& topic, int32_t partitions,
                         int16_t replication_factor, const std::vector<int32_t>& assign,
                         const std::string& configs) {
  wire::create_topics_request req;
  req.timeout_ms = 60000;
  auto& t = req.topics.emplace_back();
  t.name = topic;
  if (!assign.empty()) {
    t.num_partitions = -1;
    t.replication_factor = -1;
    for (int32_t p = 0; p < partitions; ++p) {
      auto& a = t.assignments.emplace_back();
      a.partition_index = p;
      a.broker_ids = assign;
    }
  } else {
    t.num_partitions = partitions;
    t.replication_factor = replication_factor;
  }
  for (const std::string& kv : split(configs)) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) throw std::invalid_argument("--configs wants k=v: " + kv);
    auto& cfg = t.configs.emplace_back();
    cfg.name = kv.substr(0, eq);
    cfg.value = kv.substr(eq + 1);
  }
  auto resp =
      c.call<wire::create_topics_request, wire::create_topics_response>(req, create_topics_version);
  if (resp.topics.size() != 1) return "no result for the topic";
  const auto& r = resp.topics[0];
  if (r.error_code != 0) {
    return error_text(r.error_code) + (r.error_message ? ": " + *r.error_message : "");
  }
  return "";
}

struct topic_view {
  bool present = false;  // the topic is there with every partition led
  int16_t error = 0;     // the topic's error, if any
  int32_t partitions = 0;
  int32_t controller = -1;
  size_t in_sync = 0;  // partitions whose ISR holds every replica
};

topic_view metadata_of(connection& c, const std::string& topic, int32_t want_partitions) {
  wire::metadata_request req;
  req.topics->emplace_back().name = topic;
  req.allow_auto_topic_creation = false;
  auto resp = c.call<wire::metadata_request, wire::metadata_response>(req, metadata_version);
  topic_view v;
  v.controller = resp.controller_id;
  if (resp.topics.size() != 1) return v;
  const auto& t = resp.topics[0];
  v.error = t.error_code;
  v.partitions = static_cast<int32_t>(t.partitions.size());
  bool led = t.error_code == 0 && v.partitions >= std::max(1, want_partitions);
  for (const auto& p : t.partitions) {
    led = led && p.error_code == 0 && p.leader_id >= 0;
    if (p.isr_nodes.size() == p.replica_nodes.size()) ++v.in_sync;
  }
  v.present = led;
  return v;
}

// ---------------------------------------------------------------------------------------------

int run_create(const options& o) {
  connection c(o.str("brokers", "127.0.0.1:9092"));
  const std::string topic = o.str("topic", "");
  if (topic.empty()) throw std::invalid_argument("create needs --topic");
  std::vector<int32_t> assign;
  for (const std::string& id : split(o.str("assign", "")))
    assign.push_back(static_cast<int32_t>(std::stoi(id)));
  const auto partitions = static_cast<int32_t>(o.i64("partitions", 1));
  const int64_t start = mono_ns();
  std::string error =
      create_topic(c, topic, partitions, static_cast<int16_t>(o.i64("replication-factor", -1)),
                   assign, o.str("configs", ""));
  const double ms = static_cast<double>(mono_ns() - start) / 1e6;
  // Wait until this broker's Metadata shows it led (the controller may be another broker).
  topic_view v;
  const int64_t wait_start = mono_ns();
  while (error.empty() && seconds_since(wait_start) < 30) {
    v = metadata_of(c, topic, partitions);
    if (v.present) break;
    usleep(10000);
  }
  if (error.empty() && !v.present) error = "created, but not led in Metadata after 30 s";
  json_line j;
  j.add("tool", tool).add("mode", "create");
  if (o.has("label")) j.add("label", o.str("label", ""));
  j.add("topic", topic).add("partitions", partitions).add("assign", o.str("assign", ""));
  j.add("elapsed_ms", ms).add("controller", v.controller);
  if (!error.empty()) j.add("error", error);
  j.print();
  return error.empty() ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

struct watcher {
  std::string address;
  std::thread thread;
  // Set by the main thread for each round; the watcher reports `seen_ns` (0: not yet).
  std::mutex m;
  std::condition_variable cv;
  std::string topic;
  int64_t round = 0;
  int64_t done_round = 0;
  int64_t seen_ns = 0;
  int64_t polls = 0;
  std::string error;
};

int run_propagation(const options& o) {
  const std::string create_on = o.str("create-on", "127.0.0.1:9092");
  const std::vector<std::string> watch = split(o.str("watch", ""));
  if (watch.empty()) throw std::invalid_argument("propagation needs --watch H:P[,H:P...]");
  const int64_t count = o.i64("count", 20);
  const std::string prefix = o.str("prefix", "propagation");
  const auto partitions = static_cast<int32_t>(o.i64("partitions", 1));
  const auto interval_us = static_cast<useconds_t>(o.i64("interval-us", 0));
  const double round_timeout_s = o.f64("round-timeout-s", 20);

  connection creator(create_on);
  std::vector<std::unique_ptr<watcher>> watchers;
  std::atomic<bool> stop{false};
  for (const std::string& a : watch) {
    auto w = std::make_unique<watcher>();
    w->address = a;
    watcher* self = w.get();
    self->thread = std::thread([self, &stop, partitions, interval_us] {
      try {
        connection c(self->address);
        int64_t last = 0;
        for (;;) {
          std::string topic;
          int64_t round = 0;
          {
            std::unique_lock lock(self->m);
            self->cv.wait(lock, [&] { return stop.load() || self->round != last; });
            if (stop.load()) return;
            topic = self->topic;
            round = self->round;
          }
          int64_t polls = 0;
          int64_t seen = 0;
          while (!stop.load()) {
            topic_view v = metadata_of(c, topic, partitions);
            ++polls;
            if (v.present) {
              seen = mono_ns();
              break;
            }
            if (interval_us > 0) usleep(interval_us);
          }
          std::lock_guard lock(self->m);
          self->seen_ns = seen;
          self->polls = polls;
          self->done_round = round;
          last = round;
          self->cv.notify_all();
        }
      } catch (const std::exception& e) {
        std::lock_guard lock(self->m);
        self->error = e.what();
        self->done_round = -1;
        self->cv.notify_all();
      }
    });
    watchers.push_back(std::move(w));
  }

  std::vector<std::vector<double>> visible_ms(watchers.size());
  std::vector<double> answer_ms;
  std::vector<double> after_answer_ms;  // the last watched broker, after the creator's answer
  int32_t controller = -1;
  std::string error;
  for (int64_t i = 0; i < count && error.empty(); ++i) {
    const std::string topic = prefix + "-" + std::to_string(i);
    const int64_t start = mono_ns();
    for (auto& w : watchers) {
      std::lock_guard lock(w->m);
      w->topic = topic;
      w->seen_ns = 0;
      w->round = i + 1;
      w->cv.notify_all();
    }
    error = create_topic(creator, topic, partitions, -1, {}, "");
    const int64_t answered = mono_ns();
    if (!error.empty()) break;
    json_line line;
    line.add("tool", tool).add("mode", "propagation_topic").add("topic", topic);
    line.add("answer_ms", static_cast<double>(answered - start) / 1e6);
    answer_ms.push_back(static_cast<double>(answered - start) / 1e6);
    int64_t last_seen = 0;
    for (size_t k = 0; k < watchers.size(); ++k) {
      watcher& w = *watchers[k];
      std::unique_lock lock(w.m);
      if (!w.cv.wait_for(lock, std::chrono::duration<double>(round_timeout_s),
                         [&] { return w.done_round == i + 1 || w.done_round < 0; })) {
        error = topic + " not visible on " + w.address + " after " +
                std::to_string(round_timeout_s) + " s";
        break;
      }
      if (w.done_round < 0) {
        error = w.address + ": " + w.error;
        break;
      }
      const double ms = static_cast<double>(w.seen_ns - start) / 1e6;
      visible_ms[k].push_back(ms);
      last_seen = std::max(last_seen, w.seen_ns);
      line.add("visible_ms_" + w.address, ms).add("polls_" + w.address, w.polls);
    }
    if (!error.empty()) break;
    after_answer_ms.push_back(static_cast<double>(last_seen - answered) / 1e6);
    if (controller < 0) controller = metadata_of(creator, topic, partitions).controller;
    line.print();
  }
  stop = true;
  for (auto& w : watchers) {
    {
      std::lock_guard lock(w->m);
      w->cv.notify_all();
    }
    w->thread.join();
  }

  json_line j;
  j.add("tool", tool).add("mode", "propagation");
  if (o.has("label")) j.add("label", o.str("label", ""));
  j.add("topics", static_cast<int64_t>(answer_ms.size())).add("partitions", partitions);
  j.add("interval_us", static_cast<int64_t>(interval_us)).add("controller", controller);
  j.add("create_on", create_on);
  auto add = [&](const std::string& key, std::vector<double> v) {
    percentiles p = summarize(v);
    if (p.count == 0) return;
    j.add(key + "_p50_ms", p.p50).add(key + "_max_ms", p.max);
  };
  add("answer", answer_ms);
  std::vector<double> all;
  for (size_t k = 0; k < watchers.size(); ++k) {
    add("visible_" + watchers[k]->address, visible_ms[k]);
    all.insert(all.end(), visible_ms[k].begin(), visible_ms[k].end());
  }
  add("visible_all", all);
  add("last_visible_after_answer", after_answer_ms);
  if (!error.empty()) j.add("error", error);
  arm_watchdog(0, "");
  j.print();
  return error.empty() ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------

// Partition sizes of `topic` on one broker (partition index -> bytes); absent partitions missing.
std::map<int32_t, int64_t> sizes_of(connection& c, const std::string& topic, int32_t partitions) {
  wire::describe_log_dirs_request req;
  auto& t = req.topics->emplace_back();
  t.topic = topic;
  for (int32_t p = 0; p < partitions; ++p)
    t.partitions.push_back(p);
  auto resp = c.call<wire::describe_log_dirs_request, wire::describe_log_dirs_response>(
      req, describe_log_dirs_version);
  std::map<int32_t, int64_t> out;
  for (const auto& dir : resp.results) {
    if (dir.error_code != 0)
      throw std::runtime_error("log dir error " + error_text(dir.error_code));
    for (const auto& tt : dir.topics) {
      if (tt.name != topic) continue;
      for (const auto& p : tt.partitions)
        out[p.partition_index] += p.partition_size;
    }
  }
  return out;
}

int64_t total(const std::map<int32_t, int64_t>& sizes) {
  int64_t sum = 0;
  for (const auto& [p, s] : sizes)
    sum += s;
  return sum;
}

int run_logsize(const options& o) {
  const std::string topic = o.str("topic", "");
  connection c(o.str("brokers", "127.0.0.1:9092"));
  const auto partitions = static_cast<int32_t>(o.i64("partitions", 1024));
  const std::map<int32_t, int64_t> sizes = sizes_of(c, topic, partitions);
  json_line j;
  j.add("tool", tool).add("mode", "logsize").add("topic", topic);
  j.add("partitions", sizes.size()).add("bytes", total(sizes));
  j.print();
  return sizes.empty() ? 1 : 0;
}

int run_catchup(const options& o) {
  const std::string topic = o.str("topic", "");
  if (topic.empty()) throw std::invalid_argument("catchup needs --topic");
  connection leader(o.str("leader", "127.0.0.1:9092"));
  const topic_view v = metadata_of(leader, topic, 1);
  if (!v.present) throw std::runtime_error("the leader does not show " + topic + " led");
  const std::map<int32_t, int64_t> target = sizes_of(leader, topic, v.partitions);
  const auto resume = static_cast<pid_t>(o.i64("resume-pid", -1));
  const auto leader_pid = static_cast<pid_t>(o.i64("leader-pid", -1));
  const auto follower_pid = static_cast<pid_t>(o.i64("follower-pid", -1));
  const auto interval_us = static_cast<useconds_t>(o.f64("interval-ms", 5) * 1000);

  cpu_meter leader_cpu(leader_pid);
  cpu_meter follower_cpu(follower_pid);
  const int64_t start = mono_ns();
  if (resume > 0 && ::kill(resume, SIGCONT) != 0) {
    throw std::runtime_error("SIGCONT " + std::to_string(resume) + ": " + std::strerror(errno));
  }
  // The follower may take a moment to answer again after SIGCONT (its io thread was frozen).
  connection follower(o.str("follower", "127.0.0.1:9093"));
  std::map<int32_t, int64_t> now;
  int64_t polls = 0;
  double first_answer_ms = -1;
  while (true) {
    now = sizes_of(follower, topic, v.partitions);
    if (first_answer_ms < 0) first_answer_ms = static_cast<double>(mono_ns() - start) / 1e6;
    ++polls;
    bool done = now.size() == target.size();
    for (const auto& [p, s] : target)
      done = done && now.count(p) != 0 && now.at(p) >= s;
    if (done) break;
    usleep(interval_us);
  }
  const double elapsed = seconds_since(start);
  leader_cpu.stop();
  follower_cpu.stop();
  const std::map<int32_t, int64_t> after = sizes_of(leader, topic, v.partitions);

  const double bytes = static_cast<double>(total(target) - o.i64("follower-start-bytes", 0));
  json_line j;
  j.add("tool", tool).add("mode", "catchup");
  if (o.has("label")) j.add("label", o.str("label", ""));
  j.add("topic", topic).add("partitions", v.partitions);
  j.add("leader_bytes", total(target)).add("follower_bytes", total(now));
  j.add("leader_bytes_after", total(after));
  j.add("bytes", bytes).add("elapsed_s", elapsed).add("mb_per_s", bytes / 1e6 / elapsed);
  j.add("first_answer_ms", first_answer_ms).add("polls", polls);
  if (leader_pid > 0) {
    j.add("leader_cpu_s", leader_cpu.broker_seconds());
    j.add("leader_cpu_s_per_gb", leader_cpu.broker_seconds() / (bytes / 1e9));
  }
  if (follower_pid > 0) {
    j.add("follower_cpu_s", follower_cpu.broker_seconds());
    j.add("follower_cpu_s_per_gb", follower_cpu.broker_seconds() / (bytes / 1e9));
  }
  arm_watchdog(0, "");
  j.print();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  try {
    options o(argc - 1, argv + 1,
              {"brokers",
               "topic",
               "partitions",
               "assign",
               "replication-factor",
               "configs",
               "create-on",
               "watch",
               "count",
               "prefix",
               "interval-us",
               "round-timeout-s",
               "leader",
               "follower",
               "resume-pid",
               "leader-pid",
               "follower-pid",
               "interval-ms",
               "follower-start-bytes",
               "timeout-s",
               "label"});
    json_line timeout;
    timeout.add("tool", tool).add("mode", mode).add("error", "timeout");
    arm_watchdog(o.f64("timeout-s", 120), timeout.str());
    if (mode == "create") return run_create(o);
    if (mode == "propagation") return run_propagation(o);
    if (mode == "catchup") return run_catchup(o);
    if (mode == "logsize") return run_logsize(o);
    fail(tool, mode,
         "usage: sluice-clusterprobe create|propagation|catchup|logsize [options] (see "
         "clusterprobe.cc)");
  } catch (const std::exception& e) {
    fail(tool, mode, e.what());
  }
}

// sluice-load: a load generator on librdkafka's C API, for any Kafka-compatible broker.
//
//   sluice-load produce --brokers H:P --topic T --messages N --size S --partitions P
//                       [--acks 0|1|all] [--linger-ms L] [--batch-size B] [--compression C]
//   sluice-load consume --brokers H:P --topic T            (from the beginning to the end)
//   sluice-load e2e     --brokers H:P --topic T --rate R --duration-s D [--size S] [--warmup-s W]
//   sluice-load admin   --brokers H:P --topic T --create P [--configs k=v,...] | --delete
//
// Common: [--broker-pid PID] [--timeout-s S] [--label L] [-X librdkafka.key=value ...]
//
// Each run prints ONE JSON line on stdout: throughput (msgs/s, MB/s of payload, 1 MB = 10^6 B),
// latencies in ms, and the CPU seconds (utime + stime from /proc) of this process and of the
// broker process over the measured interval, also per GB of payload, so that the cost of a GB is
// visible beside the throughput. librdkafka's own log goes to stderr.
//
// produce: messages go to partition i % P; the payload is S bytes of random text (a different
//   window of a 1 MiB pool for each message, the sequence number in front), so that compression
//   sees neither one message repeated nor incompressible bytes. Timed from the first produce()
//   to the last delivery report; latency is librdkafka's per-message produce()-to-delivery-report
//   time (rd_kafka_message_latency).
// consume: an assign()-based consumer (consumer groups need no broker support: nothing is joined
//   or committed) reads every partition from the low to the high watermark found at start.
// e2e: one producer and one consumer in this process; the producer sends at a fixed rate with
//   the send time (CLOCK_MONOTONIC) in the payload, the consumer, positioned at the end before
//   the measured phase, reports send-to-receive latency. A warm-up phase (not measured) lets the
//   consumer's position resolve and the connections settle. Latency is also reported from the
//   scheduled send time (`intended_*`), which includes any stall of the sending thread, so a
//   stalled producer cannot hide latency (coordinated omission).
// admin: creates the topic with P partitions (CreateTopics, configs as given) or deletes it
//   (DeleteTopics) through librdkafka's admin API, and reports how long the broker took to answer.

#include <librdkafka/rdkafka.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"

namespace {

using namespace sluice::bench;

constexpr std::string_view tool = "sluice-load";

struct settings {
  std::string mode;
  std::string brokers;
  std::string topic;
  pid_t broker_pid = -1;
  std::string label;
  std::vector<std::pair<std::string, std::string>> props;  // -X, applied last
};

rd_kafka_conf_t* make_conf(const settings& s,
                           const std::vector<std::pair<std::string, std::string>>& base) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      fail(tool, s.mode, "librdkafka config " + k + "=" + v + ": " + err);
    }
  };
  set("bootstrap.servers", s.brokers);
  set("client.id", "sluice-load");
  for (const auto& [k, v] : base)
    set(k, v);
  for (const auto& [k, v] : s.props)
    set(k, v);
  return conf;
}

rd_kafka_t* make_client(const settings& s, rd_kafka_type_t type, rd_kafka_conf_t* conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) fail(tool, s.mode, std::string("rd_kafka_new: ") + err);
  return rk;
}

// Waits until Metadata shows the topic with at least `min_partitions` partitions, none in error.
// Against Sluice the request also auto-creates the topic. Returns the partition count.
int wait_for_topic(const settings& s, rd_kafka_t* rk, int min_partitions, double timeout_s) {
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, s.topic.c_str(), nullptr);
  const int64_t start = mono_ns();
  std::string last_problem = "no metadata";
  while (seconds_since(start) < timeout_s) {
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1) {
      const rd_kafka_metadata_topic_t& t = md->topics[0];
      bool ok =
          t.err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partition_cnt >= std::max(1, min_partitions);
      for (int i = 0; ok && i < t.partition_cnt; ++i) {
        ok = t.partitions[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && t.partitions[i].leader >= 0;
      }
      int count = t.partition_cnt;
      last_problem = t.err ? rd_kafka_err2str(t.err) : "partitions not ready";
      rd_kafka_metadata_destroy(md);
      if (ok) {
        rd_kafka_topic_destroy(rkt);
        return count;
      }
    } else {
      if (md != nullptr) rd_kafka_metadata_destroy(md);
      last_problem = rd_kafka_err2str(err);
    }
    usleep(50 * 1000);
  }
  rd_kafka_topic_destroy(rkt);
  fail(tool, s.mode, "topic " + s.topic + " not ready: " + last_problem);
}

json_line result_head(const settings& s) {
  json_line j;
  j.add("tool", tool).add("mode", s.mode);
  if (!s.label.empty()) j.add("label", s.label);
  j.add("topic", s.topic);
  return j;
}

void add_latency(json_line& j, std::string_view prefix, std::vector<double>& ms) {
  percentiles p = summarize(ms);
  std::string k(prefix);
  if (p.count == 0) {
    j.add_null(k + "p50_ms").add_null(k + "p99_ms").add_null(k + "p999_ms").add_null(k + "max_ms");
    return;
  }
  j.add(k + "p50_ms", p.p50).add(k + "p99_ms", p.p99).add(k + "p999_ms", p.p999);
  j.add(k + "max_ms", p.max);
}

std::vector<char> make_payload(size_t size) {
  std::vector<char> payload(size);
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  static constexpr char alphabet[] =
      "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  for (char& c : payload) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c = alphabet[x % (sizeof alphabet - 1)];
  }
  return payload;
}

// ---------------------------------------------------------------------------------------------
// produce

struct produce_state {
  std::atomic<int64_t> delivered{0};
  std::atomic<int64_t> failed{0};
  std::string first_error;
  std::vector<double> latency_ms;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* st = static_cast<produce_state*>(opaque);
  if (m->err) {
    if (st->failed++ == 0) st->first_error = rd_kafka_err2str(m->err);
    return;
  }
  ++st->delivered;
  int64_t us = rd_kafka_message_latency(m);
  if (us >= 0) st->latency_ms.push_back(static_cast<double>(us) / 1000.0);
}

int run_produce(const settings& s, const options& o) {
  const int64_t messages = o.i64("messages", 1000000);
  const int64_t size = o.i64("size", 100);
  const int partitions = static_cast<int>(o.i64("partitions", 4));
  const std::string acks = o.str("acks", "1");
  std::vector<std::pair<std::string, std::string>> base = {
      {"acks", acks},
      {"compression.type", o.str("compression", "none")},
  };
  if (o.has("linger-ms")) base.emplace_back("linger.ms", o.str("linger-ms", ""));
  if (o.has("batch-size")) base.emplace_back("batch.size", o.str("batch-size", ""));
  if (messages <= 0 || size < 0 || partitions <= 0) {
    fail(tool, s.mode, "--messages and --partitions must be > 0");
  }

  produce_state st;
  st.latency_ms.reserve(static_cast<size_t>(messages));
  rd_kafka_conf_t* conf = make_conf(s, base);
  rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
  rd_kafka_conf_set_opaque(conf, &st);
  rd_kafka_t* rk = make_client(s, RD_KAFKA_PRODUCER, conf);
  wait_for_topic(s, rk, partitions, 15);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, s.topic.c_str(), nullptr);

  // Each message is a different window of a 1 MiB pool of random text, so that compression sees
  // what it would see in real traffic rather than one message repeated.
  constexpr size_t pool_size = 1 << 20;
  std::vector<char> pool = make_payload(pool_size + static_cast<size_t>(size));
  std::vector<char> payload(static_cast<size_t>(size));
  cpu_meter cpu(s.broker_pid);
  const int64_t start = mono_ns();
  for (int64_t i = 0; i < messages; ++i) {
    const size_t window = (static_cast<size_t>(i) * 4099) % pool_size;
    std::memcpy(payload.data(), pool.data() + window, payload.size());
    if (size >= 8) std::memcpy(payload.data(), &i, 8);
    auto partition = static_cast<int32_t>(i % partitions);
    while (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, payload.data(), payload.size(),
                            nullptr, 0, nullptr) != 0) {
      rd_kafka_resp_err_t err = rd_kafka_last_error();
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        fail(tool, s.mode, std::string("produce: ") + rd_kafka_err2str(err));
      }
      rd_kafka_poll(rk, 1);  // the local queue is full: serve delivery reports, then retry
    }
    if ((i & 1023) == 0) rd_kafka_poll(rk, 0);
  }
  while (rd_kafka_outq_len(rk) > 0)
    rd_kafka_poll(rk, 10);
  const double elapsed = seconds_since(start);
  cpu.stop();

  const double bytes = static_cast<double>(messages) * static_cast<double>(size);
  json_line j = result_head(s);
  j.add("messages", messages).add("size", size).add("partitions", partitions).add("acks", acks);
  j.add("linger_ms", o.str("linger-ms", "default"))
      .add("batch_size", o.str("batch-size", "default"));
  j.add("compression", o.str("compression", "none"));
  j.add("delivered", st.delivered.load()).add("failed", st.failed.load());
  if (!st.first_error.empty()) j.add("first_error", st.first_error);
  j.add("elapsed_s", elapsed).add("msgs_per_s", static_cast<double>(messages) / elapsed);
  j.add("mb_per_s", bytes / 1e6 / elapsed);
  add_latency(j, "lat_", st.latency_ms);
  j.add_cpu(cpu, bytes);
  if (s.broker_pid > 0) j.add("broker_rss_kb", process_memory_kb(s.broker_pid));
  arm_watchdog(0, "");
  j.print();
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return st.failed.load() == 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// consume

// Partition count from Metadata, for a topic that must already exist (no auto-create).
int partitions_of(const settings& s, rd_kafka_t* rk) {
  return wait_for_topic(s, rk, 1, 15);
}

int run_consume(const settings& s, const options&) {
  char err[512];
  std::vector<std::pair<std::string, std::string>> base = {
      // assign() needs a group id in librdkafka, but nothing is joined or committed with it.
      {"group.id", "sluice-bench-" + std::to_string(getpid())},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
  };
  rd_kafka_t* rk = make_client(s, RD_KAFKA_CONSUMER, make_conf(s, base));
  rd_kafka_poll_set_consumer(rk);
  const int partitions = partitions_of(s, rk);

  std::vector<int64_t> low(partitions), high(partitions);
  int64_t expected = 0;
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(rk, s.topic.c_str(), p, &low[p], &high[p], 10000);
    if (e) fail(tool, s.mode, std::string("watermarks: ") + rd_kafka_err2str(e));
    expected += high[p] - low[p];
  }
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, s.topic.c_str(), p)->offset = low[p];
  }

  cpu_meter cpu(s.broker_pid);
  const int64_t start = mono_ns();
  if (rd_kafka_resp_err_t e = rd_kafka_assign(rk, list)) {
    fail(tool, s.mode, std::string("assign: ") + rd_kafka_err2str(e));
  }
  rd_kafka_topic_partition_list_destroy(list);

  std::vector<int64_t> next(low);
  int done_partitions = 0;
  for (int p = 0; p < partitions; ++p)
    done_partitions += next[p] >= high[p];
  int64_t messages = 0;
  double bytes = 0;
  int64_t errors = 0;
  std::string first_error;
  int64_t last_ns = start;
  while (done_partitions < partitions) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 1000);
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->err) {
      if (errors++ == 0) first_error = rd_kafka_message_errstr(m);
      rd_kafka_message_destroy(m);
      continue;
    }
    const int p = m->partition;
    if (p >= 0 && p < partitions && m->offset >= next[p]) {
      ++messages;
      bytes += static_cast<double>(m->len + m->key_len);
      const bool was_done = next[p] >= high[p];
      next[p] = m->offset + 1;
      if (!was_done && next[p] >= high[p]) {
        ++done_partitions;
        last_ns = mono_ns();
      }
    }
    rd_kafka_message_destroy(m);
  }
  const double elapsed = static_cast<double>(last_ns - start) / 1e9;
  cpu.stop();
  (void)err;

  json_line j = result_head(s);
  j.add("partitions", partitions).add("expected", expected).add("messages", messages);
  j.add("errors", errors);
  if (!first_error.empty()) j.add("first_error", first_error);
  j.add("elapsed_s", elapsed).add("msgs_per_s", static_cast<double>(messages) / elapsed);
  j.add("mb_per_s", bytes / 1e6 / elapsed).add("bytes", bytes);
  j.add_cpu(cpu, bytes);
  if (s.broker_pid > 0) j.add("broker_rss_kb", process_memory_kb(s.broker_pid));
  arm_watchdog(0, "");
  j.print();
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  return messages == expected ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// e2e

// Payload header written by the producer and read by the consumer (host byte order: one process).
struct stamp {
  char magic[4];
  uint32_t phase;  // 0 warm-up, 1 measured
  int64_t sent_ns;
  int64_t intended_ns;
  int64_t seq;
};
constexpr char stamp_magic[4] = {'S', 'L', 'B', '1'};

struct e2e_consumer {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> received{0};  // measured phase only
  std::atomic<int64_t> warmup_received{0};
  std::vector<double> latency_ms;
  std::vector<double> intended_latency_ms;
  int64_t errors = 0;
  std::string first_error;
};

void consume_e2e(rd_kafka_t* rk, e2e_consumer& c) {
  while (!c.stop.load(std::memory_order_relaxed)) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 50);
    if (m == nullptr) continue;
    const int64_t now = mono_ns();
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && c.errors++ == 0) {
        c.first_error = rd_kafka_message_errstr(m);
      }
    } else if (m->len >= sizeof(stamp)) {
      stamp st;
      std::memcpy(&st, m->payload, sizeof st);
      if (std::memcmp(st.magic, stamp_magic, 4) == 0) {
        if (st.phase == 1) {
          c.latency_ms.push_back(static_cast<double>(now - st.sent_ns) / 1e6);
          c.intended_latency_ms.push_back(static_cast<double>(now - st.intended_ns) / 1e6);
          ++c.received;
        } else {
          ++c.warmup_received;
        }
      }
    }
    rd_kafka_message_destroy(m);
  }
}

int run_e2e(const settings& s, const options& o) {
  const double rate = o.f64("rate", 10000);
  const double duration = o.f64("duration-s", 10);
  const double warmup = o.f64("warmup-s", 2);
  const int64_t size = std::max<int64_t>(o.i64("size", 100), sizeof(stamp));
  const std::string acks = o.str("acks", "1");
  if (rate <= 0 || duration <= 0) fail(tool, s.mode, "--rate and --duration-s must be > 0");
  // A 100 us send period wants a precise sleep: the default 50 us timer slack is half of it.
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  std::vector<std::pair<std::string, std::string>> pbase = {
      {"acks", acks},
      {"linger.ms", o.str("linger-ms", "0")},
      {"compression.type", o.str("compression", "none")},
  };
  rd_kafka_t* producer = make_client(s, RD_KAFKA_PRODUCER, make_conf(s, pbase));
  const int partitions = wait_for_topic(s, producer, static_cast<int>(o.i64("partitions", 1)), 15);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(producer, s.topic.c_str(), nullptr);

  std::vector<std::pair<std::string, std::string>> cbase = {
      {"group.id", "sluice-bench-" + std::to_string(getpid())},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
  };
  rd_kafka_t* consumer = make_client(s, RD_KAFKA_CONSUMER, make_conf(s, cbase));
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list, s.topic.c_str(), p)->offset = RD_KAFKA_OFFSET_END;
  }
  if (rd_kafka_resp_err_t e = rd_kafka_assign(consumer, list)) {
    fail(tool, s.mode, std::string("assign: ") + rd_kafka_err2str(e));
  }
  rd_kafka_topic_partition_list_destroy(list);

  e2e_consumer c;
  const auto expected = static_cast<size_t>(rate * duration);
  c.latency_ms.reserve(expected);
  c.intended_latency_ms.reserve(expected);
  std::thread consumer_thread([&] { consume_e2e(consumer, c); });

  std::vector<char> payload = make_payload(static_cast<size_t>(size));
  const auto period_ns = static_cast<int64_t>(1e9 / rate);
  int64_t sent_measured = 0;
  int64_t seq = 0;
  std::unique_ptr<cpu_meter> cpu;
  int64_t measured_start = 0;
  auto send_phase = [&](uint32_t phase, double seconds) {
    const int64_t begin = mono_ns();
    const auto count = static_cast<int64_t>(seconds * rate);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t intended = begin + i * period_ns;
      if (mono_ns() < intended) {
        timespec ts{static_cast<time_t>(intended / 1000000000),
                    static_cast<long>(intended % 1000000000)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr);
      }
      stamp st;
      std::memcpy(st.magic, stamp_magic, 4);
      st.phase = phase;
      st.intended_ns = intended;
      st.seq = seq++;
      st.sent_ns = mono_ns();
      std::memcpy(payload.data(), &st, sizeof st);
      auto partition = static_cast<int32_t>(st.seq % partitions);
      if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, payload.data(), payload.size(),
                           nullptr, 0, nullptr) != 0) {
        fail(tool, s.mode, std::string("produce: ") + rd_kafka_err2str(rd_kafka_last_error()));
      }
      if (phase == 1) ++sent_measured;
      rd_kafka_poll(producer, 0);
    }
  };
  send_phase(0, warmup);
  if (c.warmup_received.load() == 0) {
    // The consumer has not seen anything yet: give it a little more time before measuring.
    const int64_t wait_start = mono_ns();
    while (c.warmup_received.load() == 0 && seconds_since(wait_start) < 5)
      usleep(10000);
  }
  cpu = std::make_unique<cpu_meter>(s.broker_pid);
  measured_start = mono_ns();
  send_phase(1, duration);
  const double send_elapsed = seconds_since(measured_start);
  // Drain: everything sent should arrive; stop waiting 5 s after the last send.
  const int64_t drain_start = mono_ns();
  while (c.received.load() < sent_measured && seconds_since(drain_start) < 5)
    usleep(1000);
  cpu->stop();
  c.stop = true;
  consumer_thread.join();
  rd_kafka_flush(producer, 5000);

  const double bytes = static_cast<double>(c.received.load()) * static_cast<double>(size);
  json_line j = result_head(s);
  j.add("rate", rate).add("duration_s", duration).add("size", size).add("partitions", partitions);
  j.add("acks", acks).add("linger_ms", o.str("linger-ms", "0"));
  j.add("sent", sent_measured).add("received", c.received.load());
  j.add("lost", sent_measured - c.received.load());
  j.add("errors", c.errors);
  if (!c.first_error.empty()) j.add("first_error", c.first_error);
  j.add("send_rate", static_cast<double>(sent_measured) / send_elapsed);
  add_latency(j, "lat_", c.latency_ms);
  add_latency(j, "intended_lat_", c.intended_latency_ms);
  j.add_cpu(*cpu, bytes);
  if (s.broker_pid > 0) j.add("broker_rss_kb", process_memory_kb(s.broker_pid));
  arm_watchdog(0, "");
  j.print();
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(producer);
  return c.received.load() == sent_measured ? 0 : 1;
}

int run_admin(const settings& s, const options& o) {
  rd_kafka_t* rk = make_client(s, RD_KAFKA_PRODUCER, make_conf(s, {}));
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  char err[512];
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
  rd_kafka_AdminOptions_set_request_timeout(opts, 120000, err, sizeof err);
  rd_kafka_AdminOptions_set_operation_timeout(opts, 120000, err, sizeof err);
  const bool create = o.has("create");
  const int64_t start = mono_ns();
  if (create) {
    rd_kafka_NewTopic_t* t = rd_kafka_NewTopic_new(
        s.topic.c_str(), static_cast<int>(o.i64("create", 1)), 1, err, sizeof err);
    if (t == nullptr) fail(tool, s.mode, err);
    std::string configs = o.str("configs", "");
    for (size_t at = 0; at < configs.size();) {
      size_t comma = configs.find(',', at);
      std::string kv = configs.substr(at, comma == std::string::npos ? comma : comma - at);
      size_t eq = kv.find('=');
      if (eq != std::string::npos) {
        rd_kafka_NewTopic_set_config(t, kv.substr(0, eq).c_str(), kv.substr(eq + 1).c_str());
      }
      at = comma == std::string::npos ? configs.size() : comma + 1;
    }
    rd_kafka_CreateTopics(rk, &t, 1, opts, q);
    rd_kafka_NewTopic_destroy(t);
  } else if (o.has("delete")) {
    rd_kafka_DeleteTopic_t* t = rd_kafka_DeleteTopic_new(s.topic.c_str());
    rd_kafka_DeleteTopics(rk, &t, 1, opts, q);
    rd_kafka_DeleteTopic_destroy(t);
  } else {
    fail(tool, s.mode, "admin needs --create P or --delete");
  }
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 130000);
  const double elapsed = seconds_since(start);
  std::string problem;
  if (ev == nullptr) {
    problem = "no answer";
  } else if (rd_kafka_event_error(ev)) {
    problem = rd_kafka_event_error_string(ev);
  } else {
    size_t n = 0;
    const rd_kafka_topic_result_t** results =
        create ? rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n)
               : rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
    if (n == 1 && rd_kafka_topic_result_error(results[0])) {
      problem = rd_kafka_err2str(rd_kafka_topic_result_error(results[0]));
    }
  }
  if (ev != nullptr) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  json_line j = result_head(s);
  j.add("action", create ? "create" : "delete").add("elapsed_s", elapsed);
  if (!problem.empty()) {
    j.add("error", problem);
    std::puts(j.str().c_str());
    return 1;
  }
  std::puts(j.str().c_str());
  return 0;
}

void usage() {
  std::fputs(
      "usage: sluice-load produce|consume|e2e|admin --brokers H:P --topic T [options]\n"
      "  produce: --messages N --size S --partitions P --acks 0|1|all --linger-ms L\n"
      "           --batch-size B --compression none|gzip|snappy|lz4|zstd\n"
      "  consume: (reads every partition from the beginning to the high watermark)\n"
      "  e2e:     --rate R --duration-s D --warmup-s W --size S --partitions P --acks A\n"
      "           --linger-ms L (default 0)\n"
      "  admin:   --create P [--configs k=v,...] | --delete\n"
      "  common:  --broker-pid PID --timeout-s S --label L -X key=value (librdkafka)\n",
      stderr);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string_view(argv[1]) == "--help") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  settings s;
  s.mode = argv[1];
  try {
    options o(argc - 1, argv + 1,
              {"brokers", "topic", "broker-pid", "timeout-s", "label", "X", "messages", "size",
               "partitions", "acks", "linger-ms", "batch-size", "compression", "rate", "duration-s",
               "warmup-s", "create", "delete", "configs"});
    s.brokers = o.str("brokers", "127.0.0.1:9092");
    s.topic = o.str("topic", "sluice-bench");
    s.broker_pid = static_cast<pid_t>(o.i64("broker-pid", -1));
    s.label = o.str("label", "");
    for (const std::string& kv : o.all("X")) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos) throw std::invalid_argument("-X " + kv + ": expected key=value");
      s.props.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    }
    json_line timeout = result_head(s);
    timeout.add("error", "timeout");
    arm_watchdog(o.f64("timeout-s", 300), timeout.str());
    if (s.mode == "produce") return run_produce(s, o);
    if (s.mode == "consume") return run_consume(s, o);
    if (s.mode == "e2e") return run_e2e(s, o);
    if (s.mode == "admin") return run_admin(s, o);
    usage();
    return 2;
  } catch (const std::exception& e) {
    fail(tool, s.mode, e.what());
  }
}

#include "compat_tests/rdkafka_helpers.h"

#include <algorithm>
#include <stdexcept>
#include <thread>

namespace sluice::compat {

rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto& [k, v] : settings) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("librdkafka config " + k + "=" + v + ": " + err);
    }
  }
  return conf;
}

namespace {

std::map<std::string, std::string> merged(std::map<std::string, std::string> base,
                                          const std::map<std::string, std::string>& extra) {
  for (const auto& [k, v] : extra)
    base[k] = v;
  return base;
}

// rd_kafka_new, which takes ownership of `conf` only when it succeeds.
rd_kafka_t* new_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf, const char* what) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("rd_kafka_new(") + what + "): " + err);
  }
  return rk;
}

std::optional<std::string> optional_bytes(const void* p, size_t len) {
  if (p == nullptr) return std::nullopt;
  return std::string(static_cast<const char*>(p), len);
}

}  // namespace

// ---- producer ------------------------------------------------------------------------------

producer::producer(const std::string& bootstrap, const std::map<std::string, std::string>& extra) {
  rd_kafka_conf_t* conf = make_conf(merged({{"bootstrap.servers", bootstrap},
                                            // Tests that need idempotence ask for it.
                                            {"enable.idempotence", "false"},
                                            {"linger.ms", "5"}},
                                           extra));
  rd_kafka_conf_set_dr_msg_cb(conf, &producer::on_delivery);
  rd_kafka_conf_set_opaque(conf, this);
  rk_ = new_handle(RD_KAFKA_PRODUCER, conf, "producer");
}

producer::~producer() {
  // Whatever is still queued is abandoned: tests flush explicitly when they care.
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(rk_, 0);
  rd_kafka_destroy(rk_);
}

void producer::on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<producer*>(opaque);
  auto id = reinterpret_cast<uintptr_t>(m->_private);
  std::lock_guard lock(self->mu_);
  delivery& d = self->deliveries_.at(id);
  d.done = true;
  d.err = m->err;
  d.partition = m->partition;
  d.offset = m->offset;
  d.at = std::chrono::steady_clock::now();
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) ++self->acked_;
}

size_t producer::produce(const std::string& topic, int32_t partition,
                         const std::optional<std::string>& key,
                         const std::optional<std::string>& value,
                         const std::vector<header>& headers, int64_t timestamp) {
  size_t id;
  {
    std::lock_guard lock(mu_);
    id = deliveries_.size();
    deliveries_.emplace_back();
  }
  for (;;) {
    rd_kafka_headers_t* hdrs = nullptr;
    if (!headers.empty()) {
      hdrs = rd_kafka_headers_new(headers.size());
      for (const auto& h : headers) {
        rd_kafka_header_add(hdrs, h.name.data(), static_cast<ssize_t>(h.name.size()),
                            h.value ? h.value->data() : nullptr,
                            h.value ? static_cast<ssize_t>(h.value->size()) : 0);
      }
    }
    // A null pointer is a null key/value; a non-null pointer with length 0 is an empty one.
    static const char empty = 0;
    const char* kp = key ? (key->empty() ? &empty : key->data()) : nullptr;
    const char* vp = value ? (value->empty() ? &empty : value->data()) : nullptr;
    // Computed outside the macros: RD_KAFKA_V_KEY casts its argument without parentheses.
    const size_t key_len = key ? key->size() : 0;
    const size_t value_len = value ? value->size() : 0;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(const_cast<char*>(kp), key_len),
        RD_KAFKA_V_VALUE(const_cast<char*>(vp), value_len), RD_KAFKA_V_HEADERS(hdrs),
        RD_KAFKA_V_TIMESTAMP(timestamp),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(id))), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return id;
    if (hdrs != nullptr) rd_kafka_headers_destroy(hdrs);  // not taken over on failure
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      throw std::runtime_error(std::string("rd_kafka_producev: ") + rd_kafka_err2str(err));
    }
    rd_kafka_poll(rk_, 10);
  }
}

bool producer::flush(std::chrono::milliseconds timeout) {
  return rd_kafka_flush(rk_, static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

std::vector<producer::delivery> producer::deliveries() const {
  std::lock_guard lock(mu_);
  return deliveries_;
}

producer::delivery producer::delivery_of(size_t id) const {
  std::lock_guard lock(mu_);
  return deliveries_.at(id);
}

size_t producer::acked_count() const {
  std::lock_guard lock(mu_);
  return acked_;
}

// ---- simple_consumer -----------------------------------------------------------------------

simple_consumer::simple_consumer(const std::string& bootstrap, const std::string& topic,
                                 const std::map<std::string, std::string>& extra) {
  rd_kafka_conf_t* conf = make_conf(merged({{"bootstrap.servers", bootstrap},
                                            // No group: never commit offsets anywhere.
                                            {"enable.auto.commit", "false"},
                                            {"enable.auto.offset.store", "false"}},
                                           extra));
  rk_ = new_handle(RD_KAFKA_CONSUMER, conf, "consumer");
  char err[512];
  // Starts from the topic-level settings given in `extra` (e.g. auto.offset.reset).
  rd_kafka_topic_conf_t* tconf = rd_kafka_default_topic_conf_dup(rk_);
  rd_kafka_topic_conf_set(tconf, "auto.commit.enable", "false", err, sizeof err);
  rkt_ = rd_kafka_topic_new(rk_, topic.c_str(), tconf);
  queue_ = rd_kafka_queue_new(rk_);
}

simple_consumer::~simple_consumer() {
  for (int32_t p : started_)
    rd_kafka_consume_stop(rkt_, p);
  rd_kafka_queue_destroy(queue_);
  rd_kafka_topic_destroy(rkt_);
  rd_kafka_destroy(rk_);
}

void simple_consumer::start(int32_t partition, int64_t offset) {
  if (rd_kafka_consume_start_queue(rkt_, partition, offset, queue_) != 0) {
    throw std::runtime_error(std::string("rd_kafka_consume_start_queue: ") +
                             rd_kafka_err2str(rd_kafka_last_error()));
  }
  started_.push_back(partition);
}

std::vector<message> simple_consumer::consume(size_t count, std::chrono::milliseconds timeout) {
  std::vector<message> out;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < count) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    rd_kafka_message_t* m = rd_kafka_consume_queue(queue_, static_cast<int>(left.count()));
    if (m == nullptr) continue;
    auto received = std::chrono::steady_clock::now();
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        errors_.push_back(std::string(rd_kafka_err2str(m->err)) + ": " +
                          (m->payload ? std::string(static_cast<const char*>(m->payload), m->len)
                                      : std::string()));
      }
      rd_kafka_message_destroy(m);
      continue;
    }
    message msg;
    msg.topic = rd_kafka_topic_name(m->rkt);
    msg.partition = m->partition;
    msg.offset = m->offset;
    msg.key = optional_bytes(m->key, m->key_len);
    msg.value = optional_bytes(m->payload, m->len);
    msg.timestamp = rd_kafka_message_timestamp(m, nullptr);
    msg.received = received;
    rd_kafka_headers_t* hdrs = nullptr;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      const char* name;
      const void* val;
      size_t size;
      for (size_t i = 0;
           rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
           ++i) {
        msg.headers.push_back({name, optional_bytes(val, size)});
      }
    }
    rd_kafka_message_destroy(m);
    out.push_back(std::move(msg));
  }
  return out;
}

// ---- group_consumer ------------------------------------------------------------------------

namespace {

message to_message(const rd_kafka_message_t* m) {
  message msg;
  msg.topic = rd_kafka_topic_name(m->rkt);
  msg.partition = m->partition;
  msg.offset = m->offset;
  msg.key = optional_bytes(m->key, m->key_len);
  msg.value = optional_bytes(m->payload, m->len);
  msg.timestamp = rd_kafka_message_timestamp(m, nullptr);
  msg.received = std::chrono::steady_clock::now();
  return msg;
}

}  // namespace

group_consumer::group_consumer(const std::string& bootstrap, const std::string& group_id,
                               const std::string& topic,
                               const std::map<std::string, std::string>& extra,
                               rebalance_listener listener)
    : listener_(std::move(listener)) {
  rd_kafka_conf_t* conf = make_conf(merged({{"bootstrap.servers", bootstrap},
                                            {"group.id", group_id},
                                            {"enable.auto.commit", "false"},
                                            {"enable.auto.offset.store", "false"},
                                            {"auto.offset.reset", "earliest"}},
                                           extra));
  rd_kafka_conf_set_rebalance_cb(conf, &group_consumer::on_rebalance);
  rd_kafka_conf_set_opaque(conf, this);
  rk_ = new_handle(RD_KAFKA_CONSUMER, conf, "group consumer");
  // Messages and rebalances come through rd_kafka_consumer_poll, not rd_kafka_poll.
  rd_kafka_poll_set_consumer(rk_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, topic.c_str(), RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rd_kafka_subscribe(rk_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_destroy(rk_);
    throw std::runtime_error(std::string("rd_kafka_subscribe: ") + rd_kafka_err2str(e));
  }
}

group_consumer::~group_consumer() {
  close();
  rd_kafka_destroy(rk_);
}

void group_consumer::close() {
  if (closed_) return;
  closed_ = true;
  rd_kafka_consumer_close(rk_);
}

void group_consumer::on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                                  rd_kafka_topic_partition_list_t* partitions, void* opaque) {
  auto* self = static_cast<group_consumer*>(opaque);
  rebalance_event event;
  event.assigned = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
  for (int i = 0; i < partitions->cnt; ++i)
    event.partitions.push_back(partitions->elems[i].partition);
  std::sort(event.partitions.begin(), event.partitions.end());
  event.at = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(self->mu_);
    self->assignment_ = event.assigned ? event.partitions : std::vector<int32_t>{};
    self->events_.push_back(event);
  }
  if (self->listener_) self->listener_(event);
  // Eager protocol (range, roundrobin): the whole assignment changes hands. Every processed
  // message was committed before the next poll, so a revocation has nothing left to commit.
  rd_kafka_assign(rk, event.assigned ? partitions : nullptr);
}

std::optional<message> group_consumer::poll(std::chrono::milliseconds timeout) {
  rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, static_cast<int>(timeout.count()));
  if (m == nullptr) return std::nullopt;
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    std::string text = rd_kafka_message_errstr(m);
    rd_kafka_message_destroy(m);
    std::lock_guard lock(mu_);
    errors_.push_back(std::move(text));
    return std::nullopt;
  }
  message msg = to_message(m);
  rd_kafka_message_destroy(m);
  return msg;
}

rd_kafka_resp_err_t group_consumer::commit(const message& m) {
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(offsets, m.topic.c_str(), m.partition)->offset = m.offset + 1;
  rd_kafka_resp_err_t err = rd_kafka_commit(rk_, offsets, 0 /* synchronous */);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && offsets->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
    err = offsets->elems[0].err;
  rd_kafka_topic_partition_list_destroy(offsets);
  return err;
}

std::vector<int32_t> group_consumer::assignment() const {
  std::lock_guard lock(mu_);
  return assignment_;
}

std::vector<group_consumer::rebalance_event> group_consumer::events() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::vector<std::string> group_consumer::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

std::pair<int64_t, int64_t> watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                       std::chrono::milliseconds timeout) {
  int64_t lo = -1, hi = -1;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, &lo, &hi,
                                                             static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw std::runtime_error(std::string("rd_kafka_query_watermark_offsets: ") +
                             rd_kafka_err2str(err));
  }
  return {lo, hi};
}

rd_kafka_resp_err_t delete_records(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                   int64_t offset, int64_t& low,
                                   std::chrono::milliseconds timeout) {
  rd_kafka_topic_partition_list_t* offsets = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(offsets, topic.c_str(), partition)->offset = offset;
  rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(offsets);
  rd_kafka_topic_partition_list_destroy(offsets);
  rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
  rd_kafka_DeleteRecords(rk, &del, 1, nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(timeout.count()));
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
  if (ev != nullptr) {
    const rd_kafka_DeleteRecords_result_t* res = rd_kafka_event_DeleteRecords_result(ev);
    const rd_kafka_topic_partition_list_t* parts =
        res ? rd_kafka_DeleteRecords_result_offsets(res) : nullptr;
    err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && parts != nullptr && parts->cnt == 1) {
      err = parts->elems[0].err;
      low = parts->elems[0].offset;
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  rd_kafka_DeleteRecords_destroy(del);
  return err;
}

}  // namespace sluice::compat

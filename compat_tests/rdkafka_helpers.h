#pragma once
// Thin RAII wrappers over librdkafka's C API for the compat tests.
//
// `producer` keeps every delivery report indexed by the id `produce()` returned, so tests can ask
// "which messages were acknowledged, at which offsets". `simple_consumer` is librdkafka's legacy
// (simple) consumer: rd_kafka_consume_start_queue per partition, no consumer group, the same path
// `kcat -C` takes (kcat.c:1034), so the broker needs only Metadata, ListOffsets and Fetch.
// `group_consumer` is librdkafka's high-level consumer (rd_kafka_subscribe and
// rd_kafka_consumer_poll): it joins a group, records every assignment and revocation its
// rebalance callback sees, and commits only when told to, synchronously.
//
// Threading: `producer::produce` and `flush` may be called from one thread at a time; delivery
// reports are written from librdkafka's callback (run inside rd_kafka_poll/flush on the calling
// thread) under a mutex and may be read from any thread. A consumer is used by one thread; a
// group_consumer's assignment and rebalance events may also be read from other threads.

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace sluice::compat {

struct header {
  std::string name;
  std::optional<std::string> value;
  bool operator==(const header&) const = default;
};

struct message {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
  int64_t timestamp = -1;
  std::chrono::steady_clock::time_point received;
};

// Builds a configuration, throwing with librdkafka's message on an invalid key or value.
rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& settings);

class producer {
 public:
  struct delivery {
    bool done = false;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int32_t partition = -1;
    int64_t offset = -1;
    std::chrono::steady_clock::time_point at;
  };

  explicit producer(const std::string& bootstrap,
                    const std::map<std::string, std::string>& extra = {});
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  // Enqueues one message (copying key, value and headers) and returns its id. Waits while the
  // local queue is full. partition -1 = librdkafka's partitioner; timestamp 0 = now.
  size_t produce(const std::string& topic, int32_t partition, const std::optional<std::string>& key,
                 const std::optional<std::string>& value, const std::vector<header>& headers = {},
                 int64_t timestamp = 0);
  // Serves delivery reports until the queue is empty; false on timeout.
  bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(60));
  void poll(int timeout_ms = 0) { rd_kafka_poll(rk_, timeout_ms); }

  std::vector<delivery> deliveries() const;
  delivery delivery_of(size_t id) const;
  size_t acked_count() const;
  rd_kafka_t* get() const { return rk_; }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);

  rd_kafka_t* rk_ = nullptr;
  mutable std::mutex mu_;
  std::vector<delivery> deliveries_;
  size_t acked_ = 0;
};

class simple_consumer {
 public:
  simple_consumer(const std::string& bootstrap, const std::string& topic,
                  const std::map<std::string, std::string>& extra = {});
  ~simple_consumer();
  simple_consumer(const simple_consumer&) = delete;
  simple_consumer& operator=(const simple_consumer&) = delete;

  // Starts fetching `partition` from `offset` (or RD_KAFKA_OFFSET_BEGINNING / _END).
  void start(int32_t partition, int64_t offset);
  // Returns messages as they arrive until `count` have been received or `timeout` passes.
  // Consumer errors (other than partition EOF) are appended to errors().
  std::vector<message> consume(size_t count, std::chrono::milliseconds timeout);
  const std::vector<std::string>& errors() const { return errors_; }
  rd_kafka_t* get() const { return rk_; }

 private:
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_topic_t* rkt_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;
  std::vector<int32_t> started_;
  std::vector<std::string> errors_;
};

class group_consumer {
 public:
  struct rebalance_event {
    bool assigned = false;            // false: revoked
    std::vector<int32_t> partitions;  // of the one subscribed topic, sorted
    std::chrono::steady_clock::time_point at;
  };
  // Called from the rebalance callback on the polling thread, before librdkafka is told to
  // assign or unassign: a revocation is seen before the member rejoins the group, an assignment
  // before any message of it is fetched.
  using rebalance_listener = std::function<void(const rebalance_event&)>;

  // Subscribes to `topic` in `group_id`. Defaults: enable.auto.commit=false,
  // enable.auto.offset.store=false, auto.offset.reset=earliest; `extra` overrides them.
  group_consumer(const std::string& bootstrap, const std::string& group_id,
                 const std::string& topic, const std::map<std::string, std::string>& extra = {},
                 rebalance_listener listener = {});
  // close() unless closed, then rd_kafka_destroy.
  ~group_consumer();
  group_consumer(const group_consumer&) = delete;
  group_consumer& operator=(const group_consumer&) = delete;

  // One rd_kafka_consumer_poll, which also serves the rebalance callback. Consumer errors are
  // appended to errors().
  std::optional<message> poll(std::chrono::milliseconds timeout);
  // Commits `m.offset + 1` for its partition and waits for the broker's answer.
  rd_kafka_resp_err_t commit(const message& m);
  // rd_kafka_consumer_close: the rebalance callback revokes the assignment, then the member
  // leaves the group (a static member does not: KIP-345).
  void close();

  // The assignment as of the last rebalance callback.
  std::vector<int32_t> assignment() const;
  std::vector<rebalance_event> events() const;
  std::vector<std::string> errors() const;
  rd_kafka_t* get() const { return rk_; }

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                           rd_kafka_topic_partition_list_t* partitions, void* opaque);

  rd_kafka_t* rk_ = nullptr;
  rebalance_listener listener_;
  bool closed_ = false;
  mutable std::mutex mu_;
  std::vector<int32_t> assignment_;
  std::vector<rebalance_event> events_;
  std::vector<std::string> errors_;
};

// Low and high watermarks through rd_kafka_query_watermark_offsets (ListOffsets).
std::pair<int64_t, int64_t> watermarks(
    rd_kafka_t* rk, const std::string& topic, int32_t partition,
    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// rd_kafka_DeleteRecords of topic/partition before `offset`: the partition's error (or the
// request's), and on success its new low watermark in `low`.
rd_kafka_resp_err_t delete_records(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                   int64_t offset, int64_t& low,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace sluice::compat

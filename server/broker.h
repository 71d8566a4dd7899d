#pragma once
// The broker: listeners, connections, the topic registry over the segment store, and orderly
// shutdown.
//
// Threading: one io_context run by one thread owns all broker state (sessions, topics, logs), so
// nothing here takes a lock. Appends go to the page cache; fetches are sendfile from it, so one
// thread is not the bottleneck on the machines Sluice targets. A sharded (thread per core)
// design would partition topics across io_contexts; nothing in the handlers assumes otherwise.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/config.h"
#include "server/groups/group_coordinator.h"
#include "server/groups/offsets_log.h"
#include "server/producer_ids.h"
#include "server/topics.h"
#include "storage/log.h"

namespace sluice::server {

class session;

class broker {
 public:
  broker(boost::asio::io_context& io, broker_config config);
  ~broker();

  // Loads the data directory and binds the listeners. Returns an error message (for exit 2).
  std::string start();
  // Stops accepting, answers in-flight requests, wakes parked fetches, then closes everything
  // within shutdown_grace_ms. The io_context runs out of work when done.
  void stop();
  // After the io_context stopped: flush, checkpoint, mark the clean shutdown.
  void close_storage();

  const broker_config& config() const { return config_; }
  topic_registry& topics() { return *topics_; }
  group_coordinator& groups() { return *groups_; }
  producer_id_allocator& producer_ids() { return *producer_ids_; }
  bool stopping() const { return stopping_; }
  // The address clients are told to use for this broker (Metadata, FindCoordinator).
  const listener& advertised() const { return config_.advertised_listeners.front(); }
  const std::string& cluster_id() const { return cluster_id_; }

  // Finds or, when allowed, creates a topic for a request; the error is Kafka's.
  wire::error_code find_or_create_topic(std::string_view name, bool allow_auto_create, topic*& out);

  void on_session_closed(uint64_t id);

 private:
  void accept(boost::asio::ip::tcp::acceptor& acceptor);
  void schedule_checkpoint();
  // Retention (log.retention.check.interval.ms) and producer-id expiry.
  void schedule_retention();
  std::string load_groups(const group_coordinator_config& groups_config);
  std::string load_cluster_id();

  boost::asio::io_context& io_;
  broker_config config_;
  std::unique_ptr<storage::log_manager> logs_;
  std::unique_ptr<topic_registry> topics_;
  std::unique_ptr<producer_id_allocator> producer_ids_;
  // Declared before groups_ so that the coordinator, which writes through it, goes first.
  std::unique_ptr<offsets_log> offsets_log_;
  std::unique_ptr<group_coordinator> groups_;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
  std::map<uint64_t, std::weak_ptr<session>> sessions_;
  uint64_t next_session_id_ = 1;
  bool stopping_ = false;
  std::optional<boost::asio::steady_timer> grace_timer_;
  std::optional<boost::asio::steady_timer> checkpoint_timer_;
  std::optional<boost::asio::steady_timer> retention_timer_;
  int64_t last_producer_expiry_ms_ = 0;
  int accept_backoff_ms_ = 0;  // 0: accepting normally
  std::string cluster_id_;
};

}  // namespace sluice::server

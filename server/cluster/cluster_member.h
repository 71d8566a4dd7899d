#pragma once
// A broker's membership in a cluster coordinated through the metadata store (etcd):
//
// - bootstrap(): the cluster id, created by the first broker that finds none (a transaction that
//   requires the key absent, so two brokers starting together agree on one id).
// - join(): registers `brokers/<node.id>` under a lease of broker.session.timeout.ms, kept alive
//   from then on. A key already there belongs to a live broker with the same node.id, or to this
//   broker's previous incarnation whose lease has not expired yet (a kill -9 and a quick
//   restart); join() waits one session timeout for it to go and refuses if it is still there.
//   Then it reads the whole prefix at a revision R, watches from R + 1 (reading again when the
//   store says R was compacted) and campaigns for the controller key, bound to the same lease: a
//   broker that stops renewing loses its registration and its controllership together.
// - A lost lease (the store expired it: this broker was cut off or paused) is logged and the
//   broker registers again with a new lease, hence a new broker epoch, as a KRaft broker
//   re-registers after being fenced.
//
// Whoever needs the cluster's state reads image() and is told of each change by the callbacks
// given to on_change(), on the io thread, after the image moved.
//
// Threading: io thread only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "server/cancel_handle.h"
#include "server/cluster/metadata_image.h"
#include "server/cluster/records.h"
#include "server/coordination/metadata_store.h"

namespace sluice::server::cluster {

struct cluster_member_config {
  int32_t node_id = -1;
  std::string prefix = "/sluice";  // metadata.etcd.prefix, without a trailing '/'
  std::optional<std::string> rack;
  std::map<std::string, endpoint> listeners;  // advertised, by listener name
  int64_t session_timeout_ms = 9000;          // broker.session.timeout.ms
  // How long bootstrap() keeps trying a store that does not answer before giving up.
  int64_t connection_timeout_ms = 18000;
  // After a broken watch or a failed registration.
  int64_t retry_backoff_ms = 500;
};

class cluster_member {
 public:
  cluster_member(boost::asio::io_context& io, coordination::metadata_store& store,
                 cluster_member_config config);
  ~cluster_member();
  cluster_member(const cluster_member&) = delete;
  cluster_member& operator=(const cluster_member&) = delete;

  // The cluster id, created if the cluster has none yet. Empty, with the reason in `problem`,
  // when the store stayed unreachable for connection_timeout_ms.
  boost::asio::awaitable<std::string> bootstrap(std::string& problem);
  // Registers, reads the state and starts following it. Returns a problem to refuse the start
  // with (another live broker has this node.id, the store is unreachable), or "".
  boost::asio::awaitable<std::string> join();
  // Revokes the lease, so that the registration and any controllership end now instead of a
  // session timeout later (clean shutdown). `done` runs once that is over, whatever the outcome.
  void leave(std::function<void()> done);

  // The advertised endpoints, once the listeners are bound (before join()).
  void set_listeners(std::map<std::string, endpoint> listeners) {
    config_.listeners = std::move(listeners);
  }
  const cluster_member_config& config() const { return config_; }
  const metadata_image& image() const { return image_; }
  // The registration's create_revision, 0 when not registered.
  int64_t broker_epoch() const { return broker_epoch_; }
  int64_t lease() const { return lease_; }
  // Whether the image names this broker as controller, with its epoch.
  bool is_controller() const;
  int64_t controller_epoch() const;

  // Called after every change of the image, and when the lease is lost (broker_epoch() is then
  // 0 until the broker registered again), in registration order. Lives as long as the handle.
  cancel_handle on_change(std::function<void()> fn);
  // Completes once `ready()` holds for the image (true), or after `timeout` (false): how a broker
  // that asked the controller for a change waits until its own state shows it.
  boost::asio::awaitable<bool> wait_until(std::function<bool()> ready,
                                          std::chrono::milliseconds timeout);
  // Completes once the image shows the topic `name` at least as the store holds it now (true), or
  // after `timeout` (false): how a broker that forwarded a change of the topic to the controller
  // waits for its own state to show it, when the answer does not say what was written.
  boost::asio::awaitable<bool> catch_up_with_topic(std::string name,
                                                   std::chrono::milliseconds timeout);
  // Marks this broker's registration as in controlled shutdown (broker_record), which makes the
  // controller count it ineligible to lead or join an ISR. "" once written, else why not. A
  // registration made again after a lost lease keeps the mark.
  boost::asio::awaitable<std::string> begin_controlled_shutdown();

 private:
  struct listeners_list;
  boost::asio::awaitable<std::string> register_broker();
  boost::asio::awaitable<bool> read_all();
  void watch();
  // Reads the whole state again (until it succeeds), then watches from there.
  void resync();
  void campaign();
  void lease_lost(std::error_code ec);
  void changed();
  void after(int64_t ms, std::function<void()> fn);

  broker_record own_record() const;

  boost::asio::io_context& io_;
  coordination::metadata_store& store_;
  cluster_member_config config_;
  bool controlled_shutdown_ = false;
  metadata_image image_;
  std::string incarnation_;
  int64_t lease_ = 0;
  int64_t broker_epoch_ = 0;
  bool campaigning_ = false;
  bool was_controller_ = false;
  bool leaving_ = false;
  coordination::subscription watch_;
  coordination::subscription keep_alive_;
  std::shared_ptr<listeners_list> listeners_;
  std::vector<std::unique_ptr<boost::asio::steady_timer>> timers_;
  // Coroutines and callbacks in flight check it before touching `this`.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// A 22-character id of Kafka's form (base64 of 16 random bytes, url-safe alphabet).
std::string random_cluster_id();

}  // namespace sluice::server::cluster

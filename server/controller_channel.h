#pragma once
// How a broker reaches the cluster's controller: directly when it is the controller itself, else
// over the controller broker's inter-broker listener with Kafka's own requests: AlterPartition
// (key 56) for a leader's ISR change, ControlledShutdown (key 7) for its own, and the admin
// requests a client sent here, forwarded as Kafka forwards them to its controller (KIP-590; without
// the Envelope, since Sluice has no principals to carry: the request goes as the client sent it,
// and the answer comes back as is).
//
// The connection follows the controller: a new one is made when the cluster state names another.
// No controller elected, or none reachable: NOT_CONTROLLER, which clients and leaders retry.
//
// Threading: io thread only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "server/cluster/broker_client.h"
#include "server/cluster/cluster_member.h"
#include "server/cluster/controller.h"
#include "server/config.h"
#include "server/replica_manager.h"
#include "server/timers.h"

namespace sluice::server {

class controller_channel {
 public:
  // Everything given must outlive the channel.
  controller_channel(boost::asio::any_io_executor executor, timer_service& timers,
                     const broker_config& config, cluster::cluster_member& member,
                     cluster::controller& local);
  ~controller_channel();

  cluster::controller& local() { return local_; }
  // Closes the connection to the controller (the broker is stopping): its reads would otherwise
  // keep the io_context running.
  void close();
  bool local_is_controller() const { return member_.is_controller(); }

  // A leader's ISR change, to the controller wherever it is.
  boost::asio::awaitable<isr_change_result> alter_partition(isr_change_request request);
  // This broker's controlled shutdown (ControlledShutdown, key 7, v3), to the controller
  // wherever it is: the partitions it still leads, or the error.
  boost::asio::awaitable<cluster::controlled_shutdown_result> controlled_shutdown();

  // Waits until this broker's state shows the controller's write at `revision`, for at most
  // `timeout_ms` (a request's; 60 s when it is not positive), so that a client's next request to
  // this broker finds what the controller changed on its behalf.
  boost::asio::awaitable<void> wait_for_revision(int64_t revision, int32_t timeout_ms);
  // Completes once `shown` holds for this broker's cluster state (true), or after `timeout`
  // (false): how a request whose change the controller made waits until it is visible here.
  boost::asio::awaitable<bool> wait_until(std::function<bool()> shown,
                                          std::chrono::milliseconds timeout);
  // Completes once this broker's cluster state shows the topic `name` at least as the store holds
  // it now (true), or after `timeout` (false): for a forwarded change whose answer does not say
  // what was written.
  boost::asio::awaitable<bool> catch_up_with_topic(std::string name,
                                                   std::chrono::milliseconds timeout);

  // Sends `request` to the controller as a client would, and awaits its answer. `error` is set
  // (the body left default) when no controller is elected or it cannot be reached.
  template <class Request, class Response = typename wire::api<Request::api_key>::response>
  boost::asio::awaitable<cluster::broker_response<Response>> forward(const Request& request,
                                                                     int16_t version) {
    cluster::broker_client* client = to_controller();
    if (client == nullptr) {
      cluster::broker_response<Response> none;
      none.error = make_error_code(cluster::broker_client_errc::connect_failed);
      co_return none;
    }
    co_return co_await client->call<Request, Response>(request, version);
  }

 private:
  // The client to the current controller; null when it is this broker or none is elected.
  cluster::broker_client* to_controller();

  boost::asio::any_io_executor executor_;
  timer_service& timers_;
  const broker_config& config_;
  cluster::cluster_member& member_;
  cluster::controller& local_;
  int32_t connected_to_ = -1;
  bool closed_ = false;
  std::unique_ptr<cluster::broker_client> client_;
};

// AlterPartition carries the partition epoch as an int32; Sluice's is an etcd revision (int64).
// The wire carries its low 32 bits, which the controller matches against the low 32 bits of the
// current epoch: a stale request could pass only if 2^32 revisions went by between the leader's
// read and its request.
int32_t wire_partition_epoch(int64_t epoch);

}  // namespace sluice::server

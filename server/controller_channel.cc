#include "server/controller_channel.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "server/logging.h"

namespace sluice::server {

int32_t wire_partition_epoch(int64_t epoch) {
  return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(epoch)));
}

controller_channel::controller_channel(boost::asio::any_io_executor executor, timer_service& timers,
                                       const broker_config& config, cluster::cluster_member& member,
                                       cluster::controller& local)
    : executor_(std::move(executor)),
      timers_(timers),
      config_(config),
      member_(member),
      local_(local) {}

controller_channel::~controller_channel() = default;

void controller_channel::close() {
  if (client_) client_->close();
  closed_ = true;
}

cluster::broker_client* controller_channel::to_controller() {
  if (closed_) return nullptr;
  const auto& elected = member_.image().controller();
  const int32_t id = elected ? elected->node_id : -1;
  if (id < 0 || id == config_.node_id) {
    client_.reset();
    connected_to_ = -1;
    return nullptr;
  }
  if (client_ && connected_to_ == id) return client_.get();
  const cluster::live_broker* target = member_.image().broker(id);
  if (target == nullptr) return nullptr;
  auto endpoint = target->record.listeners.find(config_.inter_broker_listener_name);
  if (endpoint == target->record.listeners.end()) return nullptr;
  cluster::broker_client_config config;
  config.local_node_id = config_.node_id;
  config.name = "controller " + std::to_string(id);
  config.host = endpoint->second.host;
  config.port = static_cast<uint16_t>(endpoint->second.port);
  client_ = std::make_unique<cluster::broker_client>(executor_, timers_, config);
  connected_to_ = id;
  return client_.get();
}

boost::asio::awaitable<isr_change_result> controller_channel::alter_partition(
    isr_change_request request) {
  isr_change_result out;
  if (member_.is_controller()) {
    cluster::alter_partition_request local;
    local.broker_id = config_.node_id;
    local.broker_epoch = member_.broker_epoch();
    local.topic_id = request.topic_id;
    local.partition = request.partition;
    local.leader_epoch = request.leader_epoch;
    local.new_isr = request.new_isr;
    local.partition_epoch = request.partition_epoch;
    cluster::alter_partition_result r = co_await local_.alter_partition(std::move(local));
    out.error = r.error;
    out.isr = std::move(r.isr);
    out.partition_epoch = r.partition_epoch;
    co_return out;
  }
  wire::alter_partition_request wire_request;
  wire_request.broker_id = config_.node_id;
  wire_request.broker_epoch = member_.broker_epoch();
  auto& t = wire_request.topics.emplace_back();
  t.topic_id = request.topic_id;
  auto& p = t.partitions.emplace_back();
  p.partition_index = request.partition;
  p.leader_epoch = request.leader_epoch;
  p.new_isr = request.new_isr;
  p.partition_epoch = wire_partition_epoch(request.partition_epoch);
  cluster::broker_response<wire::alter_partition_response> answer =
      co_await forward(wire_request, 2);
  if (answer.error) {
    out.error = wire::error_code::not_controller;
    co_return out;
  }
  auto error = static_cast<wire::error_code>(answer.body.error_code);
  if (error == wire::error_code::none) {
    if (answer.body.topics.size() != 1 || answer.body.topics[0].partitions.size() != 1) {
      out.error = wire::error_code::unknown_server_error;
      co_return out;
    }
    const auto& result = answer.body.topics[0].partitions[0];
    error = static_cast<wire::error_code>(result.error_code);
    out.isr = result.isr;
    // The new epoch is a later revision: its high bits follow from the old one's.
    int64_t epoch = (request.partition_epoch & ~int64_t{0xffffffff}) |
                    static_cast<int64_t>(static_cast<uint32_t>(result.partition_epoch));
    if (epoch < request.partition_epoch) epoch += int64_t{1} << 32;
    out.partition_epoch = epoch;
  }
  out.error = error;
  co_return out;
}

boost::asio::awaitable<void> controller_channel::wait_for_revision(int64_t revision,
                                                                   int32_t timeout_ms) {
  // Kafka's answer time when a client asks for no bound: the requests' default.
  constexpr int32_t max_wait_ms = 60000;
  const int32_t wait_ms = timeout_ms > 0 ? std::min(timeout_ms, max_wait_ms) : max_wait_ms;
  // Named: GCC 12 destroys a std::function made inside a co_await expression twice.
  std::function<bool()> shown = [this, revision] { return member_.image().revision() >= revision; };
  co_await member_.wait_until(std::move(shown), std::chrono::milliseconds(wait_ms));
}

boost::asio::awaitable<bool> controller_channel::wait_until(std::function<bool()> shown,
                                                            std::chrono::milliseconds timeout) {
  co_return co_await member_.wait_until(std::move(shown), timeout);
}

boost::asio::awaitable<bool> controller_channel::catch_up_with_topic(
    std::string name, std::chrono::milliseconds timeout) {
  co_return co_await member_.catch_up_with_topic(std::move(name), timeout);
}

boost::asio::awaitable<cluster::controlled_shutdown_result>
controller_channel::controlled_shutdown() {
  cluster::controlled_shutdown_request request;
  request.broker_id = config_.node_id;
  request.broker_epoch = member_.broker_epoch();
  if (member_.is_controller()) co_return co_await local_.controlled_shutdown(request);
  cluster::controlled_shutdown_result out;
  wire::controlled_shutdown_request wire_request;
  wire_request.broker_id = request.broker_id;
  wire_request.broker_epoch = request.broker_epoch;
  cluster::broker_response<wire::controlled_shutdown_response> answer =
      co_await forward(wire_request, 3);
  if (answer.error) {
    out.error = wire::error_code::not_controller;
    out.message = "No controller could be reached: " + answer.error.message();
    co_return out;
  }
  out.error = static_cast<wire::error_code>(answer.body.error_code);
  for (const auto& p : answer.body.remaining_partitions)
    out.remaining.emplace_back(p.topic_name, p.partition_index);
  co_return out;
}

}  // namespace sluice::server

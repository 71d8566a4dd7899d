#include "server/partition_directory.h"

#include <utility>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "server/cluster/cluster_member.h"
#include "server/controller_channel.h"
#include "server/logging.h"
#include "server/topics.h"
#include "wire/generated/create_topics_request.h"

namespace sluice::server {

namespace asio = boost::asio;

partition_directory::partition_directory(asio::any_io_executor executor,
                                         const broker_config& config, topic_registry& topics,
                                         const cluster::cluster_member* member,
                                         controller_channel* controller)
    : executor_(std::move(executor)),
      config_(config),
      topics_(topics),
      member_(member),
      controller_(controller) {}

wire::error_code partition_directory::find_or_create_topic(std::string_view name,
                                                           bool allow_auto_create, topic*& out) {
  out = topics_.find(name);
  if (out != nullptr) return wire::error_code::none;
  if (topics_.creating(name)) return wire::error_code::leader_not_available;
  if (!is_valid_topic_name(name)) return wire::error_code::invalid_topic_exception;
  // In a cluster this broker holds only its replicas: the topic may be elsewhere.
  if (member_ && member_->image().topic_id(name)) return wire::error_code::not_leader_or_follower;
  // Internal topics are the broker's own to create (Kafka: never by a client's request).
  if (!allow_auto_create || !config_.auto_create_topics_enable || is_internal_topic(name)) {
    return wire::error_code::unknown_topic_or_partition;
  }
  if (member_) {
    auto_create_in_cluster(name);
    return wire::error_code::leader_not_available;
  }
  topics_.create_async(name, config_.num_partitions, {}, {},
                       [topic_name = std::string(name)](wire::error_code ec, topic*) {
                         if (ec != wire::error_code::none) {
                           log_error("auto-creating topic ", topic_name,
                                     " failed: ", wire::error_name(ec));
                         }
                       });
  // As Kafka answers a request that auto-creates: the client retries once the leader is there.
  return wire::error_code::leader_not_available;
}

void partition_directory::auto_create_in_cluster(std::string_view name) {
  if (!auto_creating_.emplace(name).second) return;
  asio::co_spawn(
      executor_,
      [this, name = std::string(name)]() -> asio::awaitable<void> {
        // As Kafka's AutoTopicCreationManager: a CreateTopics with the broker's defaults, sent to
        // the controller; its outcome shows in the cluster state.
        wire::create_topics_request request;
        auto& t = request.topics.emplace_back();
        t.name = name;
        t.num_partitions = -1;
        t.replication_factor = -1;
        request.timeout_ms = 30000;
        wire::error_code ec = wire::error_code::none;
        std::string message;
        if (controller_->local_is_controller()) {
          std::vector<cluster::create_topic_request> asks(1);
          asks[0].name = name;
          std::vector<cluster::create_topic_result> r =
              co_await controller_->local().create_topics(std::move(asks));
          if (!r.empty()) {
            ec = r[0].error;
            message = r[0].message;
          }
        } else {
          auto answer = co_await controller_->forward(request, 7);
          if (answer.error) {
            ec = wire::error_code::not_controller;
            message = answer.error.message();
          } else if (!answer.body.topics.empty()) {
            ec = static_cast<wire::error_code>(answer.body.topics[0].error_code);
            message = answer.body.topics[0].error_message.value_or("");
          }
        }
        auto_creating_.erase(name);
        if (ec != wire::error_code::none && ec != wire::error_code::topic_already_exists) {
          if (!message.empty()) message.insert(0, ": ");
          log_warn("auto-creating topic ", name,
                   " through the controller failed: ", wire::error_name(ec), message);
        }
      },
      asio::detached);
}

wire::error_code partition_directory::find_partition(std::string_view topic_name, int32_t index,
                                                     partition*& out, bool followers_serve) {
  out = topics_.find_partition(topic_name, index);
  if (out == nullptr) {
    if (topics_.creating(topic_name)) return wire::error_code::leader_not_available;
    if (member_) {
      std::optional<wire::uuid> id = member_->image().topic_id(topic_name);
      if (id && member_->image().partition(*id, index) != nullptr) {
        return wire::error_code::not_leader_or_follower;
      }
    }
    return wire::error_code::unknown_topic_or_partition;
  }
  if (out->offline()) return wire::error_code::kafka_storage_error;
  // A follower's replica serves only consumers sent to it (fetch from follower, and only while
  // it follows a leader); other clients refresh Metadata and go to the leader.
  if (!out->is_leader() && !(followers_serve && out->leader_id() >= 0)) {
    return wire::error_code::not_leader_or_follower;
  }
  return wire::error_code::none;
}

}  // namespace sluice::server

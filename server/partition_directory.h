#pragma once
// The topics and partitions a request names, found in this broker's topic registry with Kafka's
// error for each way they can be missing, and topics created on first use where that is allowed
// (auto.create.topics.enable): by the registry when the broker runs alone, by the controller in
// a cluster (Kafka's AutoTopicCreationManager), whose cluster state also says whether a topic
// this broker does not hold exists elsewhere.
//
// Threading: io thread only.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>

#include "server/config.h"
#include "wire/error_code.h"

namespace sluice::server {

namespace cluster {
class cluster_member;
}  // namespace cluster

class controller_channel;
class partition;
class topic_registry;
struct topic;

class partition_directory {
 public:
  // `member` and `controller`: null for a broker that runs alone. All must outlive the
  // directory.
  partition_directory(boost::asio::any_io_executor executor, const broker_config& config,
                      topic_registry& topics, const cluster::cluster_member* member,
                      controller_channel* controller);

  // Finds a topic for a request or, when allowed, starts creating it; the error is Kafka's
  // (LEADER_NOT_AVAILABLE while its files are being created, as Kafka answers during creation).
  wire::error_code find_or_create_topic(std::string_view name, bool allow_auto_create, topic*& out);

  // The partition a request names, or Kafka's error for it: UNKNOWN_TOPIC_OR_PARTITION,
  // LEADER_NOT_AVAILABLE while its topic's files are being created, KAFKA_STORAGE_ERROR once its
  // log went offline.
  // `followers_serve`: a follower's replica is found too (a consumer's fetch from follower,
  // KIP-392); otherwise only a leader's, and NOT_LEADER_OR_FOLLOWER for the others.
  wire::error_code find_partition(std::string_view topic, int32_t index, partition*& out,
                                  bool followers_serve = false);

 private:
  // Asks the controller for the topic (a client's Metadata or Produce named it).
  void auto_create_in_cluster(std::string_view name);

  boost::asio::any_io_executor executor_;
  const broker_config& config_;
  topic_registry& topics_;
  const cluster::cluster_member* member_;
  controller_channel* controller_;
  // Topics this broker asked the controller to auto-create, until it answered.
  std::set<std::string, std::less<>> auto_creating_;
};

}  // namespace sluice::server

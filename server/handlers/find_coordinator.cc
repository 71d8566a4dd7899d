// FindCoordinator (key 10), versions 0-4; v4 looks up several keys at once.
//
// A broker running alone coordinates every group (key type 0) and every transactional id (key
// type 1). In a cluster a group's coordinator is the leader of its __consumer_offsets partition
// (group_coordinator::partition_for, Kafka's partitionFor), as the cluster state names it;
// COORDINATOR_NOT_AVAILABLE while the topic does not exist yet (its controller creates it once
// offsets.topic.replication.factor brokers are registered) or the partition has no live leader
// with the request's listener (Kafka's KafkaApis.getCoordinator). Transactional ids stay with
// the broker asked: Sluice has no transaction coordinator, and InitProducerId refuses them.
//
// Advertised from v0 also because librdkafka before 2.11.1 takes FindCoordinator v0 as its
// "broker >= 0.8.2" probe and will not compress with lz4 without it (rdkafka_feature.c).
//
// The coordinator's address is the advertised address of the listener the request came in on, as
// Kafka looks the coordinator up with the request's listener name (KafkaApis.getCoordinator:
// MetadataCache.getAliveBrokerNode(leaderId, request.context.listenerName)).
//
// Errors as Kafka: an empty group or transactional id, or an unknown key type, is
// INVALID_REQUEST.

#include "server/cluster/metadata_image.h"
#include "server/groups/group_coordinator.h"
#include "server/groups/offsets_log.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"

namespace sluice::server {

namespace {

using wire::error_code;

constexpr int8_t group_key = 0;
constexpr int8_t transaction_key = 1;

wire::find_coordinator_response::coordinator group_coordinator_in_cluster(
    const metadata_view& metadata, group_coordinator& groups, std::string_view listener_name,
    const std::string& group_id) {
  wire::find_coordinator_response::coordinator c;
  c.key = group_id;
  c.node_id = -1;
  c.port = -1;
  c.error_code = static_cast<int16_t>(error_code::coordinator_not_available);
  const cluster::metadata_image& image = *metadata.image();
  const int32_t index = groups.partition_for(group_id);
  std::optional<wire::uuid> id = image.topic_id(consumer_offsets_topic);
  if (index < 0 || !id) return c;
  const cluster::partition_state* state = image.partition(*id, index);
  if (state == nullptr || state->record.leader < 0) return c;
  std::optional<broker_address> leader = metadata.live_broker(state->record.leader, listener_name);
  if (!leader) return c;
  c.error_code = 0;
  c.node_id = leader->node_id;
  c.host = std::move(leader->host);
  c.port = leader->port;
  return c;
}

}  // namespace

wire::find_coordinator_response handle_find_coordinator(const metadata_view& metadata,
                                                        group_coordinator& groups,
                                                        request_context& ctx,
                                                        wire::find_coordinator_request& request) {
  const listener& self = metadata.advertised(ctx.listener_name);
  const int32_t node_id = metadata.node_id();
  auto lookup = [&](const std::string& key) {
    wire::find_coordinator_response::coordinator c;
    c.key = key;
    bool known_type = request.key_type == group_key || request.key_type == transaction_key;
    if (!known_type || key.empty()) {
      c.error_code = static_cast<int16_t>(error_code::invalid_request);
      c.node_id = -1;
      c.port = -1;
      return c;
    }
    if (request.key_type == group_key && metadata.in_cluster()) {
      return group_coordinator_in_cluster(metadata, groups, ctx.listener_name, key);
    }
    c.node_id = node_id;
    c.host = self.host;
    c.port = self.port;
    return c;
  };

  wire::find_coordinator_response response;
  // v4+ carries a list of keys; older versions one key and a flat answer. Filling both forms
  // lets the codec write whichever the version has.
  if (!request.coordinator_keys.empty()) {
    for (const std::string& key : request.coordinator_keys) {
      response.coordinators.push_back(lookup(key));
    }
    return response;
  }
  wire::find_coordinator_response::coordinator c = lookup(request.key);
  response.error_code = c.error_code;
  response.node_id = c.node_id;
  response.host = c.host;
  response.port = c.port;
  response.coordinators.push_back(std::move(c));
  return response;
}

}  // namespace sluice::server

// Metadata (key 3), versions 0-12.
//
// One broker: it is the controller and the leader of every partition, replicas = ISR = {self}.
// The broker is listed at the advertised address of the listener the request came in on, as
// Kafka's KafkaApis answers with MetadataCache.getAliveBrokerNodes(request.context.listenerName).
// Topics: v0 empty list = all topics; v1+ null = all, empty = none (MetadataRequest.json). A
// requested unknown topic is created when the request allows it (v4+ flag, older versions
// always) and auto.create.topics.enable is on. While its files are being created a topic is
// answered LEADER_NOT_AVAILABLE (also in an all-topics answer), as Kafka answers, and the client
// asks again. A partition whose log went offline after a storage failure has no leader
// (LEADER_NOT_AVAILABLE, this broker in offline_replicas), as Kafka shows an offline replica.
// Internal topics (`__consumer_offsets`) are listed with is_internal set, in an all-topics answer
// too, as Kafka lists them (kcat -L and kafka-topics.sh --list show them). Topic ids are real
// (v10+), read from partition.metadata. Authorized operations (v8+), when asked for, are every
// operation the resource type supports, as Kafka reports them without an authorizer; cluster
// operations are asked for in v8-10 only (later versions moved them to DescribeCluster).
//
// Deviations: topic lookup by id only (v10+ requests naming a topic by id alone) is answered
// UNKNOWN_TOPIC_ID.

#include "server/authorized_operations.h"
#include "server/cluster/metadata_image.h"
#include "server/handlers/handlers.h"
#include "server/metadata_view.h"
#include "server/partition_directory.h"
#include "server/topics.h"

namespace sluice::server {

namespace {

wire::metadata_response::metadata_response_topic describe(const topic& t, int32_t operations) {
  wire::metadata_response::metadata_response_topic out;
  out.name = t.name;
  out.topic_id = t.id;
  out.is_internal = t.internal;
  out.topic_authorized_operations = operations;
  for (const auto& p : t.partitions) {
    wire::metadata_response::metadata_response_partition mp;
    mp.partition_index = p->index();
    mp.leader_id = p->leader_id();
    mp.leader_epoch = p->leader_epoch();
    mp.replica_nodes = p->replicas();
    mp.isr_nodes = p->isr();
    if (p->offline()) {
      mp.error_code = static_cast<int16_t>(wire::error_code::leader_not_available);
      mp.leader_id = -1;
      mp.isr_nodes.clear();
      mp.offline_replicas = p->replicas();
    }
    out.partitions.push_back(std::move(mp));
  }
  return out;
}

wire::metadata_response::metadata_response_topic not_ready(const std::string& name,
                                                           int32_t operations) {
  wire::metadata_response::metadata_response_topic out;
  out.error_code = static_cast<int16_t>(wire::error_code::leader_not_available);
  out.name = name;
  out.is_internal = is_internal_topic(name);
  out.topic_authorized_operations = operations;
  return out;
}

// In a cluster, a topic as the cluster state has it (Kafka's KRaftMetadataCache): replicas, the
// leader, its epoch and the ISR from the partition keys. A leader that is not a live broker is
// LEADER_NOT_AVAILABLE with leader -1, and replicas that are not live are listed offline.
wire::metadata_response::metadata_response_topic describe(const cluster::metadata_image& image,
                                                          const wire::uuid& id,
                                                          const cluster::topic_record& record,
                                                          int32_t operations) {
  wire::metadata_response::metadata_response_topic out;
  out.name = record.name;
  out.topic_id = id;
  out.is_internal = is_internal_topic(record.name);
  out.topic_authorized_operations = operations;
  for (size_t i = 0; i < record.replicas.size(); ++i) {
    wire::metadata_response::metadata_response_partition mp;
    mp.partition_index = static_cast<int32_t>(i);
    mp.replica_nodes = record.replicas[i];
    for (int32_t r : record.replicas[i]) {
      if (image.broker(r) == nullptr) mp.offline_replicas.push_back(r);
    }
    const cluster::partition_state* state = image.partition(id, static_cast<int32_t>(i));
    if (state == nullptr || state->record.leader < 0 ||
        image.broker(state->record.leader) == nullptr) {
      mp.error_code = static_cast<int16_t>(wire::error_code::leader_not_available);
      mp.leader_id = -1;
      mp.leader_epoch = state != nullptr ? state->record.leader_epoch : -1;
      mp.isr_nodes = state != nullptr ? state->record.isr : std::vector<int32_t>{};
    } else {
      mp.leader_id = state->record.leader;
      mp.leader_epoch = state->record.leader_epoch;
      mp.isr_nodes = state->record.isr;
    }
    out.partitions.push_back(std::move(mp));
  }
  return out;
}

// The topics of a cluster's Metadata answer: the cluster state's, internal ones included.
void cluster_topics(const cluster::metadata_image& image, partition_directory& partitions,
                    const wire::metadata_request& request, bool all_topics, int32_t topic_ops,
                    wire::metadata_response& response) {
  if (all_topics) {
    for (const auto& [id, record] : image.topics()) {
      if (image.topic_id(record.name) == id) {
        response.topics.push_back(describe(image, id, record, topic_ops));
      }
    }
    return;
  }
  for (const auto& requested : *request.topics) {
    wire::metadata_response::metadata_response_topic failed;
    failed.topic_authorized_operations = authorized_operations_not_requested;
    if (!requested.name) {
      failed.error_code = static_cast<int16_t>(wire::error_code::unknown_topic_id);
      failed.topic_id = requested.topic_id;
      response.topics.push_back(std::move(failed));
      continue;
    }
    if (std::optional<wire::uuid> id = image.topic_id(*requested.name)) {
      response.topics.push_back(describe(image, *id, *image.topic(*id), topic_ops));
      continue;
    }
    topic* ignored = nullptr;
    failed.name = *requested.name;
    failed.error_code = static_cast<int16_t>(partitions.find_or_create_topic(
        *requested.name, request.allow_auto_topic_creation, ignored));
    response.topics.push_back(std::move(failed));
  }
}

}  // namespace

wire::metadata_response handle_metadata(const metadata_view& metadata, topic_registry& topics,
                                        partition_directory& partitions, request_context& ctx,
                                        wire::metadata_request& request) {
  wire::metadata_response response;
  for (broker_address& a : metadata.live_brokers(ctx.listener_name)) {
    auto& out = response.brokers.emplace_back();
    out.node_id = a.node_id;
    out.host = std::move(a.host);
    out.port = a.port;
    out.rack = std::move(a.rack);
  }
  response.cluster_id = metadata.cluster_id();
  response.controller_id = metadata.controller_id();
  // The request fields exist only in the versions that have them, and decode as false elsewhere.
  response.cluster_authorized_operations =
      authorized_operations(request.include_cluster_authorized_operations, cluster_operations);
  const int32_t topic_ops =
      authorized_operations(request.include_topic_authorized_operations, topic_operations);

  bool all_topics =
      !request.topics.has_value() || (ctx.api_version == 0 && request.topics->empty());
  if (const cluster::metadata_image* image = metadata.image()) {
    cluster_topics(*image, partitions, request, all_topics, topic_ops, response);
    return response;
  }
  if (all_topics) {
    for (const auto& [name, t] : topics.all()) {
      response.topics.push_back(describe(t, topic_ops));
    }
    for (const auto& [name, partitions] : topics.all_creating())
      response.topics.push_back(not_ready(name, topic_ops));
    return response;
  }
  for (const auto& requested : *request.topics) {
    if (!requested.name) {
      wire::metadata_response::metadata_response_topic unknown;
      unknown.error_code = static_cast<int16_t>(wire::error_code::unknown_topic_id);
      unknown.topic_id = requested.topic_id;
      unknown.topic_authorized_operations = authorized_operations_not_requested;
      response.topics.push_back(std::move(unknown));
      continue;
    }
    topic* t = nullptr;
    wire::error_code ec =
        partitions.find_or_create_topic(*requested.name, request.allow_auto_topic_creation, t);
    if (ec != wire::error_code::none) {
      wire::metadata_response::metadata_response_topic failed;
      failed.error_code = static_cast<int16_t>(ec);
      failed.name = *requested.name;
      failed.topic_authorized_operations = authorized_operations_not_requested;
      response.topics.push_back(std::move(failed));
      continue;
    }
    response.topics.push_back(describe(*t, topic_ops));
  }
  return response;
}

}  // namespace sluice::server

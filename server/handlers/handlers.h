#pragma once
// Handler entry points, one file per API in this folder. Each file opens with the versions it
// serves, its behaviour and where it deviates from Kafka.
//
// A handler's parameters are the components it uses, then the request's context, then the
// decoded request. It is given the components it names and nothing else (api_registry.cc binds
// them from the broker's handler_services): no handler reaches the broker. The components come
// in this order, each only if the handler uses it:
//
//   const broker_config&          the configuration (node.id, defaults, the log directory)
//   const metadata_view&          who is in the cluster and where; the cluster state in a cluster
//   controller_channel*           the way to the controller; null when the broker runs alone
//   replica_manager*              the local replicas of a cluster; null when alone
//   topic_registry&               the topics and partitions this broker holds
//   partition_directory&          a request's topic or partition with Kafka's error; auto-create
//   topic_config_store&           topic-configs.json of a broker that runs alone
//   group_coordinator&            consumer groups and their offsets
//   producer_id_allocator&        producer ids
//   fetch_session_cache&          fetch sessions (KIP-227)
//   timer_service&                deadlines and the clock
//   broker_stats&                 counts for the shutdown summary
//   const stop_signal&            whether the broker is stopping

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "server/request_context.h"
#include "wire/error_code.h"
#include "wire/generated/alter_configs_request.h"
#include "wire/generated/alter_configs_response.h"
#include "wire/generated/alter_partition_reassignments_request.h"
#include "wire/generated/alter_partition_reassignments_response.h"
#include "wire/generated/alter_partition_request.h"
#include "wire/generated/alter_partition_response.h"
#include "wire/generated/api_versions_request.h"
#include "wire/generated/api_versions_response.h"
#include "wire/generated/controlled_shutdown_request.h"
#include "wire/generated/controlled_shutdown_response.h"
#include "wire/generated/create_partitions_request.h"
#include "wire/generated/create_partitions_response.h"
#include "wire/generated/create_topics_request.h"
#include "wire/generated/create_topics_response.h"
#include "wire/generated/delete_groups_request.h"
#include "wire/generated/delete_groups_response.h"
#include "wire/generated/delete_records_request.h"
#include "wire/generated/delete_records_response.h"
#include "wire/generated/delete_topics_request.h"
#include "wire/generated/delete_topics_response.h"
#include "wire/generated/describe_cluster_request.h"
#include "wire/generated/describe_cluster_response.h"
#include "wire/generated/describe_configs_request.h"
#include "wire/generated/describe_configs_response.h"
#include "wire/generated/describe_groups_request.h"
#include "wire/generated/describe_groups_response.h"
#include "wire/generated/describe_log_dirs_request.h"
#include "wire/generated/describe_log_dirs_response.h"
#include "wire/generated/describe_topic_partitions_request.h"
#include "wire/generated/describe_topic_partitions_response.h"
#include "wire/generated/elect_leaders_request.h"
#include "wire/generated/elect_leaders_response.h"
#include "wire/generated/fetch_request.h"
#include "wire/generated/fetch_response.h"
#include "wire/generated/find_coordinator_request.h"
#include "wire/generated/find_coordinator_response.h"
#include "wire/generated/heartbeat_request.h"
#include "wire/generated/heartbeat_response.h"
#include "wire/generated/incremental_alter_configs_request.h"
#include "wire/generated/incremental_alter_configs_response.h"
#include "wire/generated/init_producer_id_request.h"
#include "wire/generated/init_producer_id_response.h"
#include "wire/generated/join_group_request.h"
#include "wire/generated/join_group_response.h"
#include "wire/generated/leave_group_request.h"
#include "wire/generated/leave_group_response.h"
#include "wire/generated/list_groups_request.h"
#include "wire/generated/list_groups_response.h"
#include "wire/generated/list_offsets_request.h"
#include "wire/generated/list_offsets_response.h"
#include "wire/generated/list_partition_reassignments_request.h"
#include "wire/generated/list_partition_reassignments_response.h"
#include "wire/generated/metadata_request.h"
#include "wire/generated/metadata_response.h"
#include "wire/generated/offset_commit_request.h"
#include "wire/generated/offset_commit_response.h"
#include "wire/generated/offset_delete_request.h"
#include "wire/generated/offset_delete_response.h"
#include "wire/generated/offset_fetch_request.h"
#include "wire/generated/offset_fetch_response.h"
#include "wire/generated/offset_for_leader_epoch_request.h"
#include "wire/generated/offset_for_leader_epoch_response.h"
#include "wire/generated/produce_request.h"
#include "wire/generated/produce_response.h"
#include "wire/generated/sync_group_request.h"
#include "wire/generated/sync_group_response.h"

namespace sluice::server {

struct broker_config;
class metadata_view;
class controller_channel;
class replica_manager;
class topic_registry;
class partition_directory;
class topic_config_store;
class group_coordinator;
class producer_id_allocator;
class fetch_session_cache;
class timer_service;
struct broker_stats;
class stop_signal;

wire::api_versions_response handle_api_versions(request_context& ctx,
                                                wire::api_versions_request& request);
// The v0-format body answering an ApiVersions version this broker does not support (KIP-511).
wire::api_versions_response unsupported_api_versions_response();

wire::metadata_response handle_metadata(const metadata_view& metadata, topic_registry& topics,
                                        partition_directory& partitions, request_context& ctx,
                                        wire::metadata_request& request);

boost::asio::awaitable<std::optional<wire::produce_response>> handle_produce(
    const broker_config& config, topic_registry& topics, partition_directory& partitions,
    timer_service& timers, broker_stats& stats, request_context& ctx,
    wire::produce_request& request);

boost::asio::awaitable<wire::fetch_response> handle_fetch(
    const broker_config& config, const metadata_view& metadata, replica_manager* replicas,
    topic_registry& topics, partition_directory& partitions, fetch_session_cache& sessions,
    timer_service& timers, broker_stats& stats, const stop_signal& stopping, request_context& ctx,
    wire::fetch_request& request);

wire::find_coordinator_response handle_find_coordinator(const metadata_view& metadata,
                                                        group_coordinator& groups,
                                                        request_context& ctx,
                                                        wire::find_coordinator_request& request);

boost::asio::awaitable<wire::delete_records_response> handle_delete_records(
    topic_registry& topics, request_context& ctx, wire::delete_records_request& request);

boost::asio::awaitable<wire::init_producer_id_response> handle_init_producer_id(
    producer_id_allocator& producer_ids, request_context& ctx,
    wire::init_producer_id_request& request);

// Consumer groups: thin calls into the group coordinator (server/groups/).
boost::asio::awaitable<wire::join_group_response> handle_join_group(
    group_coordinator& groups, request_context& ctx, wire::join_group_request& request);
boost::asio::awaitable<wire::sync_group_response> handle_sync_group(
    group_coordinator& groups, request_context& ctx, wire::sync_group_request& request);
wire::heartbeat_response handle_heartbeat(group_coordinator& groups, request_context& ctx,
                                          wire::heartbeat_request& request);
wire::leave_group_response handle_leave_group(group_coordinator& groups, request_context& ctx,
                                              wire::leave_group_request& request);
boost::asio::awaitable<wire::offset_commit_response> handle_offset_commit(
    topic_registry& topics, group_coordinator& groups, request_context& ctx,
    wire::offset_commit_request& request);
wire::offset_fetch_response handle_offset_fetch(group_coordinator& groups, request_context& ctx,
                                                wire::offset_fetch_request& request);
boost::asio::awaitable<wire::offset_delete_response> handle_offset_delete(
    group_coordinator& groups, request_context& ctx, wire::offset_delete_request& request);
wire::list_groups_response handle_list_groups(group_coordinator& groups, request_context& ctx,
                                              wire::list_groups_request& request);
wire::describe_groups_response handle_describe_groups(group_coordinator& groups,
                                                      request_context& ctx,
                                                      wire::describe_groups_request& request);
boost::asio::awaitable<wire::delete_groups_response> handle_delete_groups(
    group_coordinator& groups, request_context& ctx, wire::delete_groups_request& request);

wire::offset_for_leader_epoch_response handle_offset_for_leader_epoch(
    partition_directory& partitions, request_context& ctx,
    wire::offset_for_leader_epoch_request& request);
wire::describe_topic_partitions_response handle_describe_topic_partitions(
    const metadata_view& metadata, topic_registry& topics, request_context& ctx,
    wire::describe_topic_partitions_request& request);
wire::list_offsets_response handle_list_offsets(partition_directory& partitions,
                                                request_context& ctx,
                                                wire::list_offsets_request& request);

// Between brokers, served by the controller.
boost::asio::awaitable<wire::alter_partition_response> handle_alter_partition(
    const metadata_view& metadata, controller_channel* controller, request_context& ctx,
    wire::alter_partition_request& request);
boost::asio::awaitable<wire::controlled_shutdown_response> handle_controlled_shutdown(
    controller_channel* controller, request_context& ctx,
    wire::controlled_shutdown_request& request);

// Admin: topics, their configs, the cluster and its log directory (server/topic_config.h).
boost::asio::awaitable<wire::elect_leaders_response> handle_elect_leaders(
    controller_channel* controller, topic_registry& topics, request_context& ctx,
    wire::elect_leaders_request& request);
boost::asio::awaitable<wire::alter_partition_reassignments_response>
handle_alter_partition_reassignments(const metadata_view& metadata, controller_channel* controller,
                                     topic_registry& topics, request_context& ctx,
                                     wire::alter_partition_reassignments_request& request);
boost::asio::awaitable<wire::list_partition_reassignments_response>
handle_list_partition_reassignments(controller_channel* controller, request_context& ctx,
                                    wire::list_partition_reassignments_request& request);
boost::asio::awaitable<wire::create_topics_response> handle_create_topics(
    const broker_config& config, const metadata_view& metadata, controller_channel* controller,
    topic_registry& topics, topic_config_store& topic_configs, request_context& ctx,
    wire::create_topics_request& request);
boost::asio::awaitable<wire::delete_topics_response> handle_delete_topics(
    const metadata_view& metadata, controller_channel* controller, topic_registry& topics,
    topic_config_store& topic_configs, group_coordinator& groups, request_context& ctx,
    wire::delete_topics_request& request);
boost::asio::awaitable<wire::create_partitions_response> handle_create_partitions(
    const metadata_view& metadata, controller_channel* controller, topic_registry& topics,
    request_context& ctx, wire::create_partitions_request& request);
wire::describe_configs_response handle_describe_configs(const broker_config& config,
                                                        const metadata_view& metadata,
                                                        topic_registry& topics,
                                                        request_context& ctx,
                                                        wire::describe_configs_request& request);
boost::asio::awaitable<wire::alter_configs_response> handle_alter_configs(
    const broker_config& config, const metadata_view& metadata, controller_channel* controller,
    topic_registry& topics, topic_config_store& topic_configs, request_context& ctx,
    wire::alter_configs_request& request);
boost::asio::awaitable<wire::incremental_alter_configs_response> handle_incremental_alter_configs(
    const broker_config& config, const metadata_view& metadata, controller_channel* controller,
    topic_registry& topics, topic_config_store& topic_configs, request_context& ctx,
    wire::incremental_alter_configs_request& request);
wire::describe_cluster_response handle_describe_cluster(const metadata_view& metadata,
                                                        request_context& ctx,
                                                        wire::describe_cluster_request& request);
wire::describe_log_dirs_response handle_describe_log_dirs(const broker_config& config,
                                                          topic_registry& topics,
                                                          request_context& ctx,
                                                          wire::describe_log_dirs_request& request);

}  // namespace sluice::server

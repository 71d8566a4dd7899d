#pragma once
// Handler entry points, one file per API in this folder. Each file opens with the versions it
// serves, its behaviour and where it deviates from Kafka.

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "server/request_context.h"
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

wire::api_versions_response handle_api_versions(request_context& ctx,
                                                wire::api_versions_request& request);
// The v0-format body answering an ApiVersions version this broker does not support (KIP-511).
wire::api_versions_response unsupported_api_versions_response();

wire::metadata_response handle_metadata(request_context& ctx, wire::metadata_request& request);

boost::asio::awaitable<std::optional<wire::produce_response>> handle_produce(
    request_context& ctx, wire::produce_request& request);

boost::asio::awaitable<wire::fetch_response> handle_fetch(request_context& ctx,
                                                          wire::fetch_request& request);

wire::find_coordinator_response handle_find_coordinator(request_context& ctx,
                                                        wire::find_coordinator_request& request);

boost::asio::awaitable<wire::delete_records_response> handle_delete_records(
    request_context& ctx, wire::delete_records_request& request);

boost::asio::awaitable<wire::init_producer_id_response> handle_init_producer_id(
    request_context& ctx, wire::init_producer_id_request& request);

// Consumer groups: thin calls into the broker's group coordinator (server/groups/).
boost::asio::awaitable<wire::join_group_response> handle_join_group(
    request_context& ctx, wire::join_group_request& request);
boost::asio::awaitable<wire::sync_group_response> handle_sync_group(
    request_context& ctx, wire::sync_group_request& request);
wire::heartbeat_response handle_heartbeat(request_context& ctx, wire::heartbeat_request& request);
wire::leave_group_response handle_leave_group(request_context& ctx,
                                              wire::leave_group_request& request);
boost::asio::awaitable<wire::offset_commit_response> handle_offset_commit(
    request_context& ctx, wire::offset_commit_request& request);
wire::offset_fetch_response handle_offset_fetch(request_context& ctx,
                                                wire::offset_fetch_request& request);
boost::asio::awaitable<wire::offset_delete_response> handle_offset_delete(
    request_context& ctx, wire::offset_delete_request& request);
wire::list_groups_response handle_list_groups(request_context& ctx,
                                              wire::list_groups_request& request);
wire::describe_groups_response handle_describe_groups(request_context& ctx,
                                                      wire::describe_groups_request& request);
boost::asio::awaitable<wire::delete_groups_response> handle_delete_groups(
    request_context& ctx, wire::delete_groups_request& request);

wire::offset_for_leader_epoch_response handle_offset_for_leader_epoch(
    request_context& ctx, wire::offset_for_leader_epoch_request& request);
wire::describe_topic_partitions_response handle_describe_topic_partitions(
    request_context& ctx, wire::describe_topic_partitions_request& request);
wire::list_offsets_response handle_list_offsets(request_context& ctx,
                                                wire::list_offsets_request& request);

// Admin: topics, their configs, the cluster and its log directory (server/topic_config.h).
boost::asio::awaitable<wire::alter_partition_response> handle_alter_partition(
    request_context& ctx, wire::alter_partition_request& request);
boost::asio::awaitable<wire::controlled_shutdown_response> handle_controlled_shutdown(
    request_context& ctx, wire::controlled_shutdown_request& request);
boost::asio::awaitable<wire::elect_leaders_response> handle_elect_leaders(
    request_context& ctx, wire::elect_leaders_request& request);
boost::asio::awaitable<wire::alter_partition_reassignments_response>
handle_alter_partition_reassignments(request_context& ctx,
                                     wire::alter_partition_reassignments_request& request);
boost::asio::awaitable<wire::list_partition_reassignments_response>
handle_list_partition_reassignments(request_context& ctx,
                                    wire::list_partition_reassignments_request& request);
boost::asio::awaitable<wire::create_topics_response> handle_create_topics(
    request_context& ctx, wire::create_topics_request& request);
boost::asio::awaitable<wire::delete_topics_response> handle_delete_topics(
    request_context& ctx, wire::delete_topics_request& request);
boost::asio::awaitable<wire::create_partitions_response> handle_create_partitions(
    request_context& ctx, wire::create_partitions_request& request);
wire::describe_configs_response handle_describe_configs(request_context& ctx,
                                                        wire::describe_configs_request& request);
boost::asio::awaitable<wire::alter_configs_response> handle_alter_configs(
    request_context& ctx, wire::alter_configs_request& request);
boost::asio::awaitable<wire::incremental_alter_configs_response> handle_incremental_alter_configs(
    request_context& ctx, wire::incremental_alter_configs_request& request);
wire::describe_cluster_response handle_describe_cluster(request_context& ctx,
                                                        wire::describe_cluster_request& request);
wire::describe_log_dirs_response handle_describe_log_dirs(request_context& ctx,
                                                          wire::describe_log_dirs_request& request);

}  // namespace sluice::server

#pragma once
// Kafka protocol error codes: every code in apache/kafka
// clients/src/main/java/org/apache/kafka/common/protocol/Errors.java up to Kafka 4.0
// (SHARE_SESSION_LIMIT_REACHED = 133). Names are Kafka's in snake_case; the numbers are the
// protocol and must never change. Handlers put these in responses as int16_t; internal failures
// are mapped to them in one place at the server edge.

#include <cstdint>
#include <string_view>

namespace sluice::wire {

enum class error_code : int16_t {
  // Unexpected server-side failure; the catch-all.
  unknown_server_error = -1,
  // Success.
  none = 0,
  // Requested offset is outside the partition's log.
  offset_out_of_range = 1,
  // Batch failed CRC or size checks, or a compacted topic got a null key.
  corrupt_message = 2,
  // This broker does not host the topic-partition.
  unknown_topic_or_partition = 3,
  // Requested fetch size is invalid.
  invalid_fetch_size = 4,
  // No leader right now (election in progress).
  leader_not_available = 5,
  // This broker is not the leader (or not a replica) for the partition.
  not_leader_or_follower = 6,
  // The request timed out (e.g. acks=all not satisfied in time).
  request_timed_out = 7,
  // The broker is not available.
  broker_not_available = 8,
  // The replica is not available for the partition.
  replica_not_available = 9,
  // A record batch exceeds the maximum message size.
  message_too_large = 10,
  // The controller moved to another broker.
  stale_controller_epoch = 11,
  // Offset commit metadata is too large.
  offset_metadata_too_large = 12,
  // The server disconnected before a response was received.
  network_exception = 13,
  // The coordinator is still loading its state.
  coordinator_load_in_progress = 14,
  // The coordinator is not available.
  coordinator_not_available = 15,
  // This broker is not the coordinator for the group or transaction.
  not_coordinator = 16,
  // The topic name is invalid or the topic is internal.
  invalid_topic_exception = 17,
  // Batch larger than the segment size.
  record_list_too_large = 18,
  // Fewer in-sync replicas than min.insync.replicas; nothing was written.
  not_enough_replicas = 19,
  // Written, but to fewer in-sync replicas than required.
  not_enough_replicas_after_append = 20,
  // Produce acks is not -1, 0 or 1.
  invalid_required_acks = 21,
  // The group generation id is not current.
  illegal_generation = 22,
  // The member's protocols do not match the group's.
  inconsistent_group_protocol = 23,
  // The group id is empty or invalid.
  invalid_group_id = 24,
  // The coordinator does not know this member.
  unknown_member_id = 25,
  // Session timeout outside the broker's allowed range.
  invalid_session_timeout = 26,
  // The group is rebalancing; the member must rejoin.
  rebalance_in_progress = 27,
  // Committed offset data size is invalid.
  invalid_commit_offset_size = 28,
  // Not authorized for the topic.
  topic_authorization_failed = 29,
  // Not authorized for the group.
  group_authorization_failed = 30,
  // Not authorized for the cluster.
  cluster_authorization_failed = 31,
  // Record timestamp outside the acceptable range.
  invalid_timestamp = 32,
  // The SASL mechanism is not supported.
  unsupported_sasl_mechanism = 33,
  // Request not valid in the current SASL state.
  illegal_sasl_state = 34,
  // The API version is not supported.
  unsupported_version = 35,
  // A topic with this name already exists.
  topic_already_exists = 36,
  // Number of partitions is invalid.
  invalid_partitions = 37,
  // Replication factor is invalid.
  invalid_replication_factor = 38,
  // Replica assignment is invalid.
  invalid_replica_assignment = 39,
  // Configuration is invalid.
  invalid_config = 40,
  // This is not the active controller.
  not_controller = 41,
  // Malformed request, or one sent to an incompatible broker.
  invalid_request = 42,
  // The message format does not support the request.
  unsupported_for_message_format = 43,
  // Request violates a configured policy.
  policy_violation = 44,
  // Producer sequence number is out of order.
  out_of_order_sequence_number = 45,
  // Producer sequence number is a duplicate.
  duplicate_sequence_number = 46,
  // Producer epoch is older than the current one.
  invalid_producer_epoch = 47,
  // Transactional operation in an invalid state.
  invalid_txn_state = 48,
  // Producer id is not assigned to this transactional id.
  invalid_producer_id_mapping = 49,
  // Transaction timeout larger than the broker allows.
  invalid_transaction_timeout = 50,
  // Another operation on the same transaction is in progress.
  concurrent_transactions = 51,
  // The transaction coordinator sending markers was fenced.
  transaction_coordinator_fenced = 52,
  // Not authorized for the transactional id.
  transactional_id_authorization_failed = 53,
  // Security features are disabled.
  security_disabled = 54,
  // Not attempted because another part of a batched request failed.
  operation_not_attempted = 55,
  // Disk error accessing the log.
  kafka_storage_error = 56,
  // The requested log directory does not exist.
  log_dir_not_found = 57,
  // SASL authentication failed.
  sasl_authentication_failed = 58,
  // The broker has no state for this producer id.
  unknown_producer_id = 59,
  // A partition reassignment is in progress.
  reassignment_in_progress = 60,
  // Delegation tokens are disabled.
  delegation_token_auth_disabled = 61,
  // Delegation token not found.
  delegation_token_not_found = 62,
  // Principal is not the token's owner or renewer.
  delegation_token_owner_mismatch = 63,
  // Delegation token requests not allowed on this channel.
  delegation_token_request_not_allowed = 64,
  // Not authorized for delegation tokens.
  delegation_token_authorization_failed = 65,
  // Delegation token expired.
  delegation_token_expired = 66,
  // Principal type not supported.
  invalid_principal_type = 67,
  // The group is not empty.
  non_empty_group = 68,
  // The group id does not exist.
  group_id_not_found = 69,
  // Fetch session id not found.
  fetch_session_id_not_found = 70,
  // Fetch session epoch is invalid.
  invalid_fetch_session_epoch = 71,
  // No listener on the leader matches the request's listener.
  listener_not_found = 72,
  // Topic deletion is disabled.
  topic_deletion_disabled = 73,
  // Leader epoch in the request is older than the broker's.
  fenced_leader_epoch = 74,
  // Leader epoch in the request is newer than the broker's.
  unknown_leader_epoch = 75,
  // The client does not support the partition's compression type.
  unsupported_compression_type = 76,
  // Broker epoch has changed.
  stale_broker_epoch = 77,
  // Leader high watermark not yet caught up after an election.
  offset_not_available = 78,
  // The member must rejoin with the member id it was given.
  member_id_required = 79,
  // The preferred leader is not available.
  preferred_leader_not_available = 80,
  // The group reached its maximum size.
  group_max_size_reached = 81,
  // Another member registered with the same group.instance.id.
  fenced_instance_id = 82,
  // No eligible leader for the partition.
  eligible_leaders_not_available = 83,
  // Leader election not needed.
  election_not_needed = 84,
  // No partition reassignment is in progress.
  no_reassignment_in_progress = 85,
  // Cannot delete offsets of a topic the group is subscribed to.
  group_subscribed_to_topic = 86,
  // A record failed broker-side validation.
  invalid_record = 87,
  // Unstable offsets (pending transactions) must clear first.
  unstable_offset_commit = 88,
  // Throttling quota exceeded.
  throttling_quota_exceeded = 89,
  // A newer producer with the same transactional id fenced this one.
  producer_fenced = 90,
  // Referenced resource does not exist.
  resource_not_found = 91,
  // Same resource referenced twice.
  duplicate_resource = 92,
  // Credential does not meet acceptability criteria.
  unacceptable_credential = 93,
  // Sender or receiver is not in the expected voter set.
  inconsistent_voter_set = 94,
  // Update version is invalid.
  invalid_update_version = 95,
  // Finalized feature update failed.
  feature_update_failed = 96,
  // Principal deserialization failed during forwarding.
  principal_deserialization_failure = 97,
  // Requested snapshot not found.
  snapshot_not_found = 98,
  // Snapshot position out of range.
  position_out_of_range = 99,
  // This broker does not host the topic id.
  unknown_topic_id = 100,
  // Broker id already registered.
  duplicate_broker_registration = 101,
  // Broker id not registered.
  broker_id_not_registered = 102,
  // The log's topic id differs from the request's.
  inconsistent_topic_id = 103,
  // Cluster id differs from the server's.
  inconsistent_cluster_id = 104,
  // Transactional id not found.
  transactional_id_not_found = 105,
  // Fetch session used topic ids inconsistently.
  fetch_session_topic_id_error = 106,
  // New ISR contains an ineligible replica.
  ineligible_replica = 107,
  // AlterPartition applied, but the leader changed.
  new_leader_elected = 108,
  // Requested offset is in tiered storage.
  offset_moved_to_tiered_storage = 109,
  // Member epoch fenced; the member must rejoin.
  fenced_member_epoch = 110,
  // Instance id still used by another member.
  unreleased_instance_id = 111,
  // Assignor or its version is not supported by the group.
  unsupported_assignor = 112,
  // Member epoch is stale.
  stale_member_epoch = 113,
  // Request sent to the wrong type of endpoint.
  mismatched_endpoint_type = 114,
  // Endpoint type not supported yet.
  unsupported_endpoint_type = 115,
  // Controller id is not known.
  unknown_controller_id = 116,
  // Telemetry subscription id invalid or outdated.
  unknown_subscription_id = 117,
  // Telemetry push too large.
  telemetry_too_large = 118,
  // Broker registration considered invalid.
  invalid_registration = 119,
  // Transaction error; the client can abort and continue.
  transaction_abortable = 120,
  // Share-group record state invalid.
  invalid_record_state = 121,
  // Share session not found.
  share_session_not_found = 122,
  // Share session epoch invalid.
  invalid_share_session_epoch = 123,
  // Share-group state epoch mismatch.
  fenced_state_epoch = 124,
  // Voter key does not match the replica's.
  invalid_voter_key = 125,
  // Voter is already in the voter set.
  duplicate_voter = 126,
  // Voter not in the voter set.
  voter_not_found = 127,
  // Regular expression is invalid.
  invalid_regular_expression = 128,
  // Client metadata is stale; the client should rebootstrap.
  rebootstrap_required = 129,
  // Streams topology is invalid.
  streams_invalid_topology = 130,
  // Streams topology epoch is invalid.
  streams_invalid_topology_epoch = 131,
  // Streams topology epoch is outdated.
  streams_topology_fenced = 132,
  // Share session limit reached.
  share_session_limit_reached = 133,
};

// Kafka's upper-case name ("UNKNOWN_TOPIC_OR_PARTITION"), as clients and Kafka's logs print it;
// "UNKNOWN_ERROR_CODE" for a value that is not in the enum.
std::string_view error_name(error_code code);

// The wire value, for response fields.
constexpr int16_t to_int(error_code code) {
  return static_cast<int16_t>(code);
}

}  // namespace sluice::wire

#pragma once
// The authorized-operations bit fields that Metadata, DescribeCluster, DescribeGroups and
// DescribeTopicPartitions report when a client asks for them. Sluice has no authorizer, so, as
// Kafka's AuthHelper does without one, every operation the resource type supports is reported:
// bit (1 << AclOperation code) for each. When the client does not ask, the field is INT32_MIN.

#include <cstdint>
#include <initializer_list>
#include <limits>

namespace sluice::server {

// Kafka's AclOperation codes.
enum class acl_operation : int8_t {
  read = 3,
  write = 4,
  create = 5,
  remove = 6,  // DELETE
  alter = 7,
  describe = 8,
  cluster_action = 9,
  describe_configs = 10,
  alter_configs = 11,
  idempotent_write = 12,
};

constexpr int32_t operation_bits(std::initializer_list<acl_operation> ops) {
  int32_t bits = 0;
  for (acl_operation op : ops)
    bits |= int32_t{1} << static_cast<int>(op);
  return bits;
}

// AclEntry.supportedOperations per resource type.
inline constexpr int32_t topic_operations =
    operation_bits({acl_operation::read, acl_operation::write, acl_operation::create,
                    acl_operation::remove, acl_operation::alter, acl_operation::describe,
                    acl_operation::describe_configs, acl_operation::alter_configs});
inline constexpr int32_t cluster_operations = operation_bits(
    {acl_operation::create, acl_operation::cluster_action, acl_operation::describe_configs,
     acl_operation::alter_configs, acl_operation::idempotent_write, acl_operation::alter,
     acl_operation::describe});
inline constexpr int32_t group_operations =
    operation_bits({acl_operation::read, acl_operation::describe, acl_operation::remove});

// What a response carries when the client did not ask.
inline constexpr int32_t authorized_operations_not_requested = std::numeric_limits<int32_t>::min();

constexpr int32_t authorized_operations(bool requested, int32_t supported) {
  return requested ? supported : authorized_operations_not_requested;
}

}  // namespace sluice::server

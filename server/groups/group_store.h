#pragma once
// What the group coordinator hands to persistence: Kafka's __consumer_offsets records as plain
// values (GroupMetadataValue, OffsetCommitValue and their tombstones), and the narrow interface
// that receives them. Every call is asynchronous: the append is started at once, and its
// completion says when the records are durable (or that the append failed), as Kafka's
// GroupMetadataManager learns it from its acks=all append to the offsets topic.
//
// Nothing here knows about the log or the record encoding; that belongs to the implementation.

#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wire/error_code.h"

namespace sluice::server {

struct topic_partition {
  std::string topic;
  int32_t partition = 0;
  auto operator<=>(const topic_partition&) const = default;
};

// One committed offset, as OffsetFetch returns it and OffsetCommitValue stores it.
struct committed_offset {
  int64_t offset = -1;
  int32_t leader_epoch = -1;
  std::string metadata;
  int64_t commit_timestamp_ms = -1;  // wall clock, as Kafka records it
};

struct offset_record {
  topic_partition partition;
  committed_offset value;
};

// A group's membership after a generation settles: Kafka's GroupMetadataValue.
struct group_metadata_record {
  struct member {
    std::string member_id;
    std::optional<std::string> group_instance_id;
    std::string client_id;
    std::string client_host;
    int32_t rebalance_timeout_ms = 0;
    int32_t session_timeout_ms = 0;
    std::vector<uint8_t> subscription;  // the metadata of the selected protocol
    std::vector<uint8_t> assignment;
  };
  std::string protocol_type;
  int32_t generation = 0;
  std::optional<std::string> protocol_name;
  std::optional<std::string> leader;
  std::vector<member> members;
};

// Receives every change that Kafka writes to __consumer_offsets. Each call appends its records
// as one batch (all of them or none) and later calls `done` exactly once, even when the broker
// shuts down meanwhile: with NONE once they are durable, or with the Kafka error the append failed
// with, mapped as Kafka's GroupMetadataManager maps append errors. `done` runs on the io thread,
// never before the call has returned (an implementation that knows the answer at once posts it),
// and the completions of successive calls run in the order of the calls, which is the order of the
// log: the coordinator applies each change to memory in its completion, so that memory stays what a
// replay of the log would rebuild. A call's records are copied before it returns.
class group_store {
 public:
  using completion = std::function<void(wire::error_code)>;

  virtual void store_group(std::string_view group_id, const group_metadata_record& record,
                           completion done) = 0;
  virtual void store_offsets(std::string_view group_id, std::span<const offset_record> offsets,
                             completion done) = 0;
  // Tombstones for the listed offsets (OffsetDelete, offset expiry, DeleteTopics).
  virtual void remove_offsets(std::string_view group_id,
                              std::span<const topic_partition> partitions, completion done) = 0;
  // Tombstones for the listed offsets and for the group's metadata, in one batch, so that a
  // deleted group is gone from the log entirely or not at all (DeleteGroups, a group that dies
  // with its last offsets).
  virtual void remove_group(std::string_view group_id, std::span<const topic_partition> partitions,
                            completion done) = 0;

 protected:
  ~group_store() = default;
};

}  // namespace sluice::server

#pragma once
// What the group coordinator hands to persistence: Kafka's __consumer_offsets records as plain
// values (GroupMetadataValue, OffsetCommitValue and their tombstones), and the narrow interface
// that receives them. The coordinator calls the store synchronously on the io thread, before it
// answers the request that caused the change, so an implementation that appends to the
// __consumer_offsets log (a pwrite into the page cache) fits without another round trip.
//
// Nothing here knows about the log or the record encoding; that belongs to the implementation.

#include <compare>
#include <cstdint>
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

// Receives every change that Kafka writes to __consumer_offsets. Returning an error makes the
// coordinator answer the request with it (as Kafka does when the append fails); the in-memory
// state then stays as before the change.
class group_store {
 public:
  virtual wire::error_code store_group(std::string_view group_id,
                                       const group_metadata_record& record) = 0;
  virtual wire::error_code store_offsets(std::string_view group_id,
                                         std::span<const offset_record> offsets) = 0;
  // Tombstones for the listed offsets (OffsetDelete, DeleteGroups).
  virtual void remove_offsets(std::string_view group_id,
                              std::span<const topic_partition> partitions) = 0;
  // Tombstone for the group's metadata (DeleteGroups); its offsets go through remove_offsets.
  virtual void remove_group(std::string_view group_id) = 0;

 protected:
  ~group_store() = default;
};

}  // namespace sluice::server

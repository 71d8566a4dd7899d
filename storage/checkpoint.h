#pragma once
// Kafka's small text files: offset checkpoints and partition.metadata. Internal to storage/.
//
// Offset checkpoint (CheckpointFile / OffsetCheckpointFile):
//   0                      <- version
//   2                      <- number of entries
//   orders 0 1520          <- "<topic> <partition> <offset>", single spaces
//   orders 1 977
// partition.metadata (PartitionMetadataFile):
//   version: 0
//   topic_id: <16-byte uuid, URL-safe base64 without padding, 22 characters>
//
// Threading: pure functions.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "storage/log.h"

namespace sluice::storage {

using offset_map = std::map<topic_partition, int64_t>;

// Entries sorted by topic then partition (Kafka writes hash order; any order reads back).
std::string format_offset_checkpoint(const offset_map& offsets);
// nullopt when the text is not a version-0 checkpoint with exactly the announced entries.
std::optional<offset_map> parse_offset_checkpoint(std::string_view text);

std::string format_partition_metadata(const wire::uuid& topic_id);
std::optional<wire::uuid> parse_partition_metadata(std::string_view text);

// Kafka's Uuid.toString(): URL-safe base64 of the 16 bytes, no padding.
std::string uuid_to_base64(const wire::uuid& id);
std::optional<wire::uuid> uuid_from_base64(std::string_view text);

// "<topic>-<partition>" and its inverse; nullopt for names that are not partition directories.
std::string partition_dir_name(const topic_partition& tp);
std::optional<topic_partition> parse_partition_dir_name(std::string_view name);
// Kafka's legal topic names: [a-zA-Z0-9._-]{1,249}, not "." or "..".
bool is_valid_topic_name(std::string_view name);

}  // namespace sluice::storage

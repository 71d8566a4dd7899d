#pragma once
// Producer ids for InitProducerId, unique for the life of the data directory.
//
// Kafka's controller hands brokers blocks of 1,000 ids and records the end of the latest block
// durably before any id from it is used (ProducerIdManager). The same here, with the record in a
// file of the data directory: `producer-id-block` holds the first id of the next block. After a
// crash at most the rest of one block is skipped; an id is never handed out twice, which is what
// keeps a restarted broker's partitions from mistaking a new producer for an old one.
//
// Threading: io thread only.

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>

namespace sluice::server {

class producer_id_allocator {
 public:
  static constexpr int64_t block_size = 1000;
  static constexpr const char* file_name = "producer-id-block";

  explicit producer_id_allocator(std::filesystem::path data_dir)
      : path_(std::move(data_dir) / file_name) {}

  // Reads the file; a missing file starts at id 0. A malformed one is an error: guessing could
  // reuse ids.
  std::error_code load(std::string& problem);
  // The next id, reserving a new block on disk first when the current one is used up.
  std::error_code next(int64_t& out);
  // Never hand out `id` or below: ids the partitions' producer state already knows. Guards
  // against a lost or restored-from-backup `producer-id-block`, which would otherwise restart
  // ids at a value a partition may still hold state (and retained batches) for.
  void skip_through(int64_t id);

 private:
  std::filesystem::path path_;
  int64_t next_id_ = 0;
  int64_t block_end_ = 0;  // exclusive; ids below it are reserved on disk
};

}  // namespace sluice::server

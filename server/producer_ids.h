#pragma once
// Producer ids for InitProducerId, unique for the life of the data directory.
//
// Kafka's controller hands brokers blocks of 1,000 ids and records the end of the latest block
// durably before any id from it is used (ProducerIdManager). The same here, with the record in a
// file of the data directory: `producer-id-block` holds the first id of the next block. After a
// crash at most the rest of one block is skipped; an id is never handed out twice, which is what
// keeps a restarted broker's partitions from mistaking a new producer for an old one.
//
// The file is written by a disk job; an id is handed out only once the write of its block is
// durable. The next block is reserved when the current one is half used, so that InitProducerId
// rarely waits for the disk.
//
// Threading: io thread only (the file write runs on the disk executor).

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "storage/disk_executor.h"

namespace sluice::server {

class producer_id_allocator {
 public:
  static constexpr int64_t block_size = 1000;
  static constexpr const char* file_name = "producer-id-block";

  producer_id_allocator(std::filesystem::path data_dir, storage::disk_executor& disk)
      : path_(std::move(data_dir) / file_name), disk_(disk) {}

  // Blocking, at start-up. Reads the file; a missing file starts at id 0. A malformed one is an
  // error: guessing could reuse ids.
  std::error_code load(std::string& problem);
  using id_callback = std::function<void(std::error_code, int64_t)>;
  // Calls `done` with the next id: at once when the reserved block has one, else once a new block
  // is durable on disk (callers are served in order). A failed write fails every waiting caller.
  void next(id_callback done);
  // Never hand out `id` or below: ids the partitions' producer state already knows. Guards
  // against a lost or restored-from-backup `producer-id-block`, which would otherwise restart
  // ids at a value a partition may still hold state (and retained batches) for.
  void skip_through(int64_t id);

 private:
  // Starts writing the next block's end unless a write is in flight.
  void reserve_ahead();
  void serve_waiting();

  std::filesystem::path path_;
  storage::disk_executor& disk_;
  int64_t next_id_ = 0;
  int64_t block_end_ = 0;  // exclusive; ids below it are reserved on disk
  bool reserving_ = false;
  std::deque<id_callback> waiting_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace sluice::server

#pragma once
// Producer ids for InitProducerId: never handed out twice, neither by this broker (across
// restarts) nor, in a cluster, by two brokers.
//
// Kafka hands brokers blocks of 1,000 ids and records the end of the latest block durably before
// any id from it is used (ProducerIdManager). The same here, with the record kept by a block
// source:
//
// - a standalone broker's is the file `producer-id-block` of the data directory, holding the
//   first id of the next block (file_producer_id_blocks). After a crash at most the rest of one
//   block is skipped, which is what keeps a restarted broker's partitions from mistaking a new
//   producer for an old one;
// - a cluster member's is the metadata store, where every broker of the cluster takes its blocks
//   from the one latest-block key (cluster/producer_id_blocks.h), as Kafka's ZooKeeper-era
//   brokers did with /latest_producer_id_block: an idempotent producer whose partitions move to
//   other brokers never meets another producer with its id there.
//
// An id is handed out only once its block is reserved. The next block is reserved when the
// current one is half used, so that InitProducerId rarely waits for the disk or the store. Blocks
// need not follow each other: in a cluster other brokers take the ones between.
//
// Threading: io thread only (the file write runs on the disk executor; the store's calls complete
// on the io thread).

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>

#include "storage/disk_executor.h"

namespace sluice::server {

enum class producer_id_errc {
  // The next block would pass the largest int64: no id is left, now or later.
  exhausted = 1,
  // Other brokers took every block this one tried for, too many times in a row.
  contended,
  // The stored latest block is not a block record: handing out ids from a guess could reuse them.
  malformed_block,
};

const std::error_category& producer_id_category();
std::error_code make_error_code(producer_id_errc e);

}  // namespace sluice::server

template <>
struct std::is_error_code_enum<sluice::server::producer_id_errc> : std::true_type {};

namespace sluice::server {

// Where blocks of producer ids are reserved.
class producer_id_block_source {
 public:
  virtual ~producer_id_block_source() = default;

  // Blocking, at start-up: the lowest id that no block recorded here may have covered (0 if
  // nothing is recorded), or an error with the reason in `problem`.
  virtual std::error_code load(int64_t& next_free, std::string& problem) = 0;

  using reserved_callback = std::function<void(std::error_code, int64_t first)>;
  // Reserves the ids first..first + size - 1 for this broker alone, durably, with first at least
  // `at_least` (which the allocator keeps past its earlier blocks) and, where brokers share the
  // source, above every block any of them took. `done` runs on the io thread, never from within
  // this call, with the first id or an error; not at all if the source is destroyed first.
  virtual void reserve(int64_t at_least, int64_t size, reserved_callback done) = 0;
};

// A standalone broker's blocks: the file `producer-id-block` of the data directory, written by a
// disk job.
class file_producer_id_blocks final : public producer_id_block_source {
 public:
  static constexpr const char* file_name = "producer-id-block";

  file_producer_id_blocks(std::filesystem::path data_dir, storage::disk_executor& disk)
      : path_(std::move(data_dir) / file_name), disk_(disk) {}

  // A missing file starts at id 0. A malformed one is an error: guessing could reuse ids.
  std::error_code load(int64_t& next_free, std::string& problem) override;
  void reserve(int64_t at_least, int64_t size, reserved_callback done) override;

 private:
  std::filesystem::path path_;
  storage::disk_executor& disk_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

class producer_id_allocator {
 public:
  static constexpr int64_t block_size = 1000;
  static constexpr const char* file_name = file_producer_id_blocks::file_name;

  // A standalone broker's: blocks in `<data_dir>/producer-id-block`.
  producer_id_allocator(std::filesystem::path data_dir, storage::disk_executor& disk);
  explicit producer_id_allocator(std::unique_ptr<producer_id_block_source> source);
  ~producer_id_allocator();
  producer_id_allocator(const producer_id_allocator&) = delete;
  producer_id_allocator& operator=(const producer_id_allocator&) = delete;

  // Blocking, at start-up: where the source says ids continue.
  std::error_code load(std::string& problem);
  using id_callback = std::function<void(std::error_code, int64_t)>;
  // Calls `done` with the next id: at once when the reserved block has one, else once a new block
  // is reserved (callers are served in order). A failed reservation fails every waiting caller;
  // the next call tries again.
  void next(id_callback done);
  // Never hand out `id` or below: ids the partitions' producer state already knows. Guards
  // against a lost or restored-from-backup record of the blocks, which would otherwise restart
  // ids at a value a partition may still hold state (and retained batches) for.
  void skip_through(int64_t id);

 private:
  struct block {
    int64_t first = 0;
    int64_t end = 0;  // exclusive
  };
  // Starts reserving the next block unless a reservation is in flight.
  void reserve_ahead();
  void serve_waiting();
  void fail_waiting(std::error_code ec);

  std::unique_ptr<producer_id_block_source> source_;
  // The current block: ids next_id_ up to block_end_ (exclusive) are reserved and unused. With
  // next_id_ >= block_end_ there is none, and next_id_ is the lowest id the next one may give.
  int64_t next_id_ = 0;
  int64_t block_end_ = 0;
  // A block reserved while the current one still had ids and that does not continue it.
  std::optional<block> ahead_;
  bool reserving_ = false;
  std::deque<id_callback> waiting_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace sluice::server

#pragma once
// A cluster member's blocks of producer ids (producer_ids.h), reserved in the metadata store: the
// key `<prefix>/producer_id_block` holds the latest block any broker of the cluster took
// (records.h). A broker takes the next one as Kafka's ZooKeeper-era ProducerIdManager did with
// /latest_producer_id_block: it reads the key, and writes the block after it (or the first block
// at or above what it must skip) with one transaction that compares the key's mod_revision, or
// requires it absent (create_revision 0) for the cluster's first block. A transaction that lost
// the race to another broker reads again and retries, `max_attempts` times in all.
//
// A store error fails the reservation without retrying: the client's InitProducerId is answered
// with a retriable error and asks again. A write whose outcome is unknown may have taken its
// block; the next reservation reads the key and goes past it, so those ids are skipped, never
// handed out twice.
//
// Threading: io thread only.

#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "server/coordination/metadata_store.h"
#include "server/producer_ids.h"

namespace sluice::server::cluster {

class producer_id_blocks final : public producer_id_block_source {
 public:
  static constexpr int max_attempts = 10;

  producer_id_blocks(boost::asio::any_io_executor executor, coordination::metadata_store& store,
                     int32_t node_id, std::string prefix);
  ~producer_id_blocks() override;
  producer_id_blocks(const producer_id_blocks&) = delete;
  producer_id_blocks& operator=(const producer_id_blocks&) = delete;

  // Nothing to read at start: the store is asked at every reservation.
  std::error_code load(int64_t& next_free, std::string& problem) override;
  void reserve(int64_t at_least, int64_t size, reserved_callback done) override;

 private:
  boost::asio::awaitable<void> take_block(std::weak_ptr<bool> alive, int64_t at_least, int64_t size,
                                          reserved_callback done);

  boost::asio::any_io_executor executor_;
  coordination::metadata_store& store_;
  int32_t node_id_;
  std::string key_;
  // Coroutines in flight check it before touching `this`: the broker may go with one suspended.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace sluice::server::cluster

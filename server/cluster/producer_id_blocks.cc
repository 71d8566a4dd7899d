#include "server/cluster/producer_id_blocks.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "server/cluster/records.h"
#include "server/logging.h"

namespace sluice::server::cluster {

namespace asio = boost::asio;
using coordination::compare;
using coordination::compare_op;
using coordination::operation;

producer_id_blocks::producer_id_blocks(asio::any_io_executor executor,
                                       coordination::metadata_store& store, int32_t node_id,
                                       std::string prefix)
    : executor_(std::move(executor)),
      store_(store),
      node_id_(node_id),
      key_(keys::producer_id_block(prefix)) {}

producer_id_blocks::~producer_id_blocks() = default;

std::error_code producer_id_blocks::load(int64_t& next_free, std::string&) {
  next_free = 0;
  return {};
}

void producer_id_blocks::reserve(int64_t at_least, int64_t size, reserved_callback done) {
  asio::co_spawn(executor_, take_block(alive_, at_least, size, std::move(done)), asio::detached);
}

asio::awaitable<void> producer_id_blocks::take_block(std::weak_ptr<bool> alive, int64_t at_least,
                                                     int64_t size, reserved_callback done) {
  // The body may first run after the source is gone: `this` is touched only while `alive` holds.
  if (!alive.lock()) co_return;
  // Never from within reserve(): the allocator is not re-entered from its own call.
  co_await asio::post(executor_, asio::use_awaitable);
  if (!alive.lock()) co_return;
  std::error_code failure = producer_id_errc::contended;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    coordination::range_result read = co_await store_.get(key_);
    if (!alive.lock()) co_return;
    if (read.error) {
      failure = read.error;
      break;
    }
    int64_t first = at_least;
    coordination::compare unchanged =
        compare::create_revision(key_, compare_op::equal, 0);  // the cluster's first block
    if (!read.kvs.empty()) {
      const coordination::key_value& latest = read.kvs.front();
      std::string why;
      std::optional<producer_id_block_record> stored = decode_producer_id_block(latest.value, &why);
      if (!stored) {
        log_error("broker ", node_id_, ": cannot reserve producer ids: ", key_,
                  " does not hold a block of producer ids (", why, "): ", log_safe(latest.value));
        failure = producer_id_errc::malformed_block;
        break;
      }
      if (stored->last_id == std::numeric_limits<int64_t>::max()) {
        failure = producer_id_errc::exhausted;
        break;
      }
      first = std::max(first, stored->last_id + 1);
      unchanged = compare::mod_revision(key_, compare_op::equal, latest.mod_revision);
    }
    if (first > std::numeric_limits<int64_t>::max() - size + 1) {
      failure = producer_id_errc::exhausted;
      break;
    }
    const producer_id_block_record block{node_id_, first, first + size - 1};
    coordination::txn_request take;
    take.compares.push_back(std::move(unchanged));
    take.success.push_back(operation::put(key_, encode(block)));
    coordination::txn_result taken = co_await store_.txn(std::move(take));
    if (!alive.lock()) co_return;
    if (taken.error) {
      failure = taken.error;
      break;
    }
    if (taken.succeeded) {
      log_info("broker ", node_id_, ": reserved producer ids ", block.first_id, " to ",
               block.last_id, " in ", key_);
      done({}, first);
      co_return;
    }
    // Another broker took a block since the read: read again.
  }
  log_warn("broker ", node_id_, ": cannot reserve producer ids in ", key_, ": ", failure.message());
  done(failure, -1);
}

}  // namespace sluice::server::cluster

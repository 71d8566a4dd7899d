// InitProducerId (key 22), versions 0-4: producer ids for idempotent producers.
//
// A request without a transactional id gets a fresh producer id at epoch 0, whatever id and epoch
// it carries (v3+ lets a producer offer its current ones to have the epoch bumped; Kafka's
// coordinator ignores them too when there is no transactional id and hands out a new id, which
// resets every sequence just as well). In a cluster the id is unique across its brokers
// (producer_ids.h: blocks reserved in etcd).
//
// Deviation: transactions are not supported (AddPartitionsToTxn, EndTxn and the transaction state
// log do not exist here), so a request with a transactional id is answered INVALID_REQUEST, which
// clients report as fatal instead of retrying forever. The transaction APIs are not advertised,
// so librdkafka refuses transactional producers before ever sending this.

#include "server/completion_latch.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "server/producer_ids.h"

namespace sluice::server {

boost::asio::awaitable<wire::init_producer_id_response> handle_init_producer_id(
    producer_id_allocator& producer_ids, request_context& ctx,
    wire::init_producer_id_request& request) {
  wire::init_producer_id_response response;
  response.producer_id = -1;
  response.producer_epoch = -1;
  if (request.transactional_id.has_value()) {
    response.error_code = static_cast<int16_t>(wire::error_code::invalid_request);
    co_return response;
  }
  completion_latch reserved(ctx.executor);
  std::error_code failed;
  int64_t id = -1;
  producer_ids.next([&failed, &id, ticket = reserved.add()](std::error_code ec, int64_t next) {
    failed = ec;
    id = next;
    ticket.done();
  });
  co_await reserved.wait();
  if (failed) {
    log_error("cannot reserve producer ids: ", failed.message());
    // As Kafka's ProducerIdManager answers while it has no block: COORDINATOR_LOAD_IN_PROGRESS,
    // which every client retries (Kafka chose it over REQUEST_TIMED_OUT, which older clients
    // treat as fatal), and the next attempt asks the disk or the store again. Only ids that have
    // run out are final, UNKNOWN_SERVER_ERROR as Kafka's "Have exhausted all producerIds".
    response.error_code = static_cast<int16_t>(
        failed == producer_id_errc::exhausted ? wire::error_code::unknown_server_error
                                              : wire::error_code::coordinator_load_in_progress);
    co_return response;
  }
  response.producer_id = id;
  response.producer_epoch = 0;
  co_return response;
}

}  // namespace sluice::server

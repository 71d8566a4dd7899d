#include "server/api_registry.h"

#include <array>
#include <exception>
#include <tuple>
#include <type_traits>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "server/handler_services.h"
#include "server/handlers/handlers.h"
#include "server/logging.h"
#include "wire/codec.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"

namespace sluice::server {

namespace {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
struct is_awaitable : std::false_type {};
template <class T>
struct is_awaitable<boost::asio::awaitable<T>> : std::true_type {};

// The wiring: each handler parameter type before `request_context&` is looked up here by type
// and filled from the broker's services. A handler asking for a component that is not wired
// does not compile.
template <class T>
using dependency = std::type_identity<T>;

const broker_config& provide(const handler_services& s, dependency<const broker_config&>) {
  return s.config;
}
const metadata_view& provide(const handler_services& s, dependency<const metadata_view&>) {
  return s.metadata;
}
controller_channel* provide(const handler_services& s, dependency<controller_channel*>) {
  return s.controller;
}
replica_manager* provide(const handler_services& s, dependency<replica_manager*>) {
  return s.replicas;
}
topic_registry& provide(const handler_services& s, dependency<topic_registry&>) {
  return s.topics;
}
partition_directory& provide(const handler_services& s, dependency<partition_directory&>) {
  return s.partitions;
}
topic_config_store& provide(const handler_services& s, dependency<topic_config_store&>) {
  return s.topic_configs;
}
group_coordinator& provide(const handler_services& s, dependency<group_coordinator&>) {
  return s.groups;
}
producer_id_allocator& provide(const handler_services& s, dependency<producer_id_allocator&>) {
  return s.producer_ids;
}
fetch_session_cache& provide(const handler_services& s, dependency<fetch_session_cache&>) {
  return s.fetch_sessions;
}
timer_service& provide(const handler_services& s, dependency<timer_service&>) {
  return s.timers;
}
broker_stats& provide(const handler_services& s, dependency<broker_stats&>) {
  return s.stats;
}
const stop_signal& provide(const handler_services& s, dependency<const stop_signal&>) {
  return s.stopping;
}

template <class F>
struct handler_signature;
template <class R, class... Args>
struct handler_signature<R (*)(Args...)> {
  using parameters = std::tuple<Args...>;
  static constexpr size_t dependencies = sizeof...(Args) - 2;
};

template <auto Handler, class Req, size_t... I>
auto call_with(const handler_services& s, request_context& ctx, Req& request,
               std::index_sequence<I...>) {
  using parameters = typename handler_signature<decltype(Handler)>::parameters;
  static_assert(std::is_same_v<std::tuple_element_t<sizeof...(I), parameters>, request_context&>,
                "a handler's last two parameters are request_context& and the request");
  static_assert(std::is_same_v<std::tuple_element_t<sizeof...(I) + 1, parameters>, Req&>,
                "a handler's last two parameters are request_context& and the request");
  return Handler(provide(s, dependency<std::tuple_element_t<I, parameters>>{})..., ctx, request);
}

// Calls `Handler` with its components from `s`, then the context and the request.
template <auto Handler, class Req>
auto call_handler(const handler_services& s, request_context& ctx, Req& request) {
  return call_with<Handler>(
      s, ctx, request,
      std::make_index_sequence<handler_signature<decltype(Handler)>::dependencies>{});
}

// Frame = int32 size, response header, body. The size is patched in after encoding because the
// body may end in file slices that only the frame's part list accounts for.
template <class Resp>
void encode_response(const request_context& ctx, const Resp& response, wire::frame& out) {
  out.clear();
  {
    wire::writer w(out);
    w.i32(0);
    wire::response_header header;
    header.correlation_id = ctx.correlation_id;
    header.encode(w, wire::response_header_version(ctx.api_key, ctx.api_version));
    response.encode(w, ctx.api_version);
  }
  int64_t size = out.total_size() - 4;
  for (int i = 0; i < 4; ++i)
    out.bytes[i] = static_cast<uint8_t>(size >> (24 - 8 * i));
}

template <class Resp>
void finish(request_budget& budget, const request_context& ctx, const std::optional<Resp>& response,
            response_slot& slot) {
  if (response) {
    encode_response(ctx, *response, slot.frame);
    slot.held = budget.take_response(static_cast<int64_t>(slot.frame.bytes.size()));
  } else {
    slot.send = false;
  }
  slot.close_after = ctx.close_connection;
  slot.ready = true;
}

void fail_slot(const request_context& ctx, response_slot& slot, const char* what) {
  log_error("closing connection from ", ctx.peer, ": API ", ctx.api_key, " v", ctx.api_version,
            " failed: ", what);
  slot.send = false;
  slot.close_after = true;
  slot.ready = true;
}

template <class Req, auto Handler>
bool invoke(const handler_services& services, request_context ctx, inbound_request request,
            std::shared_ptr<response_slot> slot, std::shared_ptr<response_sink> sink) {
  auto decoded = std::make_unique<Req>();
  {
    wire::reader r(request.bytes());
    wire::request_header header;
    if (!header.decode(r, wire::request_header_version(ctx.api_key, ctx.api_version))) {
      return false;
    }
    ctx.correlation_id = header.correlation_id;
    ctx.client_id = std::move(header.client_id);
    if (!decoded->decode(r, ctx.api_version)) return false;
  }
  if constexpr (!Req::views_input) {
    // Decoded into structs of its own: the bytes (and whatever followed the body, which Kafka
    // ignores too) go now, not when a parked handler finally answers.
    request.data.reset();
    request.held.release();
  }
  using result = decltype(call_handler<Handler>(services, ctx, *decoded));
  if constexpr (is_awaitable<result>::value) {
    // Taken before the lambda captures (moves) ctx: argument evaluation order is unspecified.
    boost::asio::any_io_executor executor = ctx.executor;
    boost::asio::co_spawn(
        executor,
        // The services by copy: references to components that live as long as the broker.
        [services, ctx = std::move(ctx), request = std::move(request), decoded = std::move(decoded),
         slot, sink]() mutable -> boost::asio::awaitable<void> {
          try {
            auto response = co_await call_handler<Handler>(services, ctx, *decoded);
            if constexpr (is_optional<decltype(response)>::value) {
              finish(services.budget, ctx, response, *slot);
            } else {
              finish(services.budget, ctx, std::optional(std::move(response)), *slot);
            }
          } catch (const std::exception& e) {
            fail_slot(ctx, *slot, e.what());
          }
          sink->response_ready();
        },
        boost::asio::detached);
  } else {
    try {
      if constexpr (is_optional<result>::value) {
        finish(services.budget, ctx, call_handler<Handler>(services, ctx, *decoded), *slot);
      } else {
        finish(services.budget, ctx, std::optional(call_handler<Handler>(services, ctx, *decoded)),
               *slot);
      }
    } catch (const std::exception& e) {
      fail_slot(ctx, *slot, e.what());
    }
    sink->response_ready();
  }
  return true;
}

template <class Req, auto Handler>
api_handler entry(int16_t min_version, int16_t max_version, int16_t min_served_version = -1) {
  return {Req::api_key,
          wire::find_api_spec(Req::api_key)->name,
          min_version,
          max_version,
          min_served_version < 0 ? min_version : min_served_version,
          &invoke<Req, Handler>};
}

std::span<const api_handler> registry() {
  // Ranges: README "Supported APIs". Produce is advertised from v0 as Kafka 4 does, because
  // librdkafka < 2.11.1 turns compression off unless Produce v0 is in range, and served from v3
  // (record batch v2). Fetch starts at 4 for the same reason.
  static const auto handlers = std::to_array<api_handler>({
      entry<wire::produce_request, handle_produce>(0, 13, 3),
      entry<wire::fetch_request, handle_fetch>(4, 18),
      entry<wire::list_offsets_request, handle_list_offsets>(0, 7),
      entry<wire::offset_for_leader_epoch_request, handle_offset_for_leader_epoch>(0, 4),
      entry<wire::metadata_request, handle_metadata>(0, 13),
      entry<wire::find_coordinator_request, handle_find_coordinator>(0, 5),
      // Group APIs from v0: librdkafka < 2.11.1 turns its group consumer off unless JoinGroup,
      // SyncGroup, Heartbeat, LeaveGroup and FindCoordinator v0 and OffsetCommit v1-2 are in range.
      entry<wire::join_group_request, handle_join_group>(0, 9),
      entry<wire::sync_group_request, handle_sync_group>(0, 5),
      entry<wire::heartbeat_request, handle_heartbeat>(0, 4),
      entry<wire::leave_group_request, handle_leave_group>(0, 5),
      entry<wire::offset_commit_request, handle_offset_commit>(0, 8),
      entry<wire::offset_fetch_request, handle_offset_fetch>(0, 8),
      entry<wire::list_groups_request, handle_list_groups>(0, 5),
      entry<wire::describe_groups_request, handle_describe_groups>(0, 6),
      entry<wire::delete_groups_request, handle_delete_groups>(0, 2),
      entry<wire::offset_delete_request, handle_offset_delete>(0, 0),
      entry<wire::api_versions_request, handle_api_versions>(0, 4),
      // Admin APIs (README "Admin API and topic configs").
      entry<wire::create_topics_request, handle_create_topics>(0, 7),
      entry<wire::delete_topics_request, handle_delete_topics>(0, 6),
      entry<wire::create_partitions_request, handle_create_partitions>(0, 3),
      entry<wire::describe_configs_request, handle_describe_configs>(0, 4),
      entry<wire::alter_configs_request, handle_alter_configs>(0, 2),
      entry<wire::incremental_alter_configs_request, handle_incremental_alter_configs>(0, 1),
      entry<wire::describe_cluster_request, handle_describe_cluster>(0, 2),
      entry<wire::describe_topic_partitions_request, handle_describe_topic_partitions>(0, 0),
      entry<wire::describe_log_dirs_request, handle_describe_log_dirs>(0, 5),
      entry<wire::init_producer_id_request, handle_init_producer_id>(0, 5),
      entry<wire::delete_records_request, handle_delete_records>(0, 2),
      entry<wire::elect_leaders_request, handle_elect_leaders>(0, 2),
      // Partition reassignment (KIP-455), decided by the controller.
      entry<wire::alter_partition_reassignments_request, handle_alter_partition_reassignments>(0,
                                                                                               0),
      entry<wire::list_partition_reassignments_request, handle_list_partition_reassignments>(0, 0),
      // Between brokers: a partition leader's ISR change, served by the controller.
      entry<wire::alter_partition_request, handle_alter_partition>(2, 3),
      // Between brokers: a broker's controlled shutdown, served by the controller. From v1: v0's
      // request header has no client id, and no Sluice broker sends it.
      entry<wire::controlled_shutdown_request, handle_controlled_shutdown>(1, 3),
  });
  return handlers;
}

}  // namespace

std::span<const api_handler> api_handlers() {
  return registry();
}

const api_handler* find_api_handler(int16_t key) {
  for (const api_handler& h : registry()) {
    if (h.key == key) return &h;
  }
  return nullptr;
}

bool dispatch_request(const handler_services& services, request_context ctx,
                      inbound_request request, std::shared_ptr<response_slot> slot,
                      std::shared_ptr<response_sink> sink, std::string& reason) {
  if (request.size < 4) {
    reason = "request shorter than its header";
    return false;
  }
  const uint8_t* p = request.data.get();
  ctx.api_key = static_cast<int16_t>((p[0] << 8) | p[1]);
  ctx.api_version = static_cast<int16_t>((p[2] << 8) | p[3]);
  const api_handler* handler = find_api_handler(ctx.api_key);
  if (handler == nullptr) {
    reason = "unknown API key " + std::to_string(ctx.api_key);
    return false;
  }
  if (ctx.api_version < handler->min_served_version || ctx.api_version > handler->max_version) {
    if (ctx.api_key != wire::api_versions_request::api_key) {
      reason =
          std::string(handler->name) + " v" + std::to_string(ctx.api_version) + " is not supported";
      return false;
    }
    // KIP-511: read the header at the highest version we know (its layout is stable), ignore
    // the body, and answer in a v0 body under a v0 response header.
    wire::reader r(request.bytes());
    wire::request_header header;
    if (!header.decode(r, wire::request_header_version(ctx.api_key, handler->max_version))) {
      reason = "unparseable ApiVersions header";
      return false;
    }
    ctx.correlation_id = header.correlation_id;
    ctx.api_version = 0;
    finish(services.budget, ctx, std::optional(unsupported_api_versions_response()), *slot);
    sink->response_ready();
    return true;
  }
  if (!handler->invoke(services, std::move(ctx), std::move(request), slot, sink)) {
    reason = std::string(handler->name) + " request does not parse";
    return false;
  }
  return true;
}

}  // namespace sluice::server

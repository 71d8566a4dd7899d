#pragma once
// Handler entry points, one file per API in this folder. Each file opens with the versions it
// serves, its behaviour and where it deviates from Kafka.

#include <optional>

#include <boost/asio/awaitable.hpp>

#include "server/request_context.h"
#include "wire/generated/api_versions_request.h"
#include "wire/generated/api_versions_response.h"
#include "wire/generated/fetch_request.h"
#include "wire/generated/fetch_response.h"
#include "wire/generated/find_coordinator_request.h"
#include "wire/generated/find_coordinator_response.h"
#include "wire/generated/list_offsets_request.h"
#include "wire/generated/list_offsets_response.h"
#include "wire/generated/metadata_request.h"
#include "wire/generated/metadata_response.h"
#include "wire/generated/produce_request.h"
#include "wire/generated/produce_response.h"

namespace sluice::server {

wire::api_versions_response handle_api_versions(request_context& ctx,
                                                wire::api_versions_request& request);
// The v0-format body answering an ApiVersions version this broker does not support (KIP-511).
wire::api_versions_response unsupported_api_versions_response();

wire::metadata_response handle_metadata(request_context& ctx, wire::metadata_request& request);

std::optional<wire::produce_response> handle_produce(request_context& ctx,
                                                     wire::produce_request& request);

boost::asio::awaitable<wire::fetch_response> handle_fetch(request_context& ctx,
                                                          wire::fetch_request& request);

wire::find_coordinator_response handle_find_coordinator(request_context& ctx,
                                                        wire::find_coordinator_request& request);

wire::list_offsets_response handle_list_offsets(request_context& ctx,
                                                wire::list_offsets_request& request);

}  // namespace sluice::server

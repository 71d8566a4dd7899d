// ApiVersions (key 18), versions 0-3.
//
// Lists every API in the registry with its advertised range, so the answer can never disagree
// with what dispatch accepts. An unsupported version is answered by dispatch (api_registry.cc)
// with unsupported_api_versions_response(): error 35 in a v0 body whose only entry is ApiVersions
// itself, as KIP-511 and franz-go expect. The response header is always v0 (the codec's rule).
//
// Deviations: v3's client_software_name/version are not validated (Kafka answers INVALID_REQUEST
// to names outside its pattern; being lenient loses nothing). No features are advertised.

#include "server/api_registry.h"
#include "server/handlers/handlers.h"
#include "wire/error_code.h"

namespace sluice::server {

wire::api_versions_response handle_api_versions(request_context&, wire::api_versions_request&) {
  wire::api_versions_response response;
  for (const api_handler& h : api_handlers()) {
    wire::api_versions_response::api_version entry;
    entry.api_key = h.key;
    entry.min_version = h.min_version;
    entry.max_version = h.max_version;
    response.api_keys.push_back(entry);
  }
  return response;
}

wire::api_versions_response unsupported_api_versions_response() {
  wire::api_versions_response response;
  response.error_code = static_cast<int16_t>(wire::error_code::unsupported_version);
  const api_handler* self = find_api_handler(wire::api_versions_request::api_key);
  wire::api_versions_response::api_version entry;
  entry.api_key = self->key;
  entry.min_version = self->min_version;
  entry.max_version = self->max_version;
  response.api_keys.push_back(entry);
  return response;
}

}  // namespace sluice::server

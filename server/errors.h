#pragma once
// The one place internal failures become Kafka error codes.

#include <system_error>

#include "wire/error_code.h"

namespace sluice::server {

wire::error_code to_kafka_error(const std::error_code& ec);

}  // namespace sluice::server

#include "server/coordination/metadata_store.h"

namespace sluice::server::coordination {

namespace {

class store_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "coordination store"; }
  std::string message(int e) const override {
    switch (static_cast<store_errc>(e)) {
      case store_errc::unavailable:
        return "coordination store unavailable";
      case store_errc::outcome_unknown:
        return "no answer to a write: it may or may not have been applied";
      case store_errc::lease_not_found:
        return "lease not found";
      case store_errc::rejected:
        return "request rejected by the coordination store";
      case store_errc::response_too_large:
        return "response larger than the configured cap";
      case store_errc::bad_response:
        return "malformed response from the coordination store";
    }
    return "unknown coordination store error";
  }
};

}  // namespace

const std::error_category& store_category() {
  static const store_category_impl category;
  return category;
}

std::error_code make_error_code(store_errc e) {
  return {static_cast<int>(e), store_category()};
}

boost::asio::awaitable<txn_result> metadata_store::put(std::string key, std::string value,
                                                       int64_t lease) {
  txn_request request;
  request.success.push_back(operation::put(std::move(key), std::move(value), lease));
  co_return co_await txn(std::move(request));
}

}  // namespace sluice::server::coordination

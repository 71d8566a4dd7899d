#pragma once
// The coordination store as the broker sees it: a key-value store with revisions, transactions,
// leases and watches, the part of etcd's v3 API that a controller and its brokers need. The
// controller writes cluster state with compare-and-set transactions; a broker registers under a
// lease it keeps alive, reads the state once and then follows it with a watch.
//
// Keys and values are bytes (std::string, any content). Every change moves the store's revision
// (an int64 shared by all keys) forward by one, however many keys it touched. A key's
// create_revision is the revision that created it (anew after a delete), mod_revision the one that
// last changed it, version the number of changes since it was created.
//
// Calls are Asio awaitables on the io thread. The callers are sequences (read, decide, write
// conditionally, read again if the write lost a race), which as callbacks become nested lambdas;
// the broker's handlers are already coroutines on the io thread and can co_await the store
// directly, without a completion_latch. The two things that arrive unasked, watch events and the
// loss of a lease, are callbacks on the io thread instead, each behind a `subscription` that
// cancels them, as timer_handle cancels a timer.
//
// Errors are results, not exceptions: every result carries a std::error_code, and a call that
// fails says whether it may have taken effect (`store_errc`).
//
// Threading: io thread only. Awaitables resume and callbacks run on the io thread, never from
// within the call that started them; no call blocks it.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "server/cancel_handle.h"

namespace sluice::server::coordination {

enum class store_errc {
  // No endpoint answered (refused, timed out, or the store has no leader). Nothing was applied:
  // safe to retry.
  unavailable = 1,
  // A write was sent and no answer came: it may or may not have been applied. Read before
  // retrying, unless the write is guarded by compares that make a second attempt harmless.
  outcome_unknown,
  // The lease has expired, was revoked, or never existed.
  lease_not_found,
  // The store refused the request as malformed: a key written twice in one transaction, an empty
  // key, a request over the store's size limit. Not applied; retrying will not help.
  rejected,
  // An answer larger than the configured cap. Nothing is known about the outcome of a write.
  response_too_large,
  // An answer that is not what the protocol says.
  bad_response,
};

const std::error_category& store_category();
std::error_code make_error_code(store_errc e);

}  // namespace sluice::server::coordination

template <>
struct std::is_error_code_enum<sluice::server::coordination::store_errc> : std::true_type {};

namespace sluice::server::coordination {

struct key_value {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;
  int64_t lease = 0;  // 0: none; the key is deleted when its lease ends

  bool operator==(const key_value&) const = default;
};

struct range_result {
  std::error_code error;
  // R, the store's revision when it was read: what `kvs` reflects. A watch from R + 1 then misses
  // nothing and repeats nothing.
  int64_t revision = 0;
  std::vector<key_value> kvs;  // in byte-wise key order
};

enum class compare_target { version, create_revision, mod_revision, value };
enum class compare_op { equal, not_equal, greater, less };

// One condition of a transaction, on the key's current state. A key that does not exist has
// version, create_revision and mod_revision 0 (so `create_revision == 0` means "absent"), and every
// compare of its value is false, as in etcd.
struct compare {
  std::string key;
  compare_target target = compare_target::version;
  compare_op op = compare_op::equal;
  int64_t number = 0;  // for version and the revisions
  std::string value;   // for value

  static compare version(std::string key, compare_op op, int64_t n) {
    return {std::move(key), compare_target::version, op, n, {}};
  }
  static compare create_revision(std::string key, compare_op op, int64_t revision) {
    return {std::move(key), compare_target::create_revision, op, revision, {}};
  }
  static compare mod_revision(std::string key, compare_op op, int64_t revision) {
    return {std::move(key), compare_target::mod_revision, op, revision, {}};
  }
  static compare value_is(std::string key, compare_op op, std::string value) {
    return {std::move(key), compare_target::value, op, 0, std::move(value)};
  }
};

struct operation {
  enum class kind { put, erase_key, erase_prefix };
  kind what = kind::put;
  std::string key;  // the prefix for erase_prefix ("" erases every key)
  std::string value;
  int64_t lease = 0;  // put: attach to this lease (0 detaches the key from any lease)

  static operation put(std::string key, std::string value, int64_t lease = 0) {
    return {kind::put, std::move(key), std::move(value), lease};
  }
  static operation erase(std::string key) { return {kind::erase_key, std::move(key), {}, 0}; }
  static operation erase_prefix(std::string prefix) {
    return {kind::erase_prefix, std::move(prefix), {}, 0};
  }
};

// If every compare holds, `success` is applied, else `failure`, atomically, as one revision (or
// none if nothing changed: deleting an absent key is no change). One branch may not write a key
// twice, nor put a key it also erases (store_errc::rejected). A put naming a lease that does not
// exist fails the whole transaction with lease_not_found.
struct txn_request {
  std::vector<compare> compares;
  std::vector<operation> success;
  std::vector<operation> failure;
};

struct txn_result {
  std::error_code error;
  bool succeeded = false;  // every compare held
  // The store's revision after the transaction: the revision of its writes when it wrote.
  int64_t revision = 0;
};

struct lease_grant_result {
  std::error_code error;
  int64_t id = 0;
  // What the store granted, which may exceed what was asked: etcd 3.4 grants no less than 1.5
  // election timeouts rounded up, 2 s with default settings, so 1 s (and 0) come back as 2.
  int64_t ttl_seconds = 0;
};

struct watch_event {
  enum class kind { put, erase };
  kind what = kind::put;
  // The key's state after a put. For an erase only key and mod_revision (the revision of the
  // deletion) are set.
  key_value kv;
};

struct watch_end {
  enum class reason {
    // The start revision has been compacted away: read the prefix again and watch from that
    // read's revision + 1.
    compacted,
    // The stream broke (`error` says how). Events up to the last one delivered are complete:
    // watch again from its revision + 1 (or from the start revision if none came).
    disconnected,
  };
  reason why = reason::disconnected;
  int64_t compact_revision = 0;  // compacted: the oldest revision the store still has
  std::error_code error;         // disconnected
};

struct watch_callbacks {
  // Events of one or more revisions, never empty, in revision order and in order within a
  // revision; across calls, in order too.
  std::function<void(std::vector<watch_event>)> events;
  // At most once; nothing is called after it.
  std::function<void(const watch_end&)> ended;
};

// A running watch or keep-alive: cancelled with its handle (cancel_handle.h), which may happen
// from within one of its callbacks.
using subscription = cancel_handle;

class metadata_store {
 public:
  virtual ~metadata_store() = default;

  // One key (none in kvs if it does not exist).
  virtual boost::asio::awaitable<range_result> get(std::string key) = 0;
  // Every key that starts with `prefix` ("" is every key).
  virtual boost::asio::awaitable<range_result> get_prefix(std::string prefix) = 0;

  virtual boost::asio::awaitable<txn_result> txn(txn_request request) = 0;
  // A transaction of one put and no compares.
  boost::asio::awaitable<txn_result> put(std::string key, std::string value, int64_t lease = 0);

  virtual boost::asio::awaitable<lease_grant_result> grant_lease(int64_t ttl_seconds) = 0;
  // Ends the lease now and deletes its keys (in one revision). lease_not_found if it is gone.
  virtual boost::asio::awaitable<std::error_code> revoke_lease(int64_t lease) = 0;
  // Keeps `lease` (granted with `ttl_seconds`) alive until the subscription goes. `lost` runs at
  // most once, when the lease is gone or can no longer be presumed alive: the store says it
  // expired or does not exist (lease_not_found), or no renewal has been confirmed for a whole TTL
  // (the error of the last attempt, typically unavailable), after which the store may have
  // expired it and deleted its keys at any moment. The first renewal is sent at once, so keeping
  // alive a lease that already ended reports it promptly.
  virtual subscription keep_alive(int64_t lease, int64_t ttl_seconds,
                                  std::function<void(std::error_code)> lost) = 0;

  // Events under `prefix` from `start_revision` (at least 1; range_result::revision + 1 after a
  // read) on, until the subscription goes or callbacks.ended runs.
  virtual subscription watch_prefix(std::string prefix, int64_t start_revision,
                                    watch_callbacks callbacks) = 0;
};

}  // namespace sluice::server::coordination

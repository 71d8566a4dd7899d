// broker_client against a small broker in the test: a listener on 127.0.0.1 that decodes request
// frames with the generated codec and answers as each test tells it to (or not at all). Real
// sockets; deadlines and back-offs on a manual clock, moved by hand.

#include "server/cluster/broker_client.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "server/tests/manual_clock.h"
#include "server/tests/metadata_store_contract.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"
#include "wire/record_batch.h"

namespace sluice::server::cluster {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

struct request_seen {
  size_t connection = 0;
  wire::request_header header;
  std::vector<uint8_t> body;

  template <class Req>
  Req decode() const {
    std::vector<uint8_t> copy = body;
    wire::reader r(copy);
    Req req;
    EXPECT_TRUE(req.decode(r, header.request_api_version));
    return req;
  }
};

// Accepts connections and reads request frames; answering is up to the test.
class fake_broker {
 public:
  explicit fake_broker(asio::io_context& io)
      : io_(io), acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io_, accept_loop(), asio::detached);
  }
  ~fake_broker() { shut(); }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  size_t accepted() const { return sockets_.size(); }

  std::vector<request_seen> requests;
  // Called as each request arrives, after it joined `requests`.
  std::function<void(const request_seen&)> on_request;

  template <class Resp>
  void answer(const request_seen& r, const Resp& body,
              std::optional<int32_t> correlation_id = std::nullopt) {
    wire::frame f;
    f.bytes.reserve(256);
    {
      wire::writer w(f);
      w.i32(0);
      wire::response_header header;
      header.correlation_id = correlation_id.value_or(r.header.correlation_id);
      header.encode(
          w, wire::response_header_version(r.header.request_api_key, r.header.request_api_version));
      body.encode(w, r.header.request_api_version);
    }
    const auto size = static_cast<uint32_t>(f.bytes.size() - 4);
    for (int i = 0; i < 4; ++i)
      f.bytes[i] = static_cast<uint8_t>(size >> (24 - 8 * i));
    write_raw(r.connection, f.bytes);
  }
  void write_raw(size_t connection, std::span<const uint8_t> bytes) {
    asio::write(*sockets_.at(connection), asio::buffer(bytes.data(), bytes.size()));
  }
  void close(size_t connection) {
    boost::system::error_code ignored;
    sockets_.at(connection)->close(ignored);
  }
  void shut() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& s : sockets_)
      s->close(ignored);
  }

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      sockets_.push_back(std::make_shared<tcp::socket>(std::move(s)));
      asio::co_spawn(io_, read_loop(sockets_.back(), sockets_.size() - 1), asio::detached);
    }
  }

  asio::awaitable<void> read_loop(std::shared_ptr<tcp::socket> s, size_t index) {
    for (;;) {
      boost::system::error_code ec;
      std::array<uint8_t, 4> size_bytes;
      co_await asio::async_read(*s, asio::buffer(size_bytes),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      const uint32_t size = uint32_t{size_bytes[0]} << 24 | uint32_t{size_bytes[1]} << 16 |
                            uint32_t{size_bytes[2]} << 8 | size_bytes[3];
      std::vector<uint8_t> frame(size);
      co_await asio::async_read(*s, asio::buffer(frame),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec || frame.size() < 4) co_return;
      const auto key = static_cast<int16_t>(frame[0] << 8 | frame[1]);
      const auto version = static_cast<int16_t>(frame[2] << 8 | frame[3]);
      request_seen seen;
      seen.connection = index;
      wire::reader r(frame);
      EXPECT_TRUE(seen.header.decode(r, wire::request_header_version(key, version)));
      seen.body.assign(frame.begin() + static_cast<ptrdiff_t>(r.position()), frame.end());
      requests.push_back(std::move(seen));
      if (on_request) on_request(requests.back());
    }
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
};

template <class T>
std::shared_ptr<std::optional<T>> spawn(asio::io_context& io, asio::awaitable<T> call) {
  auto out = std::make_shared<std::optional<T>>();
  asio::co_spawn(io, std::move(call), [out](std::exception_ptr e, T value) {
    if (e) std::rethrow_exception(e);
    *out = std::move(value);
  });
  return out;
}

class broker_client_test : public ::testing::Test {
 protected:
  // Real time, bounded: the sockets are real.
  bool run_until(const std::function<bool()>& done) {
    return coordination::testing::run_until(io_, done, 5s);
  }
  void run_for(std::chrono::milliseconds d) { coordination::testing::run_for(io_, d); }

  broker_client_config config(uint16_t port) {
    broker_client_config c;
    c.local_node_id = 7;
    c.name = "broker 2";
    c.host = "127.0.0.1";
    c.port = port;
    c.connect_timeout = 1000ms;
    c.request_timeout = 3000ms;
    c.reconnect_backoff = 0ms;
    c.reconnect_backoff_max = 0ms;
    c.max_response_bytes = 4096;
    return c;
  }

  testing::manual_clock clock_;
  asio::io_context io_;
  fake_broker server_{io_};
};

wire::api_versions_response versions_marked(int32_t marker) {
  wire::api_versions_response r;
  r.throttle_time_ms = marker;
  auto& fetch = r.api_keys.emplace_back();
  fetch.api_key = 1;
  fetch.min_version = 4;
  fetch.max_version = 16;
  return r;
}

TEST_F(broker_client_test, pipelined_calls_are_answered_in_order) {
  broker_client client(io_.get_executor(), clock_, config(server_.port()));
  // Nothing is answered before all three requests are in: they were in flight together.
  server_.on_request = [&](const request_seen&) {
    if (server_.requests.size() < 3) return;
    server_.answer(server_.requests[0], versions_marked(1));
    wire::metadata_response metadata;
    metadata.throttle_time_ms = 2;
    auto& broker = metadata.brokers.emplace_back();
    broker.node_id = 2;
    broker.host = "b2";
    broker.port = 9092;
    server_.answer(server_.requests[1], metadata);
    wire::list_offsets_response offsets;
    offsets.throttle_time_ms = 3;
    server_.answer(server_.requests[2], offsets);
  };
  auto a = spawn(io_, client.call(wire::api_versions_request{}, 3));
  auto b = spawn(io_, client.call(wire::metadata_request{}, 12));
  auto c = spawn(io_, client.call(wire::list_offsets_request{}, 2));
  ASSERT_TRUE(run_until([&] { return *a && *b && *c; }));

  ASSERT_FALSE((*a)->error) << (*a)->error.message();
  ASSERT_FALSE((*b)->error) << (*b)->error.message();
  ASSERT_FALSE((*c)->error) << (*c)->error.message();
  EXPECT_EQ((*a)->body, versions_marked(1));
  EXPECT_EQ((*b)->body.throttle_time_ms, 2);
  ASSERT_EQ((*b)->body.brokers.size(), 1u);
  EXPECT_EQ((*b)->body.brokers[0].host, "b2");
  EXPECT_EQ((*c)->body.throttle_time_ms, 3);

  ASSERT_EQ(server_.requests.size(), 3u);
  EXPECT_EQ(server_.accepted(), 1u);
  const int16_t keys[] = {18, 3, 2};
  const int16_t versions[] = {3, 12, 2};
  for (size_t i = 0; i < 3; ++i) {
    const wire::request_header& h = server_.requests[i].header;
    EXPECT_EQ(h.request_api_key, keys[i]);
    EXPECT_EQ(h.request_api_version, versions[i]);
    EXPECT_EQ(h.client_id, "sluice-broker-7");
    if (i > 0) {
      EXPECT_NE(h.correlation_id, server_.requests[i - 1].header.correlation_id);
    }
  }
  // Header v2 (flexible) and v1 both carried the body intact.
  EXPECT_EQ(server_.requests[1].decode<wire::metadata_request>(), wire::metadata_request{});
  EXPECT_EQ(server_.requests[2].decode<wire::list_offsets_request>(), wire::list_offsets_request{});
}

TEST_F(broker_client_test, an_answer_out_of_order_breaks_the_connection) {
  broker_client client(io_.get_executor(), clock_, config(server_.port()));
  server_.on_request = [&](const request_seen&) {
    if (server_.requests.size() == 2) server_.answer(server_.requests[1], versions_marked(2));
  };
  auto a = spawn(io_, client.call(wire::api_versions_request{}, 3));
  auto b = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return *a && *b; }));
  EXPECT_EQ((*a)->error, broker_client_errc::malformed_response);
  EXPECT_EQ((*b)->error, broker_client_errc::disconnected);
  EXPECT_FALSE(client.connected());
}

TEST_F(broker_client_test, fetch_records_point_into_the_frame_the_call_returns) {
  broker_client_config c = config(server_.port());
  c.max_response_bytes = 64 * 1024;
  broker_client client(io_.get_executor(), clock_, c);
  const std::vector<uint8_t> value(1000, 'v');
  wire::record_to_build record;
  record.timestamp = 1;
  record.value = value;
  std::vector<uint8_t> batch =
      wire::build_record_batch({.base_offset = 5, .partition_leader_epoch = 3}, {&record, 1});
  server_.on_request = [&](const request_seen& r) {
    wire::fetch_response response;
    auto& topic = response.responses.emplace_back();
    topic.topic_id[0] = 9;
    auto& partition = topic.partitions.emplace_back();
    partition.high_watermark = 6;
    partition.records.bytes = batch;
    server_.answer(r, response);
  };
  wire::fetch_request request;
  request.replica_state.replica_id = 7;
  auto reply = spawn(io_, client.call(request, 16));
  ASSERT_TRUE(run_until([&] { return reply->has_value(); }));
  const std::vector<uint8_t> sent = batch;
  std::fill(batch.begin(), batch.end(), 0);

  ASSERT_FALSE((*reply)->error) << (*reply)->error.message();
  ASSERT_EQ((*reply)->body.responses.size(), 1u);
  const wire::records& records = (*reply)->body.responses[0].partitions[0].records;
  // A view into the frame the call returned, which holds the bytes for as long as it lives.
  ASSERT_TRUE((*reply)->frame);
  EXPECT_GT(records.bytes.data(), (*reply)->frame.get());
  EXPECT_LT(records.bytes.data(), (*reply)->frame.get() + c.max_response_bytes);
  EXPECT_TRUE(std::equal(records.bytes.begin(), records.bytes.end(), sent.begin(), sent.end()));
  EXPECT_EQ(wire::record_batch(records.bytes).validate(), wire::batch_error::ok);
  EXPECT_EQ(server_.requests.at(0).decode<wire::fetch_request>().replica_state.replica_id, 7);
}

TEST_F(broker_client_test, a_response_over_the_cap_breaks_the_connection_and_fails_the_call) {
  broker_client client(io_.get_executor(), clock_, config(server_.port()));
  server_.on_request = [&](const request_seen& r) {
    if (server_.requests.size() == 2) {
      // 4097 bytes promised against a cap of 4096: the client must not wait for them.
      const std::array<uint8_t, 8> oversized = {0, 0, 0x10, 0x01, 0, 0, 0, 0};
      server_.write_raw(r.connection, oversized);
    } else if (server_.requests.size() == 3) {
      server_.answer(r, versions_marked(3));
    }
  };
  auto first = spawn(io_, client.call(wire::api_versions_request{}, 3));
  auto second = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return *first && *second; }));
  EXPECT_EQ((*first)->error, broker_client_errc::response_too_large);
  EXPECT_EQ((*second)->error, broker_client_errc::disconnected);
  EXPECT_FALSE(client.connected());

  // The next call connects again.
  auto third = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return third->has_value(); }));
  ASSERT_FALSE((*third)->error) << (*third)->error.message();
  EXPECT_EQ((*third)->body, versions_marked(3));
  EXPECT_EQ(server_.accepted(), 2u);
}

TEST_F(broker_client_test, a_closed_connection_fails_the_calls_in_flight_and_the_next_reconnects) {
  broker_client client(io_.get_executor(), clock_, config(server_.port()));
  server_.on_request = [&](const request_seen& r) {
    if (r.connection == 0 && server_.requests.size() == 2) server_.close(0);
    if (r.connection == 1) server_.answer(r, versions_marked(4));
  };
  auto a = spawn(io_, client.call(wire::api_versions_request{}, 3));
  auto b = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return *a && *b; }));
  EXPECT_EQ((*a)->error, broker_client_errc::disconnected);
  EXPECT_EQ((*b)->error, broker_client_errc::disconnected);
  EXPECT_FALSE(client.last_failure().empty());

  auto c = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return c->has_value(); }));
  ASSERT_FALSE((*c)->error) << (*c)->error.message();
  EXPECT_EQ((*c)->body, versions_marked(4));
  EXPECT_EQ(server_.accepted(), 2u);
  EXPECT_TRUE(client.connected());
}

TEST_F(broker_client_test, an_unanswered_call_times_out) {
  broker_client client(io_.get_executor(), clock_, config(server_.port()));
  auto a = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return server_.requests.size() == 1; }));
  clock_.advance(2999ms);
  run_for(50ms);
  EXPECT_FALSE(a->has_value());
  clock_.advance(1ms);
  ASSERT_TRUE(run_until([&] { return a->has_value(); }));
  EXPECT_EQ((*a)->error, broker_client_errc::request_timed_out);
  // A late answer would be taken for the next request's: the connection went with the call.
  EXPECT_FALSE(client.connected());
  server_.on_request = [&](const request_seen& r) { server_.answer(r, versions_marked(5)); };
  auto b = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return b->has_value(); }));
  EXPECT_FALSE((*b)->error);
  EXPECT_EQ(server_.accepted(), 2u);
}

TEST_F(broker_client_test, failed_connects_back_off) {
  broker_client_config c = config(server_.port());
  c.reconnect_backoff = 100ms;
  c.reconnect_backoff_max = 150ms;
  server_.shut();  // nobody listens on the port any more
  broker_client client(io_.get_executor(), clock_, c);
  auto a = spawn(io_, client.call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return a->has_value(); }));
  EXPECT_EQ((*a)->error, broker_client_errc::connect_failed);
  EXPECT_NE(client.last_failure().find("cannot connect"), std::string::npos);

  // The next attempt waits out the back-off: 100 ms, then 150 ms (doubled, capped).
  auto b = spawn(io_, client.call(wire::api_versions_request{}, 3));
  run_for(50ms);
  EXPECT_FALSE(b->has_value());
  clock_.advance(100ms);
  ASSERT_TRUE(run_until([&] { return b->has_value(); }));
  EXPECT_EQ((*b)->error, broker_client_errc::connect_failed);
  auto d = spawn(io_, client.call(wire::api_versions_request{}, 3));
  run_for(20ms);  // the call starts and waits
  clock_.advance(149ms);
  run_for(50ms);
  EXPECT_FALSE(d->has_value());
  clock_.advance(1ms);
  ASSERT_TRUE(run_until([&] { return d->has_value(); }));
  EXPECT_EQ((*d)->error, broker_client_errc::connect_failed);
}

TEST_F(broker_client_test, close_fails_calls_in_flight_and_later_ones) {
  auto client = std::make_unique<broker_client>(io_.get_executor(), clock_, config(server_.port()));
  auto a = spawn(io_, client->call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return server_.requests.size() == 1; }));
  client->close();
  ASSERT_TRUE(run_until([&] { return a->has_value(); }));
  EXPECT_EQ((*a)->error, broker_client_errc::closed);
  auto b = spawn(io_, client->call(wire::api_versions_request{}, 3));
  ASSERT_TRUE(run_until([&] { return b->has_value(); }));
  EXPECT_EQ((*b)->error, broker_client_errc::closed);
  // A call may outlive its client.
  auto c = spawn(io_, client->call(wire::api_versions_request{}, 3));
  client.reset();
  ASSERT_TRUE(run_until([&] { return c->has_value(); }));
  EXPECT_EQ((*c)->error, broker_client_errc::closed);
  EXPECT_EQ(server_.accepted(), 1u);
}

TEST_F(broker_client_test, a_version_outside_the_message_range_is_refused) {
  broker_client client(io_.get_executor(), clock_, config(server_.port()));
  auto a = spawn(io_, client.call(wire::api_versions_request{}, 99));
  ASSERT_TRUE(run_until([&] { return a->has_value(); }));
  EXPECT_EQ((*a)->error, broker_client_errc::unsupported_request);
  EXPECT_EQ(server_.accepted(), 0u);
}

}  // namespace
}  // namespace sluice::server::cluster

// replica_fetcher against a fake leader on 127.0.0.1 (the generated codec both ways: it decodes
// ApiVersions and Fetch requests and answers from in-memory logs of real record batches, with a
// KIP-227 session of its own) and an in-memory sink. Real sockets; the fetcher's back-off and the
// client's deadlines on a manual clock, moved by hand.

#include "server/cluster/replica_fetcher.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "server/fetch_sessions.h"
#include "server/tests/manual_clock.h"
#include "server/tests/metadata_store_contract.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/api_versions_request.h"
#include "wire/generated/api_versions_response.h"
#include "wire/generated/fetch_request.h"
#include "wire/generated/fetch_response.h"
#include "wire/generated/request_header.h"
#include "wire/generated/response_header.h"
#include "wire/record_batch.h"

namespace sluice::server::cluster {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using wire::error_code;
using bytes = std::vector<uint8_t>;

wire::uuid topic_id(uint8_t n) {
  wire::uuid id{};
  id[15] = n;
  return id;
}

const topic_partition_id tp0{topic_id(1), 0};
const topic_partition_id tp1{topic_id(2), 0};

// A batch of `count` records at `base_offset`, written in `epoch`.
bytes make_batch(int64_t base_offset, int32_t epoch, int count) {
  std::vector<bytes> values;
  std::vector<wire::record_to_build> records;
  for (int i = 0; i < count; ++i)
    values.push_back(bytes(100, static_cast<uint8_t>('a' + i)));
  for (const bytes& v : values) {
    auto& r = records.emplace_back();
    r.timestamp = 1000 + base_offset;
    r.value = v;
  }
  return wire::build_record_batch({.base_offset = base_offset, .partition_leader_epoch = epoch},
                                  records);
}

wire::fetch_response::epoch_end_offset epoch_end(int32_t epoch, int64_t end_offset) {
  wire::fetch_response::epoch_end_offset e;
  e.epoch = epoch;
  e.end_offset = end_offset;
  return e;
}

int64_t next_offset(const bytes& batch) {
  return wire::record_batch(batch).next_offset();
}

// ---- the follower's logs -------------------------------------------------------------------

struct memory_log {
  std::vector<bytes> batches;
  int64_t log_start = 0;
  int64_t log_end = 0;
  int32_t last_epoch = -1;
  int32_t leader_epoch = 5;
  int64_t high_watermark = 0;

  void add(bytes batch) {
    wire::record_batch b(batch);
    log_end = b.next_offset();
    last_epoch = b.partition_leader_epoch();
    batches.push_back(std::move(batch));
  }
  replica_sink::position position() const { return {log_end, last_epoch, leader_epoch, log_start}; }
};

class memory_sink final : public replica_sink {
 public:
  struct append_call {
    topic_partition_id tp;
    bytes batches;
    int64_t high_watermark;
    int64_t log_start;
  };

  std::map<topic_partition_id, memory_log> logs;
  std::vector<append_call> appends;
  std::vector<std::pair<topic_partition_id, int64_t>> truncations;
  std::vector<std::pair<topic_partition_id, int64_t>> resets;
  std::vector<std::pair<topic_partition_id, error_code>> errors;

  std::optional<position> fetch_position(topic_partition_id tp) override {
    auto it = logs.find(tp);
    if (it == logs.end()) return std::nullopt;
    return it->second.position();
  }

  asio::awaitable<std::error_code> append(topic_partition_id tp, std::span<const uint8_t> batches,
                                          int64_t high_watermark, int64_t log_start) override {
    appends.push_back({tp, bytes(batches.begin(), batches.end()), high_watermark, log_start});
    memory_log& log = logs.at(tp);
    wire::batch_reader reader(batches);
    while (auto batch = reader.next()) {
      EXPECT_EQ(batch->base_offset(), log.log_end) << "appended out of order";
      EXPECT_EQ(batch->validate(false), wire::batch_error::ok);
      log.add(bytes(batch->bytes().begin(), batch->bytes().end()));
    }
    EXPECT_EQ(reader.error(), wire::batch_error::ok) << "a partial batch was handed over";
    log.high_watermark = high_watermark;
    co_return std::error_code();
  }

  asio::awaitable<std::error_code> truncate(topic_partition_id tp, int64_t offset) override {
    truncations.emplace_back(tp, offset);
    memory_log& log = logs.at(tp);
    std::vector<bytes> kept;
    for (bytes& b : log.batches) {
      if (wire::record_batch(b).base_offset() < offset) kept.push_back(std::move(b));
    }
    log.batches = std::move(kept);
    log.log_end = offset;
    log.last_epoch =
        log.batches.empty() ? -1 : wire::record_batch(log.batches.back()).partition_leader_epoch();
    co_return std::error_code();
  }

  asio::awaitable<std::error_code> reset_to(topic_partition_id tp, int64_t offset) override {
    resets.emplace_back(tp, offset);
    memory_log& log = logs.at(tp);
    log.batches.clear();
    log.log_start = log.log_end = offset;
    log.last_epoch = -1;
    co_return std::error_code();
  }

  void partition_error(topic_partition_id tp, error_code error) override {
    errors.emplace_back(tp, error);
  }
};

// ---- the leader ----------------------------------------------------------------------------

struct leader_partition {
  std::vector<bytes> batches;  // consecutive, from log_start
  int64_t log_start = 0;
  std::optional<error_code> error;  // answered instead of data while set
  std::optional<wire::fetch_response::epoch_end_offset> diverging;  // answered once
  size_t cut = 0;  // the next answer with records loses this many bytes at its end

  int64_t log_end() const { return batches.empty() ? log_start : next_offset(batches.back()); }
};

struct fetch_seen {
  size_t connection;
  int16_t version;
  wire::fetch_request request;

  // The partitions it names, with their fetch state.
  std::map<topic_partition_id, wire::fetch_request::fetch_partition> partitions() const {
    std::map<topic_partition_id, wire::fetch_request::fetch_partition> out;
    for (const auto& t : request.topics)
      for (const auto& p : t.partitions)
        out[{t.topic_id, p.partition}] = p;
    return out;
  }
  std::set<topic_partition_id> forgotten() const {
    std::set<topic_partition_id> out;
    for (const auto& t : request.forgotten_topics_data)
      for (int32_t p : t.partitions)
        out.insert({t.topic_id, p});
    return out;
  }
  bool full() const { return request.session_epoch == 0; }
};

class fake_leader {
 public:
  explicit fake_leader(asio::io_context& io)
      : io_(io), acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
    asio::co_spawn(io_, accept_loop(), asio::detached);
  }
  ~fake_leader() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    for (auto& s : sockets_)
      s->close(ignored);
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  size_t accepted() const { return sockets_.size(); }

  std::map<topic_partition_id, leader_partition> partitions;
  std::vector<fetch_seen> fetches;
  size_t api_versions_requests = 0;
  bool close_on_next_fetch = false;
  // Fetches answered before the leader holds the next one; -1: no limit.
  int fetch_answers_left = -1;
  std::optional<error_code> next_top_level_error;
  int32_t session_id = 0;

 private:
  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      sockets_.push_back(std::make_shared<tcp::socket>(std::move(s)));
      asio::co_spawn(io_, serve(sockets_.back(), sockets_.size() - 1), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<tcp::socket> s, size_t index) {
    asio::steady_timer pause(io_);
    for (;;) {
      boost::system::error_code ec;
      std::array<uint8_t, 4> size_bytes;
      co_await asio::async_read(*s, asio::buffer(size_bytes),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
      bytes frame(uint32_t{size_bytes[0]} << 24 | uint32_t{size_bytes[1]} << 16 |
                  uint32_t{size_bytes[2]} << 8 | size_bytes[3]);
      co_await asio::async_read(*s, asio::buffer(frame),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec || frame.size() < 4) co_return;
      const auto key = static_cast<int16_t>(frame[0] << 8 | frame[1]);
      const auto version = static_cast<int16_t>(frame[2] << 8 | frame[3]);
      wire::reader r(frame);
      wire::request_header header;
      EXPECT_TRUE(header.decode(r, wire::request_header_version(key, version)));
      EXPECT_EQ(header.client_id, "sluice-broker-3");
      wire::frame out;
      bool quiet = false;
      if (key == wire::api_versions_request::api_key) {
        ++api_versions_requests;
        wire::api_versions_request request;
        EXPECT_TRUE(request.decode(r, version));
        wire::api_versions_response response;
        for (auto [key, min, max] : {std::array<int16_t, 3>{1, 4, 17}, {18, 0, 4}}) {
          auto& api = response.api_keys.emplace_back();
          api.api_key = key;
          api.min_version = min;
          api.max_version = max;
        }
        encode(out, header, version, response);
      } else if (key == wire::fetch_request::api_key) {
        fetch_seen seen{index, version, {}};
        EXPECT_TRUE(seen.request.decode(r, version));
        fetches.push_back(seen);
        if (close_on_next_fetch) {
          close_on_next_fetch = false;
          s->close(ec);
          co_return;
        }
        while (fetch_answers_left == 0 && s->is_open()) {
          pause.expires_after(1ms);
          co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        }
        if (fetch_answers_left > 0) --fetch_answers_left;
        std::deque<bytes> held;  // what the response's records point into
        wire::fetch_response response = fetch(seen.request, held);
        quiet = response.responses.empty();
        encode(out, header, version, response);
      } else {
        ADD_FAILURE() << "unexpected API " << key;
        co_return;
      }
      // Nothing to say: wait a little, as a long poll would, so that the fetcher does not spin.
      if (quiet) {
        pause.expires_after(5ms);
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      co_await asio::async_write(*s, asio::buffer(out.bytes),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;
    }
  }

  template <class Resp>
  static void encode(wire::frame& out, const wire::request_header& header, int16_t version,
                     const Resp& body) {
    out.bytes.reserve(256);
    {
      wire::writer w(out);
      w.i32(0);
      wire::response_header rh;
      rh.correlation_id = header.correlation_id;
      rh.encode(w, wire::response_header_version(header.request_api_key, version));
      body.encode(w, version);
    }
    const auto size = static_cast<uint32_t>(out.bytes.size() - 4);
    for (int i = 0; i < 4; ++i)
      out.bytes[i] = static_cast<uint8_t>(size >> (24 - 8 * i));
  }

  wire::fetch_response fetch(const wire::fetch_request& request, std::deque<bytes>& held) {
    wire::fetch_response response;
    if (next_top_level_error) {
      response.error_code = static_cast<int16_t>(*next_top_level_error);
      next_top_level_error.reset();
      return response;
    }
    const bool full = request.session_epoch == 0;
    if (full) {
      session_.clear();
      session_id = ++sessions_created_ + 100;
      session_epoch_ = 1;
    } else if (request.session_id != session_id) {
      response.error_code = static_cast<int16_t>(error_code::fetch_session_id_not_found);
      return response;
    } else if (request.session_epoch != session_epoch_) {
      response.error_code = static_cast<int16_t>(error_code::invalid_fetch_session_epoch);
      return response;
    } else {
      session_epoch_ = next_session_epoch(session_epoch_);
    }
    response.session_id = session_id;
    for (const auto& t : request.topics)
      for (const auto& p : t.partitions)
        session_[{t.topic_id, p.partition}] = p;
    for (const auto& t : request.forgotten_topics_data)
      for (int32_t p : t.partitions)
        session_.erase({t.topic_id, p});

    for (const auto& [tp, asked] : session_) {
      wire::fetch_response::partition_data data;
      data.partition_index = tp.partition;
      auto it = partitions.find(tp);
      bool news = full;
      if (it == partitions.end()) {
        data.error_code = static_cast<int16_t>(error_code::unknown_topic_id);
        news = true;
      } else {
        leader_partition& lp = it->second;
        data.high_watermark = lp.log_end();
        data.log_start_offset = lp.log_start;
        if (lp.error) {
          data.error_code = static_cast<int16_t>(*lp.error);
          news = true;
        } else if (lp.diverging) {
          data.diverging_epoch = *lp.diverging;
          lp.diverging.reset();
          news = true;
        } else if (asked.fetch_offset < lp.log_start || asked.fetch_offset > lp.log_end()) {
          data.error_code = static_cast<int16_t>(error_code::offset_out_of_range);
          news = true;
        } else {
          bytes& out = held.emplace_back();
          for (const bytes& b : lp.batches) {
            if (wire::record_batch(b).base_offset() < asked.fetch_offset) continue;
            if (!out.empty() &&
                out.size() + b.size() > static_cast<size_t>(asked.partition_max_bytes))
              break;
            out.insert(out.end(), b.begin(), b.end());
          }
          if (!out.empty() && lp.cut > 0) {
            out.resize(out.size() - std::min(lp.cut, out.size() - 1));
            lp.cut = 0;
          }
          data.records.bytes = out;
          news = news || !out.empty() || sent_high_watermark_[tp] != data.high_watermark;
        }
        sent_high_watermark_[tp] = data.high_watermark;
      }
      if (!news) continue;
      auto topic = std::find_if(response.responses.begin(), response.responses.end(),
                                [&](const auto& r) { return r.topic_id == tp.topic_id; });
      if (topic == response.responses.end()) {
        topic = response.responses.emplace(response.responses.end());
        topic->topic_id = tp.topic_id;
      }
      topic->partitions.push_back(std::move(data));
    }
    return response;
  }

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::map<topic_partition_id, wire::fetch_request::fetch_partition> session_;
  std::map<topic_partition_id, int64_t> sent_high_watermark_;
  int32_t session_epoch_ = 0;
  int32_t sessions_created_ = 0;
};

// ---- the tests -----------------------------------------------------------------------------

class replica_fetcher_test : public ::testing::Test {
 protected:
  // Real time, bounded: the sockets are real.
  bool run_until(const std::function<bool()>& done) {
    return coordination::testing::run_until(io_, done, 5s);
  }
  void run_for(std::chrono::milliseconds d) { coordination::testing::run_for(io_, d); }

  replica_fetcher_test() {
    config_.local_node_id = 3;
    config_.broker_epoch = 42;
    config_.leader_id = 1;
    config_.client.host = "127.0.0.1";
    config_.client.port = leader_.port();
    config_.client.max_response_bytes = 1024 * 1024;
    config_.backoff = 1000ms;
  }

  // Made on first use, from config_ as the test left it.
  replica_fetcher& fetcher() {
    if (!fetcher_) {
      fetcher_ = std::make_unique<replica_fetcher>(io_.get_executor(), clock_, sink_, config_);
    }
    return *fetcher_;
  }

  // Follows `tps` from the sink's current logs, and starts.
  void follow(const std::vector<topic_partition_id>& tps) {
    std::vector<partition_to_fetch> add;
    for (const auto& tp : tps)
      add.push_back({tp, tp == tp0 ? "orders" : "audit", sink_.logs.at(tp).position()});
    fetcher().add_partitions(std::move(add));
    fetcher().start();
  }

  // The last fetch that named `tp`, if any.
  const fetch_seen* last_naming(const topic_partition_id& tp) const {
    for (auto it = leader_.fetches.rbegin(); it != leader_.fetches.rend(); ++it)
      if (it->partitions().contains(tp)) return &*it;
    return nullptr;
  }

  testing::manual_clock clock_;
  asio::io_context io_;
  fake_leader leader_{io_};
  memory_sink sink_;
  replica_fetcher_config config_;
  std::unique_ptr<replica_fetcher> fetcher_;
};

TEST_F(replica_fetcher_test, a_full_fetch_then_incremental_ones_name_only_what_changed) {
  const bytes b0 = make_batch(0, 5, 2), b1 = make_batch(2, 5, 3);
  leader_.partitions[tp0].batches = {b0, b1};
  leader_.partitions[tp1];
  sink_.logs[tp0];
  sink_.logs[tp1];
  follow({tp0, tp1});
  ASSERT_TRUE(
      run_until([&] { return sink_.logs[tp0].log_end == 5 && leader_.fetches.size() >= 3; }));

  EXPECT_EQ(leader_.api_versions_requests, 1u);
  EXPECT_EQ(fetcher().fetch_version(), 16);  // the leader serves up to 17; the fetcher speaks 16
  const fetch_seen& first = leader_.fetches[0];
  EXPECT_EQ(first.version, 16);
  EXPECT_TRUE(first.full());
  EXPECT_EQ(first.request.session_id, 0);
  EXPECT_EQ(first.request.replica_state.replica_id, 3);
  EXPECT_EQ(first.request.replica_state.replica_epoch, 42);
  EXPECT_EQ(first.request.max_wait_ms, 500);
  EXPECT_EQ(first.request.min_bytes, 1);
  EXPECT_EQ(first.request.max_bytes, 10 * 1024 * 1024);
  EXPECT_EQ(first.request.isolation_level, 0);
  auto named = first.partitions();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[tp0].fetch_offset, 0);
  EXPECT_EQ(named[tp0].current_leader_epoch, 5);
  EXPECT_EQ(named[tp0].last_fetched_epoch, -1);
  EXPECT_EQ(named[tp0].log_start_offset, 0);
  EXPECT_EQ(named[tp0].partition_max_bytes, 1024 * 1024);

  // The first answer brought both batches; the second fetch is incremental and names only the
  // partition whose position moved.
  const fetch_seen& second = leader_.fetches[1];
  EXPECT_FALSE(second.full());
  EXPECT_EQ(second.request.session_id, leader_.session_id);
  EXPECT_EQ(second.request.session_epoch, 1);
  named = second.partitions();
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[tp0].fetch_offset, 5);
  EXPECT_EQ(named[tp0].last_fetched_epoch, 5);
  EXPECT_TRUE(second.forgotten().empty());
  // Nothing changed since: the next names nothing, and the session's epoch moves on.
  EXPECT_TRUE(leader_.fetches[2].partitions().empty());
  EXPECT_EQ(leader_.fetches[2].request.session_epoch, 2);
  EXPECT_EQ(sink_.logs[tp0].batches, (std::vector<bytes>{b0, b1}));
  EXPECT_EQ(sink_.logs[tp0].high_watermark, 5);

  // New data on the other partition comes through the session without the fetcher naming it.
  const bytes c0 = make_batch(0, 5, 1);
  leader_.partitions[tp1].batches = {c0};
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp1].log_end == 1; }));
  EXPECT_EQ(sink_.logs[tp1].batches, std::vector<bytes>{c0});
  // Its position moved, so the next fetch names it.
  ASSERT_TRUE(run_until([&] {
    const fetch_seen* f = last_naming(tp1);
    return f != nullptr && f->partitions().at(tp1).fetch_offset == 1;
  }));
  EXPECT_FALSE(last_naming(tp1)->full());
  EXPECT_EQ(std::count_if(leader_.fetches.begin(), leader_.fetches.end(),
                          [](const fetch_seen& f) { return f.full(); }),
            1);
  EXPECT_TRUE(sink_.errors.empty());
}

TEST_F(replica_fetcher_test, a_partial_trailing_batch_is_cut_off) {
  const bytes b0 = make_batch(0, 5, 3), b1 = make_batch(3, 5, 3);
  leader_.partitions[tp0].batches = {b0, b1};
  leader_.partitions[tp0].cut = 10;  // the first answer ends 10 bytes short of b1's end
  sink_.logs[tp0];
  follow({tp0});
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp0].log_end == 6; }));

  std::vector<bytes> appended;
  for (const auto& a : sink_.appends)
    if (!a.batches.empty()) appended.push_back(a.batches);
  ASSERT_EQ(appended.size(), 2u);
  EXPECT_EQ(appended[0], b0);  // b1's head was dropped, not handed over
  EXPECT_EQ(appended[1], b1);
  EXPECT_EQ(sink_.logs[tp0].batches, (std::vector<bytes>{b0, b1}));
  EXPECT_EQ(leader_.fetches.at(1).partitions().at(tp0).fetch_offset, 3);
}

TEST_F(replica_fetcher_test, a_diverging_epoch_truncates_then_fetches_from_the_new_end) {
  // The follower wrote offsets 3-5 in epoch 2, which the leader never had: the leader's epoch 1
  // ends at 3 and its epoch 3 starts there.
  const bytes shared = make_batch(0, 1, 3);
  sink_.logs[tp0].add(shared);
  sink_.logs[tp0].add(make_batch(3, 2, 3));
  const bytes l1 = make_batch(3, 3, 2);
  leader_.partitions[tp0].batches = {shared, l1};
  leader_.partitions[tp0].diverging = epoch_end(1, 3);
  // Here the leader's epoch ends past the local log end: truncation stops at the local end.
  sink_.logs[tp1].add(make_batch(0, 1, 2));
  leader_.partitions[tp1].batches = {make_batch(0, 1, 2), make_batch(2, 1, 2)};
  leader_.partitions[tp1].diverging = epoch_end(1, 4);
  follow({tp0, tp1});
  ASSERT_TRUE(
      run_until([&] { return sink_.logs[tp0].log_end == 5 && sink_.logs[tp1].log_end == 4; }));

  EXPECT_EQ(sink_.truncations,
            (std::vector<std::pair<topic_partition_id, int64_t>>{{tp0, 3}, {tp1, 2}}));
  const auto first = leader_.fetches.at(0).partitions();
  EXPECT_EQ(first.at(tp0).fetch_offset, 6);
  EXPECT_EQ(first.at(tp0).last_fetched_epoch, 2);
  // The next fetch asks from the truncated end, with the epoch of the last batch left.
  const auto second = leader_.fetches.at(1).partitions();
  EXPECT_EQ(second.at(tp0).fetch_offset, 3);
  EXPECT_EQ(second.at(tp0).last_fetched_epoch, 1);
  EXPECT_EQ(sink_.logs[tp0].batches, (std::vector<bytes>{shared, l1}));
  EXPECT_EQ(sink_.logs[tp0].last_epoch, 3);
  EXPECT_TRUE(sink_.errors.empty());
}

TEST_F(replica_fetcher_test, a_partition_error_stops_that_partition_only) {
  leader_.partitions[tp0].batches = {make_batch(0, 5, 2)};
  leader_.partitions[tp1].error = error_code::not_leader_or_follower;
  sink_.logs[tp0];
  sink_.logs[tp1];
  follow({tp0, tp1});
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp0].log_end == 2 && !sink_.errors.empty(); }));
  EXPECT_EQ(sink_.errors, (std::vector<std::pair<topic_partition_id, error_code>>{
                              {tp1, error_code::not_leader_or_follower}}));
  EXPECT_EQ(fetcher().partition_count(), 1u);

  // The other partition goes on; the stopped one is forgotten by the session and never asked for.
  const size_t before = leader_.fetches.size();
  leader_.partitions[tp0].batches.push_back(make_batch(2, 5, 2));
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp0].log_end == 4; }));
  bool forgotten = false;
  for (const fetch_seen& f : leader_.fetches)
    forgotten = forgotten || f.forgotten().contains(tp1);
  EXPECT_TRUE(forgotten);
  for (size_t i = before; i < leader_.fetches.size(); ++i)
    EXPECT_FALSE(leader_.fetches[i].partitions().contains(tp1));
  EXPECT_EQ(sink_.errors.size(), 1u);

  // Set again, it is fetched again.
  leader_.partitions[tp1].error.reset();
  leader_.partitions[tp1].batches = {make_batch(0, 5, 1)};
  fetcher().add_partitions({{tp1, "audit", sink_.logs[tp1].position()}});
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp1].log_end == 1; }));
  EXPECT_EQ(fetcher().partition_count(), 2u);
}

TEST_F(replica_fetcher_test, out_of_range_below_the_leader_log_start_starts_the_log_again) {
  sink_.logs[tp0].add(make_batch(0, 1, 2));
  leader_.partitions[tp0].log_start = 10;
  leader_.partitions[tp0].batches = {make_batch(10, 5, 2)};
  // Past the leader's log end instead: not the simple case, the replica manager decides.
  sink_.logs[tp1].add(make_batch(0, 1, 7));
  leader_.partitions[tp1].batches = {make_batch(0, 1, 3)};
  follow({tp0, tp1});
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp0].log_end == 12 && !sink_.errors.empty(); }));
  EXPECT_EQ(sink_.resets, (std::vector<std::pair<topic_partition_id, int64_t>>{{tp0, 10}}));
  EXPECT_EQ(sink_.logs[tp0].log_start, 10);
  EXPECT_EQ(sink_.errors, (std::vector<std::pair<topic_partition_id, error_code>>{
                              {tp1, error_code::offset_out_of_range}}));
  EXPECT_EQ(sink_.logs[tp1].log_end, 7);
}

TEST_F(replica_fetcher_test, a_lost_connection_backs_off_then_fetches_in_full_again) {
  leader_.partitions[tp0].batches = {make_batch(0, 5, 2)};
  sink_.logs[tp0];
  follow({tp0});
  ASSERT_TRUE(
      run_until([&] { return sink_.logs[tp0].log_end == 2 && leader_.fetches.size() >= 3; }));
  const int32_t old_session = leader_.session_id;

  leader_.close_on_next_fetch = true;
  ASSERT_TRUE(run_until([&] { return !leader_.close_on_next_fetch; }));
  const size_t fetches = leader_.fetches.size();
  run_for(200ms);
  // No new connection before replica.fetch.backoff.ms has passed.
  EXPECT_EQ(leader_.accepted(), 1u);
  EXPECT_EQ(leader_.fetches.size(), fetches);
  clock_.advance(999ms);
  run_for(50ms);
  EXPECT_EQ(leader_.accepted(), 1u);
  clock_.advance(1ms);
  ASSERT_TRUE(run_until([&] { return leader_.fetches.size() > fetches; }));
  EXPECT_EQ(leader_.accepted(), 2u);
  EXPECT_EQ(leader_.api_versions_requests, 2u);  // asked again on the new connection
  const fetch_seen& again = leader_.fetches[fetches];
  EXPECT_EQ(again.connection, 1u);
  EXPECT_TRUE(again.full());
  EXPECT_EQ(again.request.session_id, old_session);  // closing the old session
  EXPECT_EQ(again.partitions().at(tp0).fetch_offset, 2);

  leader_.partitions[tp0].batches.push_back(make_batch(2, 5, 1));
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp0].log_end == 3; }));
}

TEST_F(replica_fetcher_test, session_errors_go_back_to_a_full_fetch_at_once) {
  leader_.partitions[tp0].batches = {make_batch(0, 5, 2)};
  sink_.logs[tp0];
  follow({tp0});
  ASSERT_TRUE(run_until([&] { return leader_.fetches.size() >= 3; }));

  const int32_t first_session = leader_.session_id;
  size_t at = leader_.fetches.size();
  leader_.next_top_level_error = error_code::invalid_fetch_session_epoch;
  ASSERT_TRUE(run_until([&] { return leader_.fetches.size() >= at + 2; }));
  EXPECT_TRUE(leader_.fetches[at + 1].full());
  EXPECT_EQ(leader_.fetches[at + 1].request.session_id, first_session);

  at = leader_.fetches.size();
  leader_.next_top_level_error = error_code::fetch_session_id_not_found;
  ASSERT_TRUE(run_until([&] { return leader_.fetches.size() >= at + 2; }));
  EXPECT_TRUE(leader_.fetches[at + 1].full());
  EXPECT_EQ(leader_.fetches[at + 1].request.session_id, 0);
  // No back-off was needed: the clock never moved.
  EXPECT_EQ(clock_.elapsed(), 0ms);
  EXPECT_EQ(leader_.accepted(), 1u);
}

TEST_F(replica_fetcher_test, removed_partitions_are_forgotten_and_stop_ends_fetching) {
  leader_.partitions[tp0].batches = {make_batch(0, 5, 2)};
  leader_.partitions[tp1].batches = {make_batch(0, 5, 2)};
  sink_.logs[tp0];
  sink_.logs[tp1];
  follow({tp0, tp1});
  ASSERT_TRUE(run_until([&] { return sink_.logs[tp1].log_end == 2; }));
  fetcher().remove_partitions({tp1});
  const size_t at = leader_.fetches.size();
  ASSERT_TRUE(run_until([&] {
    for (size_t i = at; i < leader_.fetches.size(); ++i)
      if (leader_.fetches[i].forgotten().contains(tp1)) return true;
    return false;
  }));
  leader_.partitions[tp1].batches.push_back(make_batch(2, 5, 2));
  run_for(50ms);
  EXPECT_EQ(sink_.logs[tp1].log_end, 2);

  EXPECT_TRUE(fetcher().running());
  fetcher().stop();
  EXPECT_FALSE(fetcher().running());
  run_for(20ms);
  const size_t stopped_at = leader_.fetches.size();
  const size_t appends = sink_.appends.size();
  leader_.partitions[tp0].batches.push_back(make_batch(2, 5, 2));
  run_for(100ms);
  EXPECT_EQ(leader_.fetches.size(), stopped_at);
  EXPECT_EQ(sink_.appends.size(), appends);
  EXPECT_EQ(sink_.logs[tp0].log_end, 2);
}

TEST_F(replica_fetcher_test, catch_up_progress_is_logged_while_lagging) {
  for (int64_t offset = 0; offset < 4; ++offset)
    leader_.partitions[tp0].batches.push_back(make_batch(offset, 5, 1));
  sink_.logs[tp0];
  config_.partition_max_bytes = 1;  // one batch per fetch
  config_.progress_interval = 10s;
  leader_.fetch_answers_left = 1;
  ::testing::internal::CaptureStderr();
  follow({tp0});
  const bool first = run_until([&] { return sink_.logs[tp0].log_end == 1; });
  // Ten seconds behind the high watermark: the next answer says how far.
  clock_.advance(10s);
  leader_.fetch_answers_left = 1;
  const bool second = run_until([&] { return sink_.logs[tp0].log_end == 2; });
  leader_.fetch_answers_left = -1;
  const bool rest = run_until([&] { return sink_.logs[tp0].log_end == 4; });
  const std::string log = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(first && second && rest) << log;

  const std::string progress =
      "replica fetcher for leader broker 1: orders-0: 2 offsets behind the leader's high "
      "watermark 4 (local log end 2); " +
      std::to_string(2 * leader_.partitions[tp0].batches[0].size()) +
      " bytes fetched in the last 10000 ms";
  EXPECT_NE(log.find(progress), std::string::npos) << log;
  EXPECT_EQ(log.find("offsets behind"), log.rfind("offsets behind")) << "more than one line";
  EXPECT_NE(log.find("orders-0: caught up with the leader at offset 4"), std::string::npos) << log;
}

}  // namespace
}  // namespace sluice::server::cluster

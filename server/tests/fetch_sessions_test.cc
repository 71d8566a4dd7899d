// The fetch session cache on its own: which session a full cache gives up for a new one (Kafka's
// FetchSessionCache.tryEvict), and what an incremental response keeps.

#include "server/fetch_sessions.h"

#include <gtest/gtest.h>

namespace sluice::server {
namespace {

constexpr int64_t minute = 60'000;

// Creates a session and gives it `partitions` partitions, as the fetch handler does.
fetch_session* create(fetch_session_cache& cache, bool privileged, size_t partitions,
                      int64_t now_ms) {
  fetch_session* s = cache.create(privileged, false, partitions, now_ms);
  if (s == nullptr) return nullptr;
  // Built whole and then moved in: assigning a literal to an emplaced element's string trips
  // GCC 12's -Wrestrict false positive at -O3.
  wire::fetch_request::fetch_topic t;
  t.topic = std::string(1, 't');
  for (size_t p = 0; p < partitions; ++p)
    t.partitions.emplace_back().partition = static_cast<int32_t>(p);
  wire::fetch_request request;
  request.topics.push_back(std::move(t));
  s->update(request);
  return s;
}

TEST(fetch_session_cache, a_full_cache_evicts_only_what_kafka_would) {
  fetch_session_cache cache(1);
  fetch_session* consumer = create(cache, /*privileged=*/false, 5, 0);
  ASSERT_NE(consumer, nullptr);
  const int32_t consumer_id = consumer->id();
  // A young session is kept against another consumer, however large.
  EXPECT_EQ(create(cache, false, 50, minute), nullptr);
  EXPECT_NE(cache.find(consumer_id), nullptr);
  // A follower's session takes a consumer's slot at any age.
  fetch_session* follower = create(cache, /*privileged=*/true, 1, minute);
  ASSERT_NE(follower, nullptr);
  EXPECT_EQ(cache.find(consumer_id), nullptr);
  const int32_t follower_id = follower->id();
  // Old enough (created over two minutes ago) but used recently: a consumer is worth less than a
  // follower, so it cannot take the slot...
  follower->advance(3 * minute);
  EXPECT_EQ(create(cache, false, 1000, 3 * minute + 1), nullptr);
  // ...and another follower needs strictly more partitions.
  EXPECT_EQ(create(cache, true, 1, 3 * minute + 1), nullptr);
  fetch_session* bigger = create(cache, true, 2, 3 * minute + 1);
  ASSERT_NE(bigger, nullptr);
  EXPECT_EQ(cache.find(follower_id), nullptr);
  // A session unused for more than two minutes goes to whoever asks.
  EXPECT_NE(create(cache, false, 1, 6 * minute), nullptr);
  EXPECT_EQ(cache.size(), 1u);

  fetch_session_cache off(0);
  EXPECT_EQ(create(off, true, 1, 0), nullptr);
}

TEST(fetch_session, incremental_responses_keep_only_partitions_with_news) {
  fetch_session s(7, false, false, 0);
  wire::fetch_request request;
  auto& t = request.topics.emplace_back();
  t.topic = "t";
  for (int32_t p : {0, 1, 2, 3})
    t.partitions.emplace_back().partition = p;
  s.update(request);
  EXPECT_EQ(s.size(), 4u);

  wire::fetch_response full;
  auto& rt = full.responses.emplace_back();
  rt.topic = "t";
  for (int32_t p : {0, 1, 2, 3}) {
    auto& out = rt.partitions.emplace_back();
    out.partition_index = p;
    out.high_watermark = 10;
    out.log_start_offset = 0;
  }
  s.remember_response(full);

  wire::fetch_response next = full;
  next.responses[0].partitions[1].high_watermark = 11;  // moved
  next.responses[0].partitions[2].error_code = 6;       // an error
  uint8_t byte = 0;
  next.responses[0].partitions[0].records.bytes = std::span<uint8_t>(&byte, 1);  // records
  s.filter_response(next);
  ASSERT_EQ(next.responses.size(), 1u);
  std::vector<int32_t> kept;
  for (const auto& p : next.responses[0].partitions)
    kept.push_back(p.partition_index);
  EXPECT_EQ(kept, (std::vector<int32_t>{0, 1, 2}));

  // Nothing new: nothing sent, and the topic leaves the response too. The partition in error
  // is sent again once the error clears (its high watermark counts as changed).
  wire::fetch_response quiet = full;
  quiet.responses[0].partitions[1].high_watermark = 11;
  s.filter_response(quiet);
  ASSERT_EQ(quiet.responses.size(), 1u);
  ASSERT_EQ(quiet.responses[0].partitions.size(), 1u);
  EXPECT_EQ(quiet.responses[0].partitions[0].partition_index, 2);
  wire::fetch_response silent = full;
  silent.responses[0].partitions[1].high_watermark = 11;
  s.filter_response(silent);
  EXPECT_TRUE(silent.responses.empty());

  // The partition that returned records went to the back of the session's order.
  wire::fetch_request order;
  s.to_request(order);
  std::vector<int32_t> partitions;
  for (const auto& p : order.topics[0].partitions)
    partitions.push_back(p.partition);
  EXPECT_EQ(partitions, (std::vector<int32_t>{1, 2, 3, 0}));

  // Forgotten partitions leave the session.
  wire::fetch_request forget;
  forget.forgotten_topics_data.push_back({"t", {}, {0, 2}, {}});
  s.update(forget);
  EXPECT_EQ(s.size(), 2u);
}

TEST(fetch_session, epochs_wrap_to_one) {
  EXPECT_EQ(next_session_epoch(1), 2);
  EXPECT_EQ(next_session_epoch(INT32_MAX), 1);
}

}  // namespace
}  // namespace sluice::server

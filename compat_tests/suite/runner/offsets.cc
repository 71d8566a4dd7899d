// ListOffsets as clients use it: the earliest and latest offsets, offsets by timestamp, and the
// record with the largest timestamp.

#include <chrono>
#include <string>
#include <vector>

#include "compat_tests/raw_kafka.h"
#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/suite/runner/suite.h"

namespace sluice::compat::suite {
namespace {

using namespace std::chrono_literals;

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Produces one record per timestamp to partition 0, in order, and checks each delivery.
void produce_with_timestamps(context& ctx, const std::string& topic,
                             const std::vector<int64_t>& timestamps) {
  producer p(ctx.bootstrap());
  for (size_t i = 0; i < timestamps.size(); ++i)
    p.produce(topic, 0, std::nullopt, "r" + std::to_string(i), {}, timestamps[i]);
  check(p.flush(ctx.timeout()), "not every record was delivered within the deadline");
  for (const producer::delivery& d : p.deliveries())
    check(d.err == RD_KAFKA_RESP_ERR_NO_ERROR, "a record failed: " + err_name(d.err));
}

// ListOffsets with timestamp -2 (earliest) and -1 (latest) answers the log start offset and the
// high watermark (Kafka's Partition.fetchOffsetForTimestamp): 0 and 0 for an empty partition,
// 0 and N after N records.
void earliest_latest(context& ctx) {
  ctx.require(api::list_offsets, 1);
  std::string topic = ctx.create_topic({}, 1);
  admin& a = ctx.admin_client();
  auto [low0, high0] = watermarks(a.get(), topic, 0);
  check(low0 == 0 && high0 == 0, "empty partition: earliest " + std::to_string(low0) + ", latest " +
                                     std::to_string(high0) + ", expected 0 and 0");
  int64_t t = now_ms();
  produce_with_timestamps(ctx, topic, {t, t, t, t, t, t, t});
  auto [low, high] = watermarks(a.get(), topic, 0);
  check(low == 0 && high == 7, "after 7 records: earliest " + std::to_string(low) + ", latest " +
                                   std::to_string(high) + ", expected 0 and 7");
}

// ListOffsets by timestamp (v1+, KIP-79): the first offset whose timestamp is at or after the
// target; offset -1 when no record is that late (Kafka's LogSegment.findOffsetByTimestamp and
// ListOffsetsResponse.UNKNOWN_OFFSET).
void by_timestamp(context& ctx) {
  ctx.require(api::list_offsets, 1);
  std::string topic = ctx.create_topic({}, 1);
  int64_t base = now_ms() - 60000;
  produce_with_timestamps(ctx, topic, {base, base + 1000, base + 2000, base + 3000, base + 4000});
  struct query {
    int64_t timestamp;
    int64_t expected_offset;
  };
  for (query q : {query{base - 5000, 0}, query{base, 0}, query{base + 1500, 2},
                  query{base + 4000, 4}, query{base + 3600 * 1000, -1}}) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, topic.c_str(), 0)->offset = q.timestamp;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(ctx.admin_client().get(), list, 10000);
    int64_t offset = list->elems[0].offset;
    rd_kafka_resp_err_t perr = list->elems[0].err;
    rd_kafka_topic_partition_list_destroy(list);
    check(err == RD_KAFKA_RESP_ERR_NO_ERROR && perr == RD_KAFKA_RESP_ERR_NO_ERROR,
          "ListOffsets at " + std::to_string(q.timestamp - base) +
              " ms: " + err_name(err ? err : perr));
    check(offset == q.expected_offset, "ListOffsets at base+" + std::to_string(q.timestamp - base) +
                                           " ms answered " + std::to_string(offset) +
                                           ", expected " + std::to_string(q.expected_offset));
  }
}

// Timestamp -3 (v7+, KIP-734): the offset and timestamp of the record with the largest
// timestamp, which need not be the last one. librdkafka 2.0.2 cannot send it, so this speaks the
// protocol itself.
void max_timestamp(context& ctx) {
  ctx.require(api::list_offsets, 7);
  std::string topic = ctx.create_topic({}, 1);
  int64_t base = now_ms() - 60000;
  produce_with_timestamps(ctx, topic, {base, base + 3000, base + 1000, base + 2000});
  auto [host, port] = ctx.leader_address(topic, 0);

  raw_connection conn(host, port);
  check(conn.send(list_offsets_v7_request(7, topic, 0, -3)), "the broker closed the connection");
  bytes payload;
  check(conn.read_frame(payload, ctx.timeout()) == raw_connection::status::ok,
        "no ListOffsets v7 answer");
  std::vector<partition_result> results =
      parse_list_offsets_v7(split_response(payload, /*flexible=*/true).body);
  check(results.size() == 1,
        "ListOffsets answered " + std::to_string(results.size()) + " partitions for 1");
  check(results[0].error_code == 0,
        "ListOffsets error code " + std::to_string(results[0].error_code));
  check(results[0].offset == 1 && results[0].timestamp == base + 3000,
        "max timestamp answered offset " + std::to_string(results[0].offset) + " at base+" +
            std::to_string(results[0].timestamp - base) + " ms, expected offset 1 at base+3000");
}

}  // namespace

void add_offsets_scenarios(std::vector<scenario>& out) {
  out.push_back({"rdkafka", "list_offsets.earliest_latest", earliest_latest});
  out.push_back({"rdkafka", "list_offsets.by_timestamp", by_timestamp});
  out.push_back({"raw", "list_offsets.max_timestamp", max_timestamp});
}

}  // namespace sluice::compat::suite

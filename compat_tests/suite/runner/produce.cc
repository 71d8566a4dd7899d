// Produce and consume through librdkafka: content round trips exactly, for every codec, and the
// idempotent producer delivers each record once.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compat_tests/rdkafka_helpers.h"
#include "compat_tests/suite/runner/suite.h"

namespace sluice::compat::suite {
namespace {

using namespace std::chrono_literals;

struct record {
  std::optional<std::string> key;
  std::optional<std::string> value;
  std::vector<header> headers;
};

std::string describe(const std::optional<std::string>& s) {
  if (!s) return "null";
  if (s->size() > 40) return "<" + std::to_string(s->size()) + " bytes>";
  return "\"" + *s + "\"";
}

// Produces `records` to partition 0 of `topic`, one at a time in order, and checks that every
// delivery report is a success at consecutive offsets from 0.
void produce_all(context& ctx, const std::string& topic, const std::vector<record>& records,
                 const std::map<std::string, std::string>& settings = {}) {
  producer p(ctx.bootstrap(), settings);
  std::vector<size_t> ids;
  for (const record& r : records)
    ids.push_back(p.produce(topic, 0, r.key, r.value, r.headers));
  check(p.flush(ctx.timeout()), "not every record was delivered within the deadline");
  for (size_t i = 0; i < ids.size(); ++i) {
    producer::delivery d = p.delivery_of(ids[i]);
    check(d.err == RD_KAFKA_RESP_ERR_NO_ERROR,
          "record " + std::to_string(i) + " failed: " + err_name(d.err));
    check(
        d.offset == static_cast<int64_t>(i),
        "record " + std::to_string(i) + " was acknowledged at offset " + std::to_string(d.offset));
  }
}

// Reads partition 0 from the beginning and checks it holds exactly `records`, in order.
void consume_exactly(context& ctx, const std::string& topic, const std::vector<record>& records) {
  simple_consumer c(ctx.bootstrap(), topic);
  c.start(0, RD_KAFKA_OFFSET_BEGINNING);
  std::vector<message> got = c.consume(records.size(), ctx.timeout());
  check(c.errors().empty(), "consumer error: " + (c.errors().empty() ? "" : c.errors().front()));
  check(got.size() == records.size(), "read " + std::to_string(got.size()) + " of " +
                                          std::to_string(records.size()) + " records");
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string at = "record " + std::to_string(i) + ": ";
    check(got[i].offset == static_cast<int64_t>(i), at + "offset " + std::to_string(got[i].offset));
    check(got[i].key == records[i].key,
          at + "key " + describe(got[i].key) + ", sent " + describe(records[i].key));
    check(got[i].value == records[i].value,
          at + "value " + describe(got[i].value) + ", sent " + describe(records[i].value));
    check(got[i].headers == records[i].headers,
          at + std::to_string(got[i].headers.size()) + " headers differ from the " +
              std::to_string(records[i].headers.size()) + " sent");
  }
}

// Record format v2 (KIP-82 headers, KIP-98 batches; the protocol guide's "Record" section): a
// record carries a nullable key, a nullable value and ordered headers whose keys may repeat and
// whose values may be null. A broker stores them as sent and a consumer reads them back in
// offset order.
void keys_headers(context& ctx) {
  ctx.require(api::produce, 3);  // record format v2 needs Produce v3
  std::string topic = ctx.create_topic({}, 1);
  std::vector<record> records;
  for (int i = 0; i < 50; ++i) {
    records.push_back({"key-" + std::to_string(i),
                       "value-" + std::to_string(i),
                       {{"trace", "t-" + std::to_string(i)},
                        {"trace", "repeated"},
                        {"null-value", std::nullopt},
                        {"empty", ""}}});
  }
  produce_all(ctx, topic, records);
  consume_exactly(ctx, topic, records);
}

// Null and empty are different on the wire (length -1 against 0, protocol guide "Record"): a
// null value is a tombstone for compaction (Kafka's LogCleaner), an empty one is not.
void null_empty(context& ctx) {
  ctx.require(api::produce, 3);
  std::string topic = ctx.create_topic({}, 1);
  std::vector<record> records = {
      {std::nullopt, "value with null key", {}},
      {"", "", {}},
      {"tombstone", std::nullopt, {}},
      {std::nullopt, std::nullopt, {}},
      {"k", "", {{"h", ""}}},
  };
  produce_all(ctx, topic, records);
  consume_exactly(ctx, topic, records);
}

// A value just under librdkafka's default message.max.bytes (1000000) and Kafka's default
// max.message.bytes (1048588, LogConfig): accepted and read back byte for byte.
void large_value(context& ctx) {
  ctx.require(api::produce, 3);
  std::string topic = ctx.create_topic({}, 1);
  std::vector<record> records;
  for (int i = 0; i < 3; ++i) {
    std::string value(900 * 1024, '\0');
    uint32_t x = 2654435761u * static_cast<uint32_t>(i + 1);
    for (char& c : value) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 24);
    }
    records.push_back({"large-" + std::to_string(i), std::move(value), {}});
  }
  produce_all(ctx, topic, records);
  consume_exactly(ctx, topic, records);
}

// Compressed batches (KIP-98 record batch attributes bits 0-2): the broker keeps the producer's
// codec and a consumer decompresses. zstd needs Produce v7 and Fetch v10 (KIP-110); a broker
// answers older versions with UNSUPPORTED_COMPRESSION_TYPE.
void compressed(context& ctx, const std::string& codec) {
  ctx.require(api::produce, codec == "zstd" ? 7 : 3);
  if (codec == "zstd") ctx.require(api::fetch, 10);
  std::string topic = ctx.create_topic({}, 1);
  std::vector<record> records;
  for (int i = 0; i < 500; ++i) {
    records.push_back({"key-" + std::to_string(i % 7),
                       "compressible value " + std::to_string(i) + std::string(200, 'x'),
                       {{"codec", codec}}});
  }
  // linger.ms so that many records share each compressed batch.
  produce_all(ctx, topic, records, {{"compression.codec", codec}, {"linger.ms", "20"}});
  consume_exactly(ctx, topic, records);
}

// The idempotent producer (KIP-98): InitProducerId gives it a producer id, every batch carries a
// sequence number, and the broker appends each batch once, in order per partition. librdkafka
// sets acks=all and max.in.flight<=5 itself.
void idempotent(context& ctx) {
  ctx.require(api::init_producer_id);
  ctx.require(api::produce, 3);
  constexpr int partitions = 3;
  constexpr int per_partition = 300;
  std::string topic = ctx.create_topic({}, partitions);
  {
    producer p(ctx.bootstrap(), {{"enable.idempotence", "true"}, {"linger.ms", "5"}});
    for (int i = 0; i < per_partition; ++i) {
      for (int part = 0; part < partitions; ++part)
        p.produce(topic, part, std::nullopt, std::to_string(i));
    }
    check(p.flush(ctx.timeout()), "not every record was delivered within the deadline");
    for (const producer::delivery& d : p.deliveries())
      check(d.err == RD_KAFKA_RESP_ERR_NO_ERROR, "a record failed: " + err_name(d.err));
  }
  for (int part = 0; part < partitions; ++part) {
    simple_consumer c(ctx.bootstrap(), topic);
    c.start(part, RD_KAFKA_OFFSET_BEGINNING);
    std::vector<message> got = c.consume(per_partition, ctx.timeout());
    check(got.size() == per_partition, "partition " + std::to_string(part) + " holds " +
                                           std::to_string(got.size()) + " records, not " +
                                           std::to_string(per_partition));
    for (int i = 0; i < per_partition; ++i) {
      check(got[i].value == std::to_string(i),
            "partition " + std::to_string(part) + " offset " + std::to_string(i) + " holds " +
                describe(got[i].value) + ": a duplicate or a reordering");
    }
    auto [low, high] = watermarks(c.get(), topic, part);
    check(high == per_partition, "partition " + std::to_string(part) + " high watermark " +
                                     std::to_string(high) + ", expected " +
                                     std::to_string(per_partition) + " (no duplicates)");
  }
}

}  // namespace

void add_produce_scenarios(std::vector<scenario>& out) {
  out.push_back({"rdkafka", "produce.keys_headers", keys_headers});
  out.push_back({"rdkafka", "produce.null_empty", null_empty});
  out.push_back({"rdkafka", "produce.large_value", large_value});
  for (const char* codec : {"gzip", "snappy", "lz4", "zstd"}) {
    out.push_back({"rdkafka", std::string("compression.") + codec,
                   [codec](context& ctx) { compressed(ctx, codec); }});
  }
  out.push_back({"rdkafka", "idempotent.produce", idempotent});
}

}  // namespace sluice::compat::suite

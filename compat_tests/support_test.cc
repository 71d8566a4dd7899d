// Tests of the compat tests' own tools (no broker needed): the hand-written encoder, CRCs, the
// batch splitter and the Produce-request parser the verbatim-storage test depends on. A bug here
// would otherwise show up as a false "broker bug".

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string_view>
#include <thread>

#include "compat_tests/raw_kafka.h"
#include "compat_tests/tcp_proxy.h"

namespace sluice::compat {
namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(Support, CrcCheckValues) {
  // The standard check values for "123456789".
  EXPECT_EQ(crc32c(as_bytes("123456789")), 0xE3069283u);
  EXPECT_EQ(crc32_ieee(as_bytes("123456789")), 0xCBF43926u);
}

TEST(Support, RecordBatchLayout) {
  bytes b = build_record_batch({{"k", "v", 0}, {std::nullopt, "", 5}}, 1000);
  byte_reader r(b);
  EXPECT_EQ(r.i64(), 0);                                    // base offset
  EXPECT_EQ(r.i32(), static_cast<int32_t>(b.size() - 12));  // batch length
  EXPECT_EQ(r.i32(), -1);                                   // leader epoch
  EXPECT_EQ(r.i8(), 2);                                     // magic
  uint32_t crc = r.u32();
  EXPECT_EQ(crc, crc32c(std::span<const uint8_t>(b).subspan(21)));
  EXPECT_EQ(r.i16(), 0);     // attributes
  EXPECT_EQ(r.i32(), 1);     // last offset delta
  EXPECT_EQ(r.i64(), 1000);  // base timestamp
  EXPECT_EQ(r.i64(), 1005);  // max timestamp
  r.i64();
  r.i16();
  r.i32();
  EXPECT_EQ(r.i32(), 2);  // records
  // First record: length, attributes, ts delta 0, offset delta 0, key "k", value "v", 0 headers.
  int64_t len = r.varint();
  EXPECT_EQ(len, 8);  // attributes, ts delta, offset delta, 2+2 for key and value, headers
  EXPECT_EQ(r.i8(), 0);
  EXPECT_EQ(r.varint(), 0);
  EXPECT_EQ(r.varint(), 0);
  EXPECT_EQ(r.varint(), 1);
  r.take(1);
  EXPECT_EQ(r.varint(), 1);
  r.take(1);
  EXPECT_EQ(r.varint(), 0);
  // Second record: null key (-1), empty value (0).
  r.varint();
  r.i8();
  EXPECT_EQ(r.varint(), 5);
  EXPECT_EQ(r.varint(), 1);
  EXPECT_EQ(r.varint(), -1);
  EXPECT_EQ(r.varint(), 0);
  EXPECT_EQ(r.varint(), 0);
  EXPECT_EQ(r.remaining(), 0u);
}

TEST(Support, SplitBatchesDropsTornTail) {
  bytes a = build_record_batch({{"a", "1", 0}}, 1);
  bytes b = build_record_batch({{"b", "2", 0}, {"c", "3", 0}}, 2);
  bytes all = a;
  all.insert(all.end(), b.begin(), b.end());
  EXPECT_EQ(split_batches(all).size(), 2u);
  all.insert(all.end(), b.begin(), b.begin() + 20);  // torn
  auto parts = split_batches(all);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_TRUE(std::equal(parts[1].begin(), parts[1].end(), b.begin(), b.end()));
}

TEST(Support, ExtractProduceBatchesFromAStream) {
  bytes b1 = build_record_batch({{"a", "1", 0}}, 1);
  bytes b2 = build_record_batch({{"b", "2", 0}}, 2);
  bytes stream = api_versions_request(3, 1);
  for (const bytes& req : {produce_request(7, 2, "t", 3, b1), produce_request(3, 3, "u", 0, b2)}) {
    stream.insert(stream.end(), req.begin(), req.end());
  }
  bytes partial = produce_request(7, 4, "t", 3, b1);
  stream.insert(stream.end(), partial.begin(), partial.end() - 5);  // incomplete: ignored

  auto got = extract_produce_batches(stream);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].topic, "t");
  EXPECT_EQ(got[0].partition, 3);
  EXPECT_EQ(got[0].api_version, 7);
  EXPECT_EQ(got[0].batch, b1);
  EXPECT_EQ(got[1].topic, "u");
  EXPECT_EQ(got[1].batch, b2);
  EXPECT_EQ(request_api_keys(stream), (std::vector<int16_t>{18, 0, 0}));
}

TEST(Support, FlexibleProduceIsParsed) {
  // A Produce v9 request (flexible) built by hand: header v2, compact strings, tag sections.
  bytes batch = build_record_batch({{"k", "v", 0}}, 7);
  byte_writer body;
  body.null_string(true);  // transactional_id
  body.i16(-1);
  body.i32(1000);
  body.array_length(1, true);
  body.string("flex", true);
  body.array_length(1, true);
  body.i32(2);
  body.bytes_field(batch, true);
  body.empty_tags();
  body.empty_tags();
  body.empty_tags();
  bytes req = frame_request(0, 9, 1, true, body.data());
  auto got = extract_produce_batches(req);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].topic, "flex");
  EXPECT_EQ(got[0].partition, 2);
  EXPECT_EQ(got[0].batch, batch);
}

TEST(Support, ProxyRelaysAndCaptures) {
  // An echo server behind the proxy.
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(ls, 4), 0);
  socklen_t len = sizeof addr;
  ::getsockname(ls, reinterpret_cast<sockaddr*>(&addr), &len);
  std::thread server([ls] {
    int c = ::accept(ls, nullptr, nullptr);
    uint8_t buf[4096];
    ssize_t n;
    while ((n = ::recv(c, buf, sizeof buf, 0)) > 0)
      ::send(c, buf, static_cast<size_t>(n), 0);
    ::close(c);
  });

  tcp_proxy proxy;
  proxy.set_upstream("127.0.0.1", ntohs(addr.sin_port));
  {
    raw_connection conn("127.0.0.1", proxy.port());
    bytes req = api_versions_request(0, 77);
    bytes resp = round_trip(conn, req);  // the echo returns the request frame itself
    EXPECT_EQ(resp, bytes(req.begin() + 4, req.end()));
  }
  server.join();
  ::close(ls);
  auto streams = proxy.client_streams();
  ASSERT_EQ(streams.size(), 1u);
  EXPECT_EQ(request_api_keys(streams[0]), (std::vector<int16_t>{18}));
}

}  // namespace
}  // namespace sluice::compat

// sluice-rawfetch: the broker's Fetch path without a client's decode cost.
//
//   sluice-rawfetch --brokers H:P --topic NAME[:PARTITIONS] [--topic ...] [--bytes 1GiB]
//                   [--max-bytes 64MiB] [--partition-max-bytes N] [--version 11]
//                   [--broker-pid PID] [--timeout-s S] [--label L]
//
// One connection, one Fetch outstanding at a time (as a consumer has). Requests are encoded with
// the project's generated codec (wire/); responses are parsed by hand while they stream through
// one fixed 1 MiB buffer: only the response, topic and partition headers and each record batch's
// first 27 bytes (base offset, length, last offset delta) are looked at, to know where the next
// fetch starts. Record bytes are read into that buffer and dropped, exactly as the receiver of
// sluice-zerocopy drains its socket, so the two figures compare like with like. When a partition
// reaches its high watermark it starts again from its log start offset, so any amount can be
// fetched from a page-cached log of any size. It talks to whatever answers at --brokers and
// assumes that broker leads every partition (true of a single Sluice and of a one-broker mock).
//
// Prints one JSON line: record bytes, frame bytes, requests, GB/s (10^9 B), and the CPU seconds
// of this process and of the broker over the run (and per GB of records).

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/common.h"
#include "wire/codec.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/fetch_request.h"
#include "wire/generated/request_header.h"

namespace {

using namespace sluice::bench;
namespace wire = sluice::wire;

constexpr std::string_view tool = "sluice-rawfetch";
constexpr size_t drain_buffer_size = 1 << 20;

int connect_to(const std::string& host_port) {
  size_t colon = host_port.rfind(':');
  if (colon == std::string::npos) throw std::runtime_error("--brokers wants host:port");
  std::string host = host_port.substr(0, colon);
  std::string port = host_port.substr(colon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    throw std::runtime_error("resolve " + host_port + ": " + gai_strerror(rc));
  }
  int fd = -1;
  for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0) throw std::runtime_error("connect " + host_port + ": " + std::strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void send_all(int fd, const std::vector<uint8_t>& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("send: ") + std::strerror(errno));
    sent += static_cast<size_t>(n);
  }
}

// A socket read through one fixed buffer. `need` makes n bytes contiguous at `data()`; `skip`
// discards bytes, reading them into the same buffer. Counts every byte it consumes.
class stream {
 public:
  explicit stream(int fd) : fd_(fd), buf_(std::make_unique<uint8_t[]>(drain_buffer_size)) {}

  void need(size_t n) {
    if (end_ - pos_ >= n) return;
    std::memmove(buf_.get(), buf_.get() + pos_, end_ - pos_);
    end_ -= pos_;
    pos_ = 0;
    while (end_ < n)
      end_ += fill(buf_.get() + end_, drain_buffer_size - end_);
  }
  const uint8_t* data() const { return buf_.get() + pos_; }
  void advance(size_t n) {
    pos_ += n;
    consumed_ += static_cast<int64_t>(n);
  }

  void skip(int64_t n) {
    consumed_ += n;
    auto buffered = static_cast<int64_t>(end_ - pos_);
    if (n <= buffered) {
      pos_ += static_cast<size_t>(n);
      return;
    }
    n -= buffered;
    pos_ = end_ = 0;
    while (n > 0) {
      auto got = static_cast<int64_t>(fill(buf_.get(), drain_buffer_size));
      if (got <= n) {
        n -= got;
      } else {
        pos_ = static_cast<size_t>(n);
        end_ = static_cast<size_t>(got);
        n = 0;
      }
    }
  }

  int64_t consumed() const { return consumed_; }

  int16_t i16() { return static_cast<int16_t>(be(2)); }
  int32_t i32() { return static_cast<int32_t>(be(4)); }
  int64_t i64() { return static_cast<int64_t>(be(8)); }
  uint32_t uvarint() {
    uint32_t v = 0;
    for (int shift = 0; shift < 35; shift += 7) {
      need(1);
      uint8_t b = *data();
      advance(1);
      v |= static_cast<uint32_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    throw std::runtime_error("malformed varint in response");
  }

 private:
  uint64_t be(size_t n) {
    need(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i)
      v = (v << 8) | data()[i];
    advance(n);
    return v;
  }
  size_t fill(uint8_t* at, size_t room) {
    for (;;) {
      ssize_t n = ::recv(fd_, at, room, 0);
      if (n > 0) return static_cast<size_t>(n);
      if (n < 0 && errno == EINTR) continue;
      throw std::runtime_error(n == 0 ? "connection closed by the broker"
                                      : std::string("recv: ") + std::strerror(errno));
    }
  }

  int fd_;
  std::unique_ptr<uint8_t[]> buf_;
  size_t pos_ = 0;
  size_t end_ = 0;
  int64_t consumed_ = 0;
};

struct partition_state {
  std::string topic;
  int32_t index = 0;
  int64_t next_offset = 0;
};

struct response_totals {
  int64_t frame_bytes = 0;
  int64_t record_bytes = 0;
  int64_t batches = 0;
  int64_t restarts = 0;  // partitions sent back to their log start after OFFSET_OUT_OF_RANGE
};

constexpr int16_t offset_out_of_range = 1;

// Parses one Fetch response (v7-v12) from the stream and advances the partitions' offsets.
response_totals read_response(stream& in, int16_t version, int32_t correlation_id,
                              std::vector<partition_state>& parts) {
  const bool flexible = version >= 12;
  auto skip_tags = [&] {
    if (!flexible) return;
    for (uint32_t n = in.uvarint(); n > 0; --n) {
      in.uvarint();  // tag
      in.skip(in.uvarint());
    }
  };
  auto array_length = [&]() -> int64_t {
    return flexible ? static_cast<int64_t>(in.uvarint()) - 1 : in.i32();
  };

  response_totals t;
  const int32_t size = in.i32();
  const int64_t start = in.consumed();
  if (in.i32() != correlation_id) throw std::runtime_error("correlation id mismatch");
  skip_tags();  // response header v1
  in.i32();     // throttle_time_ms
  if (int16_t e = in.i16()) throw std::runtime_error("fetch error code " + std::to_string(e));
  in.i32();  // session_id
  for (int64_t topics = array_length(); topics > 0; --topics) {
    int64_t name_length = flexible ? static_cast<int64_t>(in.uvarint()) - 1 : in.i16();
    in.need(static_cast<size_t>(std::max<int64_t>(name_length, 0)));
    std::string name(reinterpret_cast<const char*>(in.data()), static_cast<size_t>(name_length));
    in.advance(static_cast<size_t>(name_length));
    for (int64_t n = array_length(); n > 0; --n) {
      const int32_t index = in.i32();
      const int16_t error = in.i16();
      const int64_t high_watermark = in.i64();
      in.i64();  // last_stable_offset
      const int64_t log_start = in.i64();
      for (int64_t aborted = array_length(); aborted > 0; --aborted) {
        in.skip(16);
        skip_tags();
      }
      if (version >= 11) in.i32();  // preferred_read_replica
      int64_t records = flexible ? static_cast<int64_t>(in.uvarint()) - 1 : in.i32();
      auto it = std::find_if(parts.begin(), parts.end(), [&](const partition_state& p) {
        return p.topic == name && p.index == index;
      });
      if (it == parts.end()) throw std::runtime_error("response names an unrequested partition");
      if (error == offset_out_of_range && log_start >= 0) {
        // The log start moved past us (the mock keeps only the newest few MB of a partition).
        it->next_offset = log_start;
        ++t.restarts;
      } else if (error != 0) {
        throw std::runtime_error("partition " + name + "-" + std::to_string(index) + ": error " +
                                 std::to_string(error));
      }
      int64_t left = std::max<int64_t>(records, 0);
      t.record_bytes += left;
      // Walk the batch chain: base offset (8), batch length (4), ... last offset delta at 23.
      constexpr int64_t header_needed = 27;
      int64_t last_next = -1;
      while (left >= header_needed) {
        in.need(header_needed);
        const uint8_t* h = in.data();
        auto rd = [h](size_t at, size_t n) {
          uint64_t v = 0;
          for (size_t i = 0; i < n; ++i)
            v = (v << 8) | h[at + i];
          return v;
        };
        const auto base = static_cast<int64_t>(rd(0, 8));
        const int64_t batch_size = static_cast<int32_t>(rd(8, 4)) + int64_t{12};
        const auto last_delta = static_cast<int32_t>(rd(23, 4));
        if (batch_size > left) break;  // a partial batch at the end: ignored, as clients do
        last_next = base + last_delta + 1;
        ++t.batches;
        in.skip(batch_size);
        left -= batch_size;
      }
      in.skip(left);
      if (last_next >= 0) it->next_offset = last_next;
      // At the end of the log: start over, so that any amount can be read from a finite log.
      if (it->next_offset >= high_watermark) it->next_offset = log_start;
      skip_tags();
    }
    skip_tags();
  }
  skip_tags();
  if (in.consumed() - start != size) throw std::runtime_error("response size mismatch");
  t.frame_bytes = size + 4;
  return t;
}

std::vector<uint8_t> encode_fetch(const std::vector<partition_state>& parts, int16_t version,
                                  int32_t correlation_id, int32_t max_bytes,
                                  int32_t partition_max_bytes) {
  wire::fetch_request req;
  req.replica_id = -1;
  req.max_wait_ms = 500;
  req.min_bytes = 1;
  req.max_bytes = max_bytes;
  req.isolation_level = 0;
  req.session_id = 0;
  req.session_epoch = -1;  // full fetch, no session
  for (const partition_state& p : parts) {
    if (req.topics.empty() || req.topics.back().topic != p.topic) {
      req.topics.emplace_back().topic = p.topic;
    }
    auto& fp = req.topics.back().partitions.emplace_back();
    fp.partition = p.index;
    fp.fetch_offset = p.next_offset;
    fp.partition_max_bytes = partition_max_bytes;
  }
  wire::frame f;
  f.bytes.resize(4);  // the size prefix, patched below; only f.bytes is used, not f.parts
  {
    wire::writer w(f);
    wire::request_header h;
    h.request_api_key = wire::fetch_request::api_key;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = "sluice-rawfetch";
    h.encode(w, wire::request_header_version(h.request_api_key, version));
    req.encode(w, version);
  }
  auto size = static_cast<uint32_t>(f.bytes.size() - 4);
  for (int i = 0; i < 4; ++i)
    f.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(size >> (24 - 8 * i));
  return std::move(f.bytes);
}

}  // namespace

int main(int argc, char** argv) {
  json_line head;
  head.add("tool", tool).add("mode", "fetch");
  try {
    options o(argc, argv,
              {"brokers", "topic", "partitions", "bytes", "max-bytes", "partition-max-bytes",
               "version", "broker-pid", "timeout-s", "label"});
    if (o.has("label")) head.add("label", o.str("label", ""));
    const std::string brokers = o.str("brokers", "127.0.0.1:9092");
    const int64_t target = o.i64("bytes", int64_t{1} << 30);
    const auto max_bytes = static_cast<int32_t>(o.i64("max-bytes", 64 << 20));
    const auto partition_max_bytes = static_cast<int32_t>(o.i64("partition-max-bytes", max_bytes));
    const auto version = static_cast<int16_t>(o.i64("version", 11));
    const auto broker_pid = static_cast<pid_t>(o.i64("broker-pid", -1));
    if (version < 7 || version > 12) throw std::invalid_argument("--version must be 7..12");

    std::vector<partition_state> parts;
    for (const std::string& spec : o.all("topic")) {
      size_t colon = spec.rfind(':');
      std::string name = spec.substr(0, colon);
      int64_t count = colon == std::string::npos ? o.i64("partitions", 4)
                                                 : parse_quantity(spec.substr(colon + 1));
      for (int32_t i = 0; i < count; ++i)
        parts.push_back({name, i, 0});
    }
    if (parts.empty()) throw std::invalid_argument("at least one --topic is needed");

    json_line timeout = head;
    timeout.add("error", "timeout");
    arm_watchdog(o.f64("timeout-s", 120), timeout.str());

    int fd = connect_to(brokers);
    stream in(fd);
    response_totals total;
    int64_t requests = 0;
    int32_t correlation_id = 0;
    cpu_meter cpu(broker_pid);
    const int64_t start = mono_ns();
    while (total.record_bytes < target) {
      send_all(fd, encode_fetch(parts, version, ++correlation_id, max_bytes, partition_max_bytes));
      response_totals r = read_response(in, version, correlation_id, parts);
      ++requests;
      if (r.record_bytes == 0 && requests > 8 && total.record_bytes == 0) {
        throw std::runtime_error("the topics hold no records");
      }
      total.frame_bytes += r.frame_bytes;
      total.record_bytes += r.record_bytes;
      total.batches += r.batches;
      total.restarts += r.restarts;
    }
    const double elapsed = seconds_since(start);
    cpu.stop();
    close(fd);

    json_line j = head;
    j.add("version", static_cast<int>(version)).add("max_bytes", static_cast<int64_t>(max_bytes));
    j.add("partition_max_bytes", static_cast<int64_t>(partition_max_bytes));
    j.add("partitions", parts.size()).add("requests", requests).add("batches", total.batches);
    j.add("out_of_range_restarts", total.restarts);
    j.add("record_bytes", total.record_bytes).add("frame_bytes", total.frame_bytes);
    j.add("elapsed_s", elapsed);
    j.add("gb_per_s", static_cast<double>(total.record_bytes) / 1e9 / elapsed);
    j.add("mb_per_request",
          static_cast<double>(total.record_bytes) / 1e6 / static_cast<double>(requests));
    j.add_cpu(cpu, static_cast<double>(total.record_bytes));
    if (broker_pid > 0) j.add("broker_rss_kb", process_memory_kb(broker_pid));
    arm_watchdog(0, "");
    j.print();
    return 0;
  } catch (const std::exception& e) {
    arm_watchdog(0, "");
    head.add("error", e.what());
    head.print();
    return 2;
  }
}

// sluice-flood: many connections, each pipelining large Produce requests without waiting for an
// answer, to show that the broker's memory stays bounded whatever clients send
// (queued.max.request.bytes) and that every request is still answered.
//
//   sluice-flood --brokers H:P --topic T --connections C --requests K --request-bytes S
//                [--partitions P] [--acks 1] [--broker-pid PID] [--timeout-s S]
//
// Each of C threads opens one connection, writes K Produce v7 requests at once (each one record
// batch of about S bytes for partition (thread + request) % P), then reads the K answers in order.
// The batch bytes are one buffer shared by every request (the broker stamps offsets in its own
// copy), so the tool itself stays small. The broker's RSS is sampled every 20 ms while the flood
// runs. One JSON line: requests answered and failed, connections dropped, bytes offered, elapsed
// time, the broker's peak RSS during the run.

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"
#include "wire/record_batch.h"

namespace {

using namespace sluice::bench;

constexpr std::string_view tool = "sluice-flood";

void put16(std::vector<uint8_t>& b, int16_t v) {
  b.push_back(static_cast<uint8_t>(v >> 8));
  b.push_back(static_cast<uint8_t>(v));
}
void put32(std::vector<uint8_t>& b, int32_t v) {
  for (int i = 3; i >= 0; --i)
    b.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_string(std::vector<uint8_t>& b, std::string_view s) {
  put16(b, static_cast<int16_t>(s.size()));
  b.insert(b.end(), s.begin(), s.end());
}

// Everything of a Produce v7 frame before the batch bytes: size, header v1, and the body up to
// and including the records' length. Produce v7 ends with the records, so batch bytes follow.
std::vector<uint8_t> frame_prefix(int32_t correlation_id, std::string_view topic, int32_t partition,
                                  int16_t acks, size_t batch_bytes) {
  std::vector<uint8_t> body;
  put16(body, 0);  // api key: Produce
  put16(body, 7);  // version
  put32(body, correlation_id);
  put_string(body, "sluice-flood");
  put16(body, -1);  // transactional_id: null
  put16(body, acks);
  put32(body, 30000);  // timeout_ms
  put32(body, 1);      // topics
  put_string(body, topic);
  put32(body, 1);  // partitions
  put32(body, partition);
  put32(body, static_cast<int32_t>(batch_bytes));
  std::vector<uint8_t> frame;
  put32(frame, static_cast<int32_t>(body.size() + batch_bytes));
  frame.insert(frame.end(), body.begin(), body.end());
  return frame;
}

int connect_to(const std::string& brokers) {
  size_t colon = brokers.rfind(':');
  std::string host = brokers.substr(0, colon);
  std::string port = brokers.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0) return -1;
  int fd = ::socket(res->ai_family, res->ai_socktype, 0);
  if (fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd >= 0) {
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  return fd;
}

bool write_all(int fd, iovec* iov, int count) {
  while (count > 0) {
    ssize_t n = ::writev(fd, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    while (count > 0 && static_cast<size_t>(n) >= iov->iov_len) {
      n -= static_cast<ssize_t>(iov->iov_len);
      ++iov;
      --count;
    }
    if (count > 0) {
      iov->iov_base = static_cast<uint8_t*>(iov->iov_base) + n;
      iov->iov_len -= static_cast<size_t>(n);
    }
  }
  return true;
}

bool read_exact(int fd, uint8_t* out, size_t n) {
  while (n > 0) {
    ssize_t got = ::recv(fd, out, n, 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    out += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

struct connection_result {
  int answered = 0;
  int failed = 0;  // answered with an error code
  bool dropped = false;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    options o(argc, argv,
              {"brokers", "topic", "connections", "requests", "request-bytes", "partitions", "acks",
               "broker-pid", "timeout-s"});
    const std::string brokers = o.str("brokers", "127.0.0.1:9092");
    const std::string topic = o.str("topic", "flood");
    const int connections = static_cast<int>(o.i64("connections", 200));
    const int requests = static_cast<int>(o.i64("requests", 8));
    const int64_t request_bytes = parse_quantity(o.str("request-bytes", "8MiB"));
    const int partitions = static_cast<int>(o.i64("partitions", 8));
    const auto acks = static_cast<int16_t>(o.i64("acks", 1));
    const auto broker_pid = static_cast<pid_t>(o.i64("broker-pid", -1));
    json_line timeout;
    timeout.add("tool", tool).add("error", "timeout");
    arm_watchdog(o.f64("timeout-s", 600), timeout.str());

    // One record of (almost) the request size; every request sends these same bytes.
    std::vector<uint8_t> value(static_cast<size_t>(request_bytes - 200), 'f');
    const sluice::wire::record_to_build record{1700000000000, std::nullopt,
                                               std::span<const uint8_t>(value)};
    const std::vector<uint8_t> batch = sluice::wire::build_record_batch({}, std::span(&record, 1));

    std::atomic<bool> running = true;
    std::atomic<int64_t> peak_rss_kb = -1;
    std::thread sampler([&] {
      while (running) {
        int64_t rss = process_memory_kb(broker_pid);
        if (rss > peak_rss_kb) peak_rss_kb = rss;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    });

    const int64_t start = mono_ns();
    std::vector<connection_result> results(static_cast<size_t>(connections));
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(connections));
    for (int c = 0; c < connections; ++c) {
      threads.emplace_back([&, c] {
        connection_result& r = results[static_cast<size_t>(c)];
        int fd = connect_to(brokers);
        if (fd < 0) {
          r.dropped = true;
          return;
        }
        std::vector<std::vector<uint8_t>> prefixes;
        std::vector<iovec> iov;
        for (int k = 0; k < requests; ++k) {
          prefixes.push_back(frame_prefix(k + 1, topic, (c + k) % partitions, acks, batch.size()));
        }
        for (int k = 0; k < requests; ++k) {
          iov.push_back({prefixes[static_cast<size_t>(k)].data(), prefixes[k].size()});
          iov.push_back({const_cast<uint8_t*>(batch.data()), batch.size()});
        }
        if (!write_all(fd, iov.data(), static_cast<int>(iov.size()))) {
          r.dropped = true;
          ::close(fd);
          return;
        }
        for (int k = 0; k < requests; ++k) {
          uint8_t size_bytes[4];
          if (!read_exact(fd, size_bytes, 4)) {
            r.dropped = true;
            break;
          }
          uint32_t size = (uint32_t{size_bytes[0]} << 24) | (uint32_t{size_bytes[1]} << 16) |
                          (uint32_t{size_bytes[2]} << 8) | size_bytes[3];
          if (size > 1 << 20) {  // a Produce answer for one partition is tiny
            r.dropped = true;
            break;
          }
          std::vector<uint8_t> body(size);
          if (!read_exact(fd, body.data(), size)) {
            r.dropped = true;
            break;
          }
          // correlation id, topics[1]: name, partitions[1]: index, error_code.
          size_t at = 4 + 4;
          if (body.size() < at + 2) {
            r.dropped = true;
            break;
          }
          size_t name_len = (size_t{body[at]} << 8) | body[at + 1];
          at += 2 + name_len + 4 + 4;
          int16_t error =
              at + 2 <= body.size() ? static_cast<int16_t>((body[at] << 8) | body[at + 1]) : -1;
          ++r.answered;
          if (error != 0) ++r.failed;
        }
        ::close(fd);
      });
    }
    for (auto& t : threads)
      t.join();
    const double elapsed = seconds_since(start);
    running = false;
    sampler.join();

    int answered = 0, failed = 0, dropped = 0;
    for (const auto& r : results) {
      answered += r.answered;
      failed += r.failed;
      dropped += r.dropped ? 1 : 0;
    }
    const double offered = static_cast<double>(connections) * requests * batch.size();
    json_line j;
    j.add("tool", tool)
        .add("connections", connections)
        .add("requests_per_connection", requests)
        .add("request_bytes", static_cast<int64_t>(batch.size()))
        .add("offered_gb", offered / 1e9)
        .add("answered", answered)
        .add("failed", failed)
        .add("dropped_connections", dropped)
        .add("elapsed_s", elapsed)
        .add("gb_per_s", offered / 1e9 / elapsed)
        .add("broker_peak_rss_kb", static_cast<int64_t>(peak_rss_kb))
        .add("broker_hwm_kb", process_memory_kb(broker_pid, "VmHWM"));
    std::puts(j.str().c_str());
    return answered == connections * requests && dropped == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    fail(tool, "flood", e.what());
  }
}

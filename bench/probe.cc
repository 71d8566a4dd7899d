// sluice-probe: start-up time, idle memory and connection cost of a broker, measured from outside.
//
//   sluice-probe startup --port P [--idle-ms 1000] [--log FILE] [--timeout-s 30] -- CMD [ARGS...]
//     Spawns CMD, then measures the time until a TCP connect to 127.0.0.1:P succeeds (the socket
//     is listening) and until an ApiVersions request on it is answered (the broker serves); waits
//     --idle-ms, reads VmRSS and VmHWM of the process, sends SIGTERM and measures the time to a
//     clean exit (SIGKILL after --timeout-s). CMD's stdout and stderr go to --log (default
//     /dev/null).
//
//   sluice-probe connections --brokers H:P --count N [--broker-pid PID] [--hold-ms 500]
//     Opens N connections, each answering one ApiVersions and one Metadata request (so that the
//     broker holds a live session for each), and reads the broker's VmRSS before, with all N open
//     and after they are closed: bytes per connection. With the N open, it also times one
//     ApiVersions round trip on every connection at once and one on a fresh connection: does the
//     broker keep serving?
//
//   sluice-probe metadata --brokers H:P [--topics a,b,c] [--broker-pid PID]
//     One Metadata v4 request (auto-creation allowed) for the named topics, or for all topics:
//     creates topics on Sluice, and times the answer.
//
// Each prints one JSON line. Requests are encoded with the project's generated codec (wire/).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/common.h"
#include "wire/codec.h"
#include "wire/generated/api_specs.h"
#include "wire/generated/api_versions_request.h"
#include "wire/generated/metadata_request.h"
#include "wire/generated/request_header.h"

extern char** environ;

namespace {

using namespace sluice::bench;
namespace wire = sluice::wire;

constexpr std::string_view tool = "sluice-probe";

template <class Req>
std::vector<uint8_t> encode_request(const Req& req, int16_t version, int32_t correlation_id) {
  wire::frame f;
  f.bytes.resize(4);  // the size prefix, patched below; only f.bytes is used, not f.parts
  {
    wire::writer w(f);
    wire::request_header h;
    h.request_api_key = Req::api_key;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = "sluice-probe";
    h.encode(w, wire::request_header_version(Req::api_key, version));
    req.encode(w, version);
  }
  auto size = static_cast<uint32_t>(f.bytes.size() - 4);
  for (int i = 0; i < 4; ++i)
    f.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(size >> (24 - 8 * i));
  return std::move(f.bytes);
}

// -1 when nothing listens (yet); throws on other errors.
int try_connect(const std::string& host, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host.c_str(), &addr.sin_addr) != 1) {
    ::close(fd);
    throw std::runtime_error("--brokers wants an IPv4 address: " + host);
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    ::close(fd);
    if (e == ECONNREFUSED) return -1;
    throw std::runtime_error(std::string("connect: ") + std::strerror(e));
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

std::pair<std::string, int> split_host_port(const std::string& s) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos) throw std::invalid_argument("--brokers wants host:port");
  return {s.substr(0, colon), std::stoi(s.substr(colon + 1))};
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

void recv_all(int fd, uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) throw std::runtime_error(r == 0 ? "connection closed" : std::strerror(errno));
    p += r;
    n -= static_cast<size_t>(r);
  }
}

// Reads one response frame; returns its size (without the prefix).
size_t read_frame(int fd) {
  uint8_t prefix[4];
  recv_all(fd, prefix, 4);
  size_t size =
      (size_t{prefix[0]} << 24) | (size_t{prefix[1]} << 16) | (size_t{prefix[2]} << 8) | prefix[3];
  std::vector<uint8_t> body(size);
  recv_all(fd, body.data(), size);
  return size;
}

const std::vector<uint8_t>& api_versions_frame() {
  static const std::vector<uint8_t> frame = encode_request(wire::api_versions_request{}, 0, 1);
  return frame;
}

std::vector<uint8_t> metadata_frame(const std::vector<std::string>& topics) {
  wire::metadata_request req;
  if (topics.empty()) {
    req.topics.reset();  // null: all topics
  } else {
    for (const std::string& t : topics)
      req.topics->emplace_back().name = t;
  }
  req.allow_auto_topic_creation = true;
  return encode_request(req, 4, 2);
}

// ---------------------------------------------------------------------------------------------

int run_startup(const options& o) {
  const int port = static_cast<int>(o.i64("port", 9092));
  const double timeout = o.f64("timeout-s", 30);
  const std::vector<std::string>& cmd = o.positional();
  if (cmd.empty()) throw std::invalid_argument("startup needs -- CMD [ARGS...]");
  if (try_connect("127.0.0.1", port) >= 0) {
    throw std::runtime_error("something already listens on port " + std::to_string(port));
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string log = o.str("log", "/dev/null");
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char*> argv;
  for (const std::string& a : cmd)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  pid_t pid = -1;
  const int64_t start = mono_ns();
  if (int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ); rc != 0) {
    throw std::runtime_error("spawn " + cmd[0] + ": " + std::strerror(rc));
  }
  posix_spawn_file_actions_destroy(&actions);

  json_line j;
  j.add("tool", tool).add("mode", "startup");
  if (o.has("label")) j.add("label", o.str("label", ""));
  j.add("pid", static_cast<int64_t>(pid));
  auto give_up = [&](const std::string& why) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    j.add("error", why);
    j.print();
    return 1;
  };

  int fd = -1;
  while ((fd = try_connect("127.0.0.1", port)) < 0) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      j.add("error", "the broker exited during start-up with status " + std::to_string(status));
      j.print();
      return 1;
    }
    if (seconds_since(start) > timeout) return give_up("not listening after the timeout");
    usleep(100);
  }
  const double connect_ms = static_cast<double>(mono_ns() - start) / 1e6;
  send_all(fd, api_versions_frame());
  read_frame(fd);
  const double api_ms = static_cast<double>(mono_ns() - start) / 1e6;
  ::close(fd);

  usleep(static_cast<useconds_t>(o.i64("idle-ms", 1000) * 1000));
  const int64_t rss = process_memory_kb(pid, "VmRSS");
  const int64_t hwm = process_memory_kb(pid, "VmHWM");
  const double cpu = process_cpu_seconds(pid);

  const int64_t stop_start = mono_ns();
  kill(pid, SIGTERM);
  int status = 0;
  bool exited = false;
  while (seconds_since(stop_start) < timeout) {
    if (waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      break;
    }
    usleep(200);
  }
  if (!exited) return give_up("no exit within the timeout after SIGTERM");
  const double stop_ms = static_cast<double>(mono_ns() - stop_start) / 1e6;

  j.add("start_connect_ms", connect_ms).add("start_api_ms", api_ms);
  j.add("idle_rss_kb", rss).add("idle_hwm_kb", hwm).add("startup_cpu_s", cpu);
  j.add("stop_ms", stop_ms);
  j.add("exit_status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  j.print();
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int run_connections(const options& o) {
  auto [host, port] = split_host_port(o.str("brokers", "127.0.0.1:9092"));
  const auto count = static_cast<size_t>(o.i64("count", 1000));
  const auto pid = static_cast<pid_t>(o.i64("broker-pid", -1));
  const auto hold_us = static_cast<useconds_t>(o.i64("hold-ms", 500) * 1000);

  const int64_t rss_before = process_memory_kb(pid);
  std::vector<int> fds;
  fds.reserve(count);
  const std::vector<uint8_t> metadata = metadata_frame({});
  const int64_t open_start = mono_ns();
  for (size_t i = 0; i < count; ++i) {
    int fd = try_connect(host, port);
    if (fd < 0) throw std::runtime_error("connection " + std::to_string(i) + " refused");
    send_all(fd, api_versions_frame());
    read_frame(fd);
    send_all(fd, metadata);
    read_frame(fd);
    fds.push_back(fd);
  }
  const double open_s = seconds_since(open_start);
  usleep(hold_us);
  const int64_t rss_open = process_memory_kb(pid);

  // Every connection at once: one request each, then every answer.
  const int64_t all_start = mono_ns();
  for (int fd : fds)
    send_all(fd, api_versions_frame());
  for (int fd : fds)
    read_frame(fd);
  const double all_ms = static_cast<double>(mono_ns() - all_start) / 1e6;
  const int64_t fresh_start = mono_ns();
  int fresh = try_connect(host, port);
  if (fresh < 0) throw std::runtime_error("a fresh connection was refused");
  send_all(fresh, api_versions_frame());
  read_frame(fresh);
  const double fresh_ms = static_cast<double>(mono_ns() - fresh_start) / 1e6;
  ::close(fresh);

  for (int fd : fds)
    ::close(fd);
  usleep(hold_us);
  const int64_t rss_after = process_memory_kb(pid);

  json_line j;
  j.add("tool", tool).add("mode", "connections");
  if (o.has("label")) j.add("label", o.str("label", ""));
  j.add("connections", count).add("open_s", open_s);
  j.add("rss_before_kb", rss_before)
      .add("rss_open_kb", rss_open)
      .add("rss_after_close_kb", rss_after);
  j.add("bytes_per_connection",
        count > 0 ? static_cast<double>(rss_open - rss_before) * 1024.0 / static_cast<double>(count)
                  : 0.0);
  j.add("all_roundtrip_ms", all_ms).add("fresh_connection_api_ms", fresh_ms);
  j.print();
  return 0;
}

int run_metadata(const options& o) {
  auto [host, port] = split_host_port(o.str("brokers", "127.0.0.1:9092"));
  std::vector<std::string> topics;
  const std::string list = o.str("topics", "");
  for (size_t pos = 0; pos < list.size();) {
    size_t comma = std::min(list.find(',', pos), list.size());
    if (comma > pos) topics.push_back(list.substr(pos, comma - pos));
    pos = comma + 1;
  }
  int fd = try_connect(host, port);
  if (fd < 0) throw std::runtime_error("connection refused");
  const auto pid = static_cast<pid_t>(o.i64("broker-pid", -1));
  cpu_meter cpu(pid);
  const int64_t start = mono_ns();
  send_all(fd, metadata_frame(topics));
  const size_t size = read_frame(fd);
  const double ms = static_cast<double>(mono_ns() - start) / 1e6;
  cpu.stop();
  ::close(fd);
  json_line j;
  j.add("tool", tool).add("mode", "metadata");
  if (o.has("label")) j.add("label", o.str("label", ""));
  j.add("topics", topics.size()).add("response_bytes", size).add("elapsed_ms", ms);
  if (cpu.broker_seconds() >= 0) j.add("broker_cpu_s", cpu.broker_seconds());
  if (pid > 0) j.add("broker_rss_kb", process_memory_kb(pid));
  j.print();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  try {
    options o(argc - 1, argv + 1,
              {"port", "idle-ms", "log", "timeout-s", "label", "brokers", "count", "broker-pid",
               "hold-ms", "topics"});
    json_line timeout;
    timeout.add("tool", tool).add("mode", mode).add("error", "timeout");
    // start-up has its own timeouts (and must reap its child); the others get a watchdog.
    if (mode != "startup") arm_watchdog(o.f64("timeout-s", 120), timeout.str());
    if (mode == "startup") return run_startup(o);
    if (mode == "connections") return run_connections(o);
    if (mode == "metadata") return run_metadata(o);
    fail(tool, mode, "usage: sluice-probe startup|connections|metadata [options] (see probe.cc)");
  } catch (const std::exception& e) {
    fail(tool, mode, e.what());
  }
}

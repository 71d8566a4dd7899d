#include "compat_tests/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>
#include <stdexcept>

namespace sluice::compat {

namespace {

constexpr size_t kMaxPending = 4 << 20;  // stop reading a side while its peer is this far behind

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// One relayed connection: two sockets, each with the bytes still to be written to it.
struct relay {
  int fd[2];                    // 0: client, 1: upstream
  std::vector<uint8_t> out[2];  // pending bytes to write to fd[i]
  size_t capture_index;
  size_t parsed = 0;  // bytes of the capture already split into request frames
  // The correlation id of the request whose response cuts the connection, once one is chosen.
  std::optional<int32_t> cut_at;
  // Broker->client framing: the start of the current response (size, correlation id) and how
  // many of its bytes are still to come.
  uint8_t response_head[8];
  size_t response_head_len = 0;
  int64_t response_left = 0;
  bool dead = false;
};

int32_t read_be32(const uint8_t* p) {
  return static_cast<int32_t>((uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) |
                              (uint32_t{p[2]} << 8) | uint32_t{p[3]});
}

// Walks broker->client bytes frame by frame. Returns how many of `n` bytes may be relayed:
// all of them, or those before the response to `cut_at` begins (then `cut` is set).
size_t relayable(relay& r, const uint8_t* data, size_t n, bool& cut) {
  cut = false;
  size_t at = 0;
  // Where the response head being read began in this chunk; npos if it began in an earlier one.
  size_t head_begin = std::string::npos;
  while (at < n) {
    if (r.response_left > 0) {
      size_t take = static_cast<size_t>(std::min<int64_t>(r.response_left, n - at));
      r.response_left -= static_cast<int64_t>(take);
      at += take;
      continue;
    }
    if (r.response_head_len == 0) head_begin = at;
    r.response_head[r.response_head_len++] = data[at++];
    if (r.response_head_len < 8) continue;
    r.response_head_len = 0;
    int32_t size = read_be32(r.response_head);
    int32_t correlation_id = read_be32(r.response_head + 4);
    if (r.cut_at && correlation_id == *r.cut_at) {
      cut = true;
      // A head split across two reads began in an earlier, already relayed chunk; then nothing
      // of this chunk goes, which still cuts before the response is complete.
      return head_begin == std::string::npos ? 0 : head_begin;
    }
    head_begin = std::string::npos;
    r.response_left = static_cast<int64_t>(size) - 4;
  }
  return n;
}

}  // namespace

tcp_proxy::tcp_proxy() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 64) != 0) {
    throw std::runtime_error("tcp_proxy: bind/listen failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  set_nonblocking(listen_fd_);
  if (::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe2 failed");
  thread_ = std::thread([this] { run(); });
}

tcp_proxy::~tcp_proxy() {
  stop_ = true;
  char c = 0;
  (void)!::write(wake_pipe_[1], &c, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_pipe_[0]);
  ::close(wake_pipe_[1]);
}

void tcp_proxy::set_upstream(const std::string& host, uint16_t port) {
  std::lock_guard lock(mu_);
  upstream_host_ = host;
  upstream_port_ = port;
}

void tcp_proxy::cut_on_response_to(int16_t api_key, int times, bool then_refuse) {
  std::lock_guard lock(mu_);
  cut_api_key_ = api_key;
  cuts_left_ = times;
  refuse_after_cut_ = then_refuse;
}

std::vector<std::vector<uint8_t>> tcp_proxy::client_streams() const {
  std::lock_guard lock(mu_);
  return captures_;
}

void tcp_proxy::run() {
  std::vector<std::unique_ptr<relay>> relays;
  auto kill_relay = [](relay& r) {
    ::close(r.fd[0]);
    ::close(r.fd[1]);
    r.dead = true;
  };

  while (!stop_) {
    std::vector<pollfd> fds;
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    for (auto& r : relays) {
      for (int i = 0; i < 2; ++i) {
        short ev = 0;
        // Read side i only while the other side's queue is not too long (backpressure).
        if (r->out[1 - i].size() < kMaxPending) ev |= POLLIN;
        if (!r->out[i].empty()) ev |= POLLOUT;
        fds.push_back({r->fd[i], ev, 0});
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents & POLLIN) {
      char buf[64];
      while (::read(wake_pipe_[0], buf, sizeof buf) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (;;) {
        int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0) break;
        std::string host;
        uint16_t port;
        {
          std::lock_guard lock(mu_);
          host = upstream_host_;
          port = upstream_port_;
        }
        int u = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        bool ok = port != 0 && ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) == 1 &&
                  ::connect(u, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
        if (!ok) {
          ::close(u);
          ::close(c);
          continue;
        }
        set_nonblocking(u);
        int one = 1;
        ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto r = std::make_unique<relay>();
        r->fd[0] = c;
        r->fd[1] = u;
        {
          std::lock_guard lock(mu_);
          r->capture_index = captures_.size();
          captures_.emplace_back();
        }
        relays.push_back(std::move(r));
      }
    }
    // Only relays that existed when `fds` was built have entries in it.
    size_t polled = (fds.size() - 2) / 2;
    for (size_t k = 0; k < polled; ++k) {
      relay& r = *relays[k];
      for (int i = 0; i < 2 && !r.dead; ++i) {
        short rev = fds[2 + 2 * k + i].revents;
        if (rev & (POLLIN | POLLHUP | POLLERR)) {
          uint8_t buf[65536];
          ssize_t n = ::recv(r.fd[i], buf, sizeof buf, 0);
          size_t relay_bytes = n > 0 ? static_cast<size_t>(n) : 0;
          bool cut = false;
          if (n > 0 && i == 1) relay_bytes = relayable(r, buf, static_cast<size_t>(n), cut);
          if (cut) {
            // Relay what preceded the doomed response, then drop the connection.
            r.out[0].insert(r.out[0].end(), buf, buf + relay_bytes);
            if (!r.out[0].empty())
              (void)!::send(r.fd[0], r.out[0].data(), r.out[0].size(), MSG_NOSIGNAL);
            {
              std::lock_guard lock(mu_);
              if (refuse_after_cut_) upstream_port_ = 0;
            }
            cuts_done_++;
            kill_relay(r);
            continue;
          }
          if (n > 0) {
            r.out[1 - i].insert(r.out[1 - i].end(), buf, buf + n);
            if (i == 0) {
              std::lock_guard lock(mu_);
              auto& cap = captures_[r.capture_index];
              cap.insert(cap.end(), buf, buf + n);
              // Whole frames only: size (4) then api key (2).
              while (cap.size() - r.parsed >= 6) {
                const uint8_t* f = cap.data() + r.parsed;
                auto size = static_cast<size_t>(static_cast<uint32_t>(read_be32(f)));
                if (cap.size() - r.parsed < 4 + size) break;
                auto key = static_cast<int16_t>((f[4] << 8) | f[5]);
                if (key == cut_api_key_ && cuts_left_ > 0 && !r.cut_at && size >= 8) {
                  r.cut_at = read_be32(f + 8);  // size, api key, api version, correlation id
                  --cuts_left_;
                }
                r.parsed += 4 + size;
              }
            }
          } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            // Either side went away: flush what we can to the other side, then drop both.
            auto& pending = r.out[1 - i];
            if (!pending.empty())
              (void)!::send(r.fd[1 - i], pending.data(), pending.size(), MSG_NOSIGNAL);
            kill_relay(r);
          }
        }
        if (!r.dead && (rev & POLLOUT) && !r.out[i].empty()) {
          ssize_t n = ::send(r.fd[i], r.out[i].data(), r.out[i].size(), MSG_NOSIGNAL);
          if (n > 0) {
            r.out[i].erase(r.out[i].begin(), r.out[i].begin() + n);
          } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            kill_relay(r);
          }
        }
      }
    }
    std::erase_if(relays, [](const std::unique_ptr<relay>& r) { return r->dead; });
  }
  for (auto& r : relays) {
    if (!r->dead) kill_relay(*r);
  }
}

}  // namespace sluice::compat

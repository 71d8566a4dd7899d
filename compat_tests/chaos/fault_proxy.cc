#include "compat_tests/chaos/fault_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace sluice::compat::chaos {

namespace {

constexpr size_t buffer_capacity = 64 * 1024;

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

sockaddr_in loopback(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// One direction: bytes read from `from` wait in `buffer` until written to `to`.
struct pipe_half {
  std::vector<char> buffer;
  size_t begin = 0;
  size_t end = 0;
  bool eof = false;  // `from` closed; once the buffer drains, the connection goes
  size_t pending() const { return end - begin; }
};

struct connection {
  int client = -1;
  int upstream = -1;  // -1 while accepted during a cut and not yet connected onwards
  pipe_half up;       // client -> upstream
  pipe_half down;     // upstream -> client
  bool dead = false;
  ~connection() {
    if (client >= 0) ::close(client);
    if (upstream >= 0) ::close(upstream);
  }
};

// Reads what fits into `h` from `fd`; false when the connection should go (error).
bool fill(int fd, pipe_half& h) {
  if (h.end == h.buffer.size()) return true;
  ssize_t n = ::read(fd, h.buffer.data() + h.end, h.buffer.size() - h.end);
  if (n > 0) {
    h.end += static_cast<size_t>(n);
  } else if (n == 0) {
    h.eof = true;
  } else if (errno != EAGAIN && errno != EINTR) {
    return false;
  }
  return true;
}

bool drain(int fd, pipe_half& h) {
  if (h.pending() == 0) {
    h.begin = h.end = 0;
    return true;
  }
  ssize_t n = ::send(fd, h.buffer.data() + h.begin, h.pending(), MSG_NOSIGNAL);
  if (n > 0) {
    h.begin += static_cast<size_t>(n);
  } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
    return false;
  }
  // Room again at the end: the reading side is polled only while the buffer is not full.
  if (h.begin == h.end) {
    h.begin = h.end = 0;
  } else if (h.begin > 0) {
    std::memmove(h.buffer.data(), h.buffer.data() + h.begin, h.pending());
    h.end -= h.begin;
    h.begin = 0;
  }
  return true;
}

// Connects to the target; -1 if it refuses (the target is down: the client sees its connection
// closed, as it would see a refused one).
int connect_upstream(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a = loopback(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  set_nonblocking(fd);
  return fd;
}

}  // namespace

fault_proxy::fault_proxy(std::string name, uint16_t target_port)
    : name_(std::move(name)), target_port_(target_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("fault_proxy: socket failed");
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a = loopback(0);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("fault_proxy: cannot listen");
  }
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  set_nonblocking(listen_fd_);
  if (::pipe2(wake_fds_, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("fault_proxy: pipe failed");
  }
  thread_ = std::thread([this] { run(); });
}

fault_proxy::~fault_proxy() {
  stop_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
  ::close(listen_fd_);
  ::close(wake_fds_[0]);
  ::close(wake_fds_[1]);
}

void fault_proxy::cut() {
  cut_ = true;
  wake();
}

void fault_proxy::heal() {
  cut_ = false;
  wake();
}

void fault_proxy::wake() {
  char c = 0;
  [[maybe_unused]] ssize_t n = ::write(wake_fds_[1], &c, 1);
}

void fault_proxy::run() {
  std::vector<std::unique_ptr<connection>> conns;
  std::vector<pollfd> fds;
  while (!stop_.load()) {
    const bool cut = cut_.load();
    if (!cut) {
      // Connections accepted during a cut go onwards now.
      for (auto& c : conns) {
        if (c->upstream >= 0 || c->dead) continue;
        c->upstream = connect_upstream(target_port_);
        if (c->upstream < 0) c->dead = true;
      }
    }
    std::erase_if(conns, [](const std::unique_ptr<connection>& c) { return c->dead; });
    fds.clear();
    fds.push_back({wake_fds_[0], POLLIN, 0});
    fds.push_back({listen_fd_, POLLIN, 0});
    // During a cut nothing of a connection is watched, errors and hang-ups included: a silent
    // network delivers neither data nor resets.
    if (!cut) {
      for (auto& c : conns) {
        short client_events = 0;
        short upstream_events = 0;
        if (!c->up.eof && c->up.end < c->up.buffer.size()) client_events |= POLLIN;
        if (!c->down.eof && c->down.end < c->down.buffer.size()) upstream_events |= POLLIN;
        if (c->up.pending() > 0) upstream_events |= POLLOUT;
        if (c->down.pending() > 0) client_events |= POLLOUT;
        fds.push_back({c->client, client_events, 0});
        fds.push_back({c->upstream, upstream_events, 0});
      }
    }
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      char drainbuf[64];
      while (::read(wake_fds_[0], drainbuf, sizeof drainbuf) > 0) {
      }
    }
    if (fds[1].revents & POLLIN) {
      for (int accepted = 0; accepted < 64; ++accepted) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) break;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<connection>();
        c->client = fd;
        c->up.buffer.resize(buffer_capacity);
        c->down.buffer.resize(buffer_capacity);
        if (!cut_.load()) {
          c->upstream = connect_upstream(target_port_);
          if (c->upstream < 0) c->dead = true;
        }
        conns.push_back(std::move(c));
      }
    }
    if (cut || cut_.load()) continue;
    // Only the connections that were polled: those accepted just now have no entry yet.
    for (size_t i = 2; i + 1 < fds.size(); i += 2) {
      connection& c = *conns[(i - 2) / 2];
      const short cr = fds[i].revents;
      const short ur = fds[i + 1].revents;
      bool ok = true;
      if (cr & (POLLIN | POLLHUP | POLLERR)) ok = ok && fill(c.client, c.up);
      if (ur & (POLLIN | POLLHUP | POLLERR)) ok = ok && fill(c.upstream, c.down);
      ok = ok && drain(c.upstream, c.up) && drain(c.client, c.down);
      // A side that closed ends the connection once what it sent has been passed on.
      if (!ok || (c.up.eof && c.up.pending() == 0) || (c.down.eof && c.down.pending() == 0))
        c.dead = true;
    }
  }
}

}  // namespace sluice::compat::chaos

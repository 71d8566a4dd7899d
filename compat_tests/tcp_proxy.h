#pragma once
// A loopback TCP proxy that records what clients send.
//
// Start it first, start the broker with advertised.listeners pointing at `port()` (so metadata
// sends clients back through the proxy and nothing bypasses it), then `set_upstream()` to the
// broker's real port. Every accepted connection is relayed byte-for-byte to the upstream; the
// client->broker bytes of each connection are kept for the test to parse.
//
// Threading: one internal thread does all socket work with poll(2). Public methods may be called
// from any thread; the captures are guarded by a mutex.

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace sluice::compat {

class tcp_proxy {
 public:
  tcp_proxy();
  ~tcp_proxy();
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  uint16_t port() const { return port_; }
  void set_upstream(const std::string& host, uint16_t port);

  // Client->broker bytes of every connection so far, in accept order.
  std::vector<std::vector<uint8_t>> client_streams() const;

  // Fault injection: the next `times` connections that send a request with `api_key` are cut as
  // soon as the broker starts answering it, the answer (and anything after it) dropped. The broker
  // has done the work; the client sees a lost connection and retries: a duplicate request.
  // With `then_refuse`, each cut also makes the proxy refuse new connections until the next
  // set_upstream(), so the test can restart the broker before the client's retry gets through.
  void cut_on_response_to(int16_t api_key, int times, bool then_refuse = false);
  // How many connections have been cut so far.
  int cuts() const { return cuts_done_; }

 private:
  void run();

  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};

  mutable std::mutex mu_;
  std::string upstream_host_;
  uint16_t upstream_port_ = 0;
  std::vector<std::vector<uint8_t>> captures_;
  int16_t cut_api_key_ = -1;
  int cuts_left_ = 0;
  bool refuse_after_cut_ = false;
  std::atomic<int> cuts_done_{0};

  std::thread thread_;
};

}  // namespace sluice::compat

#pragma once
// A TCP relay on loopback that can stop forwarding, for the fault-injection checker: cut() makes
// the network between its two sides silent (no reset, no close: the peers' requests wait in kernel
// buffers until their own timeouts fire), heal() lets the bytes through again.
//
// Unlike tcp_proxy it keeps nothing: each direction of each connection has one bounded buffer,
// and a full buffer stops the reading side (TCP's own flow control does the rest).
//
// Threading: one poll thread per proxy relays; cut(), heal() and port() may be called from any
// thread.

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace sluice::compat::chaos {

class fault_proxy {
 public:
  // Listens on 127.0.0.1 (an ephemeral port) and relays to 127.0.0.1:target_port. `name` appears
  // in the proxy's log lines.
  fault_proxy(std::string name, uint16_t target_port);
  ~fault_proxy();
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  uint16_t port() const { return port_; }
  const std::string& name() const { return name_; }
  // Stops forwarding in both directions, on existing connections and on those accepted from now
  // on (accepted, but not connected onwards until heal()).
  void cut();
  void heal();
  bool is_cut() const { return cut_.load(); }

 private:
  void run();
  void wake();

  std::string name_;
  uint16_t target_port_;
  uint16_t port_ = 0;
  int listen_fd_ = -1;
  int wake_fds_[2] = {-1, -1};
  std::atomic<bool> cut_{false};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sluice::compat::chaos

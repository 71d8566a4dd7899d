#pragma once
// A private single-member etcd for tests: started on free loopback ports (never 2379/2380, where
// the package's own service may listen) with a temporary data directory, and killed by its pid
// when the object goes. Header-only, so that both the coordination store's tests
// (server/tests/etcd_store_test.cc) and the compat tests' cluster fixture
// (compat_tests/cluster_fixture.h) start etcd the same way; it links nothing but Boost's headers
// and depends on no test framework.
//
// $SLUICE_ETCD names the binary, else `etcd` from /usr/bin, /usr/local/bin or /usr/sbin (Debian's
// etcd-server, installed by `scripts/install-deps.sh test`). A member starts in about half a
// second, with etcd's default timings, which are also what makes a 1 s lease come back as 2 s.
//
// Threading: an etcd_process is used from the thread that created it. The child is started with
// PR_SET_PDEATHSIG tied to that thread, so etcd dies with the test if the test dies.

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

namespace sluice::server::coordination::testing {

// A loopback port nobody listens on right now.
inline uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor probe(
      io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return probe.local_endpoint().port();
}

// Whether every thread of process `pid` is stopped (SIGSTOP takes effect asynchronously, thread
// by thread).
inline bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream stat(task.path() / "stat");
    std::string line;
    std::getline(stat, line);
    // The state follows the parenthesised command name: "pid (comm) S ...".
    size_t close = line.rfind(')');
    if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'T')
      return false;
  }
  return !ec;
}

// $SLUICE_ETCD, else the first executable `etcd` in the usual directories; throws if there is none.
inline std::string etcd_binary() {
  namespace fs = std::filesystem;
  const char* env = std::getenv("SLUICE_ETCD");
  std::string bin = env != nullptr && *env != '\0' ? env : "";
  if (bin.empty()) {
    for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/sbin"}) {
      if (::access((fs::path(dir) / "etcd").c_str(), X_OK) == 0) {
        bin = (fs::path(dir) / "etcd").string();
        break;
      }
    }
  }
  if (bin.empty() || ::access(bin.c_str(), X_OK) != 0) {
    throw std::runtime_error(
        "no etcd binary: scripts/install-deps.sh test installs etcd-server, or set SLUICE_ETCD");
  }
  return bin;
}

// Blocking HTTP POST to 127.0.0.1:port for the test thread's own use (readiness, compaction,
// lease state, hand-made transactions), with socket timeouts so that a stopped etcd cannot hang
// the test. The body of a 200 answer; nullopt for any other status or a failure.
inline std::optional<std::string> blocking_post(uint16_t port, const std::string& path,
                                                const std::string& body) {
  namespace asio = boost::asio;
  namespace http = boost::beast::http;
  using tcp = asio::ip::tcp;
  try {
    asio::io_context io;
    tcp::socket socket(io);
    socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    timeval timeout{2, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    http::request<http::string_body> request{http::verb::post, path, 11};
    request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(socket, request);
    boost::beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(socket, buffer, response);
    if (response.result_int() != 200) return std::nullopt;
    return response.body();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

class etcd_process {
 public:
  // Asked once when the object goes: true prints the tail of etcd's log to stderr (a GoogleTest
  // user passes `[] { return ::testing::Test::HasFailure(); }`). Empty: never printed.
  using print_log_predicate = std::function<bool()>;

  // Starts etcd and returns once it answers a range request; throws with its log if it does not.
  explicit etcd_process(print_log_predicate print_log_on_exit = {})
      : print_log_on_exit_(std::move(print_log_on_exit)) {
    namespace fs = std::filesystem;
    std::string tmpl = (fs::temp_directory_path() / "sluice-etcd-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    // Ports are picked free, then bound by etcd: another process can take one in between.
    for (int attempt = 0; attempt < 3; ++attempt) {
      client_port_ = free_port();
      peer_port_ = free_port();
      if (client_port_ == peer_port_) continue;
      if (start()) return;
      fs::remove_all(dir_ / "data");
    }
    std::string text = log();
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
    throw std::runtime_error("etcd did not start; its log:\n" + text);
  }
  ~etcd_process() {
    resume();
    kill();
    if (print_log_on_exit_ && print_log_on_exit_()) {
      std::cerr << "---- etcd log ----\n" << log() << "\n----\n";
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  etcd_process(const etcd_process&) = delete;
  etcd_process& operator=(const etcd_process&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(client_port_); }
  uint16_t client_port() const { return client_port_; }
  pid_t pid() const { return pid_; }

  // SIGKILL and reap.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
  }
  // Kills and starts again on the same ports and data directory.
  void restart() {
    kill();
    if (!start()) throw std::runtime_error("etcd did not restart; its log:\n" + log());
  }
  // Returns once every thread of etcd is stopped: SIGSTOP takes effect asynchronously, and a
  // thread still running could answer a request sent right after pause().
  void pause() {
    if (pid_ > 0 && !paused_) {
      ::kill(pid_, SIGSTOP);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (!all_threads_stopped() && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    paused_ = true;
  }
  void resume() {
    if (pid_ > 0 && paused_) ::kill(pid_, SIGCONT);
    paused_ = false;
  }

  bool all_threads_stopped() const { return testing::all_threads_stopped(pid_); }

  // A POST to etcd's HTTP/JSON gateway, e.g. post("/v3/kv/range", R"({"key":"..."})"): the body
  // of a 200 answer, nullopt otherwise.
  std::optional<std::string> post(const std::string& path, const std::string& body) const {
    return blocking_post(client_port_, path, body);
  }

  // The last 8000 bytes of etcd's log.
  std::string log() const {
    std::ifstream in(dir_ / "etcd.log");
    std::ostringstream s;
    s << in.rdbuf();
    std::string text = s.str();
    return text.size() > 8000 ? "...\n" + text.substr(text.size() - 8000) : text;
  }

 private:
  // Starts etcd and waits until it answers; false if it exits or stays silent.
  bool start() {
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
    std::vector<std::string> args = {etcd_binary(),
                                     "--name=sluice-test",
                                     "--data-dir=" + (dir_ / "data").string(),
                                     "--listen-client-urls=" + url(),
                                     "--advertise-client-urls=" + url(),
                                     "--listen-peer-urls=" + peer,
                                     "--initial-advertise-peer-urls=" + peer,
                                     "--initial-cluster=sluice-test=" + peer,
                                     "--initial-cluster-state=new",
                                     "--logger=zap",
                                     "--log-outputs=stderr"};
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    int log_fd =
        ::open((dir_ / "etcd.log").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) throw std::runtime_error("cannot create the etcd log");
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(log_fd);
      throw std::runtime_error("fork failed");
    }
    if (pid == 0) {
      // Only async-signal-safe calls until exec. etcd dies with the test if the test dies.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::syscall(SYS_close_range, 3u, ~0u, 0u);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    pid_ = pid;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      if (post("/v3/kv/range", R"({"key":"AA=="})")) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    return false;
  }

  print_log_predicate print_log_on_exit_;
  std::filesystem::path dir_;
  uint16_t client_port_ = 0;
  uint16_t peer_port_ = 0;
  pid_t pid_ = -1;
  bool paused_ = false;
};

}  // namespace sluice::server::coordination::testing

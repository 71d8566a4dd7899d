// sluice-zerocopy: how fast this machine moves a page-cached file to a loopback TCP socket, by
// read+write, mmap+write, sendfile and splice, and by sendfile on 1, 2 and 4 connections at once.
// The experiment of the zero-copy literature (and of Kafka's design notes), run here so that the
// broker's Fetch path is measured against the limit of the same machine in the same run.
//
//   sluice-zerocopy [--dir /tmp] [--file-size 256MiB] [--bytes 2GiB] [--chunk 1MiB] [--reps 3]
//                   [--methods read+write,mmap+write,sendfile,splice,sendfile*2,sendfile*4]
//                   [--drain copy|trunc] [--receiver process|thread]
//
// The other direction, what a broker must at least spend to persist produced bytes, is the
// `ingest` family: the sender write()s from memory, the receiver recv()s into its 1 MiB buffer and
// then does nothing more (ingest), pwrite()s the bytes to the end of a fresh file in --dir
// (ingest+pwrite; ingest+prealloc+pwrite into a file whose blocks fallocate(2) reserved first), or
// first computes their CRC-32C with the broker's own code (ingest+crc+pwrite).
// For those the receiver's CPU per GB is the figure: the floor under a broker's produce path.
//
// Each connection has a sender thread and a receiver thread; the receivers run in a child process
// (--receiver process, the default: a broker and its clients are separate processes, and the
// scheduler treats threads of one process differently) or in this one. The receiver drains into a
// fixed 1 MiB buffer with recv(2) (--drain copy, the default; sluice-rawfetch drains the same way),
// or discards in the kernel with MSG_TRUNC (--drain trunc: the sender side alone). Senders loop
// over the file until --bytes in total have been sent. The file is written, fsynced and read once
// before the first method, so every method reads the page cache. Before the first pwrite method,
// --bytes are written to a scratch file and deleted, unmeasured: on a virtual machine the first
// touch of a guest page can cost more than the write itself (host-side allocation), a one-off that
// a long-running broker, reusing page-cache pages, does not pay.
//
// One JSON line per method: the median over --reps of GB/s (10^9 B), with min and max, and the
// CPU seconds per GB of the sender threads (the part a broker pays) and of the receivers.

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/common.h"
#include "wire/crc32c.h"

namespace {

using namespace sluice::bench;

constexpr std::string_view tool = "sluice-zerocopy";
constexpr size_t drain_buffer_size = 1 << 20;

enum class method { read_write, mmap_write, sendfile, splice, write_memory };
// What the receiver does with the bytes: drop them (after recv's copy, or in the kernel with
// MSG_TRUNC), or persist them as a broker does.
enum class sink { drain, pwrite, crc_pwrite, prealloc_pwrite };

struct method_spec {
  std::string name;
  method how;
  int connections;
  sink to = sink::drain;
};

method_spec parse_method(const std::string& text) {
  std::string base = text;
  int connections = 1;
  if (size_t star = text.find('*'); star != std::string::npos) {
    base = text.substr(0, star);
    connections = std::stoi(text.substr(star + 1));
  }
  if (base == "read+write") return {base, method::read_write, connections};
  if (base == "mmap+write") return {base, method::mmap_write, connections};
  if (base == "sendfile") return {base, method::sendfile, connections};
  if (base == "splice") return {base, method::splice, connections};
  if (base == "ingest") return {base, method::write_memory, connections, sink::drain};
  if (base == "ingest+pwrite") return {base, method::write_memory, connections, sink::pwrite};
  if (base == "ingest+crc+pwrite") {
    return {base, method::write_memory, connections, sink::crc_pwrite};
  }
  if (base == "ingest+prealloc+pwrite") {
    return {base, method::write_memory, connections, sink::prealloc_pwrite};
  }
  throw std::invalid_argument("unknown method " + text);
}

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

void write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    check(w > 0, "write");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

struct file_source {
  std::string path;
  int fd = -1;  // shared by the senders: every read names its offset, none moves the file position
  int64_t size = 0;
  const uint8_t* map = nullptr;
};

// Sends `total` bytes of the file (looping over it) on `sock`.
void send_file(const file_source& f, method how, int sock, int64_t total, size_t chunk) {
  const int fd = f.fd;
  std::vector<uint8_t> buffer(how == method::read_write ? chunk : 0);
  int pipe_fds[2] = {-1, -1};
  if (how == method::splice) {
    check(::pipe2(pipe_fds, O_CLOEXEC) == 0, "pipe");
    // A pipe as large as the chunk, so one splice pair moves a whole chunk.
    fcntl(pipe_fds[1], F_SETPIPE_SZ, static_cast<int>(chunk));
  }
  off_t offset = 0;
  int64_t left = total;
  while (left > 0) {
    if (offset >= f.size) offset = 0;
    const int64_t in_file = f.size - offset;
    switch (how) {
      case method::read_write: {
        size_t want =
            static_cast<size_t>(std::min<int64_t>({left, in_file, static_cast<int64_t>(chunk)}));
        ssize_t r = ::pread(fd, buffer.data(), want, offset);
        check(r > 0, "pread");
        write_all(sock, buffer.data(), static_cast<size_t>(r));
        offset += r;
        left -= r;
        break;
      }
      case method::mmap_write: {
        size_t want =
            static_cast<size_t>(std::min<int64_t>({left, in_file, static_cast<int64_t>(chunk)}));
        write_all(sock, f.map + offset, want);
        offset += static_cast<off_t>(want);
        left -= static_cast<int64_t>(want);
        break;
      }
      case method::sendfile: {
        ssize_t n = ::sendfile(sock, fd, &offset, static_cast<size_t>(std::min(left, in_file)));
        if (n < 0 && errno == EINTR) continue;
        check(n > 0, "sendfile");
        left -= n;
        break;
      }
      case method::write_memory: {
        // A producer's bytes come from memory: the file's mapping serves as that memory.
        size_t want =
            static_cast<size_t>(std::min<int64_t>({left, in_file, static_cast<int64_t>(chunk)}));
        write_all(sock, f.map + offset, want);
        offset += static_cast<off_t>(want);
        left -= static_cast<int64_t>(want);
        break;
      }
      case method::splice: {
        size_t want =
            static_cast<size_t>(std::min<int64_t>({left, in_file, static_cast<int64_t>(chunk)}));
        loff_t in_off = offset;
        ssize_t n =
            ::splice(fd, &in_off, pipe_fds[1], nullptr, want, SPLICE_F_MOVE | SPLICE_F_MORE);
        if (n < 0 && errno == EINTR) continue;
        check(n > 0, "splice file->pipe");
        ssize_t in_pipe = n;
        while (in_pipe > 0) {
          ssize_t m = ::splice(pipe_fds[0], nullptr, sock, nullptr, static_cast<size_t>(in_pipe),
                               SPLICE_F_MOVE | SPLICE_F_MORE);
          if (m < 0 && errno == EINTR) continue;
          check(m > 0, "splice pipe->socket");
          in_pipe -= m;
        }
        offset += n;
        left -= n;
        break;
      }
    }
  }
  if (pipe_fds[0] >= 0) {
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  }
}

struct run_result {
  double seconds = 0;
  double sender_cpu = 0;
  double receiver_cpu = 0;
};

// Drains one connection as the experiment's receiver does; returns its thread's CPU seconds.
double receive_one(int fd, const method_spec& m, bool trunc, const std::string& dir, int index,
                   int64_t expected, std::string& error) {
  double c0 = thread_cpu_seconds();
  auto buffer = std::make_unique<uint8_t[]>(drain_buffer_size);
  int out = -1;
  if (m.to != sink::drain) {
    std::string path =
        dir + "/sluice-ingest-" + std::to_string(getpid()) + "-" + std::to_string(index);
    out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) error = "create " + path + ": " + std::strerror(errno);
    ::unlink(path.c_str());
    // Blocks allocated up front (Kafka's log.preallocate): appends then skip the file system's
    // delayed-allocation bookkeeping.
    if (out >= 0 && m.to == sink::prealloc_pwrite && ::fallocate(out, 0, 0, expected) != 0) {
      error = std::string("fallocate: ") + std::strerror(errno);
    }
  }
  const bool drop = m.to == sink::drain && trunc;
  off_t written = 0;
  uint32_t crc = 0;
  for (;;) {
    ssize_t r = ::recv(fd, buffer.get(), drain_buffer_size, drop ? MSG_TRUNC : 0);
    if (r > 0) {
      if (m.to == sink::crc_pwrite) {
        crc = sluice::wire::crc32c(crc, {buffer.get(), static_cast<size_t>(r)});
      }
      for (ssize_t done = 0; out >= 0 && done < r;) {
        ssize_t w = ::pwrite(out, buffer.get() + done, static_cast<size_t>(r - done), written);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
          error = std::string("pwrite: ") + std::strerror(errno);
          break;
        }
        done += w;
        written += w;
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) error = std::strerror(errno);
    break;
  }
  const double cpu = thread_cpu_seconds() - c0;
  if (out >= 0) ::close(out);
  // Keeps the CRC from being optimised away.
  if (crc == 0x12345678 && error.empty()) error = "unlucky CRC";
  return cpu;
}

// Runs one receiver thread per descriptor; returns their CPU seconds and the first error.
std::pair<double, std::string> receive_all(const std::vector<int>& fds, const method_spec& m,
                                           bool trunc, const std::string& dir,
                                           int64_t per_connection) {
  std::vector<std::string> errors(fds.size());
  std::vector<double> cpu(fds.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < fds.size(); ++i) {
    threads.emplace_back([&, i] {
      cpu[i] = receive_one(fds[i], m, trunc, dir, static_cast<int>(i), per_connection, errors[i]);
    });
  }
  for (auto& t : threads)
    t.join();
  double total = 0;
  for (double c : cpu)
    total += c;
  for (const std::string& e : errors) {
    if (!e.empty()) return {total, e};
  }
  return {total, {}};
}

// One run of a method: senders in this process; receivers in a child process (the default: a
// broker and its clients are separate processes) or in threads of this one.
run_result run_once(const file_source& f, const method_spec& m, int64_t total, size_t chunk,
                    bool trunc, const std::string& dir, bool receiver_process) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  check(listener >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  check(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
  check(::listen(listener, 16) == 0, "listen");
  socklen_t len = sizeof addr;
  check(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");

  const int n = m.connections;
  std::vector<int> senders(static_cast<size_t>(n));
  std::vector<int> receivers(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    senders[i] = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    check(senders[i] >= 0, "socket");
    check(::connect(senders[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "connect");
    receivers[i] = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    check(receivers[i] >= 0, "accept");
  }
  ::close(listener);

  // Receivers start at once and block in recv until data comes: their CPU counts only work.
  pid_t child = -1;
  int result_pipe[2] = {-1, -1};
  std::pair<double, std::string> received;
  std::thread receiver_threads;
  if (receiver_process) {
    check(::pipe2(result_pipe, O_CLOEXEC) == 0, "pipe");
    child = ::fork();
    check(child >= 0, "fork");
    if (child == 0) {
      for (int fd : senders)
        ::close(fd);
      auto [cpu, error] = receive_all(receivers, m, trunc, dir, total / n);
      std::string msg = std::to_string(cpu) + " " + error;
      ssize_t ignored = ::write(result_pipe[1], msg.data(), msg.size());
      (void)ignored;
      _exit(0);
    }
    ::close(result_pipe[1]);
    for (int fd : receivers)
      ::close(fd);
  } else {
    receiver_threads =
        std::thread([&] { received = receive_all(receivers, m, trunc, dir, total / n); });
  }

  std::atomic<bool> go{false};
  std::atomic<double> sender_cpu{0};
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<size_t>(n));
  const int64_t per_connection = total / n;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      while (!go.load())
        std::this_thread::yield();
      double c0 = thread_cpu_seconds();
      try {
        send_file(f, m.how, senders[i], per_connection, chunk);
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(i)] = e.what();
      }
      sender_cpu.fetch_add(thread_cpu_seconds() - c0);
      ::shutdown(senders[i], SHUT_WR);
    });
  }
  const int64_t start = mono_ns();
  go = true;
  for (auto& t : threads)
    t.join();
  if (receiver_process) {
    int status = 0;
    ::waitpid(child, &status, 0);
  } else {
    receiver_threads.join();
  }
  const double elapsed = seconds_since(start);
  if (receiver_process) {
    char buf[512];
    ssize_t got = ::read(result_pipe[0], buf, sizeof buf - 1);
    ::close(result_pipe[0]);
    std::string msg(buf, static_cast<size_t>(std::max<ssize_t>(got, 0)));
    size_t space = msg.find(' ');
    received.first = std::strtod(msg.c_str(), nullptr);
    received.second =
        space == std::string::npos ? "receiver process failed" : msg.substr(space + 1);
  } else {
    for (int fd : receivers)
      ::close(fd);
  }
  for (int fd : senders)
    ::close(fd);
  for (const std::string& e : errors) {
    if (!e.empty()) throw std::runtime_error(m.name + ": " + e);
  }
  if (!received.second.empty()) throw std::runtime_error(m.name + ": " + received.second);
  return {elapsed, sender_cpu.load(), received.first};
}

void prepare_file(const file_source& f) {
  int fd = ::open(f.path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  check(fd >= 0, "create " + f.path);
  std::vector<uint8_t> block(1 << 20);
  uint64_t x = 88172645463325252ULL;
  for (uint8_t& b : block) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x);
  }
  for (int64_t written = 0; written < f.size; written += static_cast<int64_t>(block.size())) {
    write_all(fd, block.data(),
              static_cast<size_t>(std::min<int64_t>(f.size - written, block.size())));
  }
  // Clean pages: writeback must not run during the measurements.
  check(::fsync(fd) == 0, "fsync");
  for (int64_t pos = 0; pos < f.size; pos += static_cast<int64_t>(block.size())) {
    check(::pread(fd, block.data(), block.size(), pos) >= 0, "pread");
  }
  ::close(fd);
}

// Writes `bytes` to a scratch file and deletes it, so that later page-cache allocations reuse
// pages the (virtual) machine has already backed.
void warm_page_cache(const std::string& dir, int64_t bytes) {
  std::string path = dir + "/sluice-zerocopy-warm-" + std::to_string(getpid());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  check(fd >= 0, "create " + path);
  ::unlink(path.c_str());
  std::vector<uint8_t> block(1 << 20, 0x5a);
  for (int64_t done = 0; done < bytes; done += static_cast<int64_t>(block.size())) {
    write_all(fd, block.data(), block.size());
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    options o(
        argc, argv,
        {"dir", "file-size", "bytes", "chunk", "reps", "methods", "drain", "receiver", "label"});
    file_source f;
    const std::string dir = o.str("dir", "/tmp");
    f.size = o.i64("file-size", int64_t{256} << 20);
    const int64_t total = o.i64("bytes", int64_t{2} << 30);
    const auto chunk = static_cast<size_t>(o.i64("chunk", 1 << 20));
    const int reps = static_cast<int>(std::max<int64_t>(1, o.i64("reps", 3)));
    const std::string drain = o.str("drain", "copy");
    const std::string receiver = o.str("receiver", "process");
    if (receiver != "process" && receiver != "thread") {
      throw std::invalid_argument("--receiver process|thread");
    }
    const bool receiver_process = receiver == "process";
    if (drain != "copy" && drain != "trunc") throw std::invalid_argument("--drain copy|trunc");
    std::vector<method_spec> methods;
    std::string list =
        o.str("methods", "read+write,mmap+write,sendfile,splice,sendfile*2,sendfile*4");
    for (size_t pos = 0; pos <= list.size();) {
      size_t comma = std::min(list.find(',', pos), list.size());
      if (comma > pos) methods.push_back(parse_method(list.substr(pos, comma - pos)));
      pos = comma + 1;
    }
    json_line timeout;
    timeout.add("tool", tool).add("error", "timeout");
    arm_watchdog(300, timeout.str());

    f.path = (std::filesystem::path(dir) / ("sluice-zerocopy-" + std::to_string(getpid()) + ".dat"))
                 .string();
    prepare_file(f);
    f.fd = ::open(f.path.c_str(), O_RDONLY | O_CLOEXEC);
    check(f.fd >= 0, "open");
    // Unlinked at once: the descriptor and the mapping keep it, and nothing is left behind.
    ::unlink(f.path.c_str());
    void* map = ::mmap(nullptr, static_cast<size_t>(f.size), PROT_READ, MAP_SHARED, f.fd, 0);
    check(map != MAP_FAILED, "mmap");
    f.map = static_cast<const uint8_t*>(map);

    bool warmed = false;
    int status = 0;
    for (const method_spec& m : methods) {
      if (m.to != sink::drain && !warmed) {
        warm_page_cache(dir, total);
        warmed = true;
      }
      std::vector<run_result> runs;
      try {
        for (int r = 0; r < reps; ++r)
          runs.push_back(run_once(f, m, total, chunk, drain == "trunc", dir, receiver_process));
      } catch (const std::exception& e) {
        json_line j;
        j.add("tool", tool).add("method", m.name).add("connections", m.connections);
        j.add("error", e.what());
        j.print();
        status = 1;
        continue;
      }
      std::vector<double> rates;
      for (const run_result& r : runs)
        rates.push_back(static_cast<double>(total) / 1e9 / r.seconds);
      std::vector<double> sorted = rates;
      std::sort(sorted.begin(), sorted.end());
      // The run whose rate is the median, for its CPU figures.
      const double median = sorted[sorted.size() / 2];
      const run_result& mid =
          runs[static_cast<size_t>(std::find(rates.begin(), rates.end(), median) - rates.begin())];
      const double gb = static_cast<double>(total) / 1e9;
      json_line j;
      j.add("tool", tool);
      if (o.has("label")) j.add("label", o.str("label", ""));
      j.add("method", m.name).add("connections", m.connections);
      j.add("drain", m.to == sink::drain ? drain : "copy").add("receiver", receiver);
      j.add("bytes", total).add("file_size", f.size).add("chunk", static_cast<int64_t>(chunk));
      j.add("reps", reps).add("gb_per_s", median).add("gb_per_s_min", sorted.front());
      j.add("gb_per_s_max", sorted.back());
      j.add("sender_cpu_s_per_gb", mid.sender_cpu / gb)
          .add("receiver_cpu_s_per_gb", mid.receiver_cpu / gb);
      j.print();
    }
    ::munmap(map, static_cast<size_t>(f.size));
    ::close(f.fd);
    arm_watchdog(0, "");
    return status;
  } catch (const std::exception& e) {
    fail(tool, "", e.what());
  }
}

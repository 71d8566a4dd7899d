#include "server/disk_executor.h"

#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace sluice::server {

namespace asio = boost::asio;

namespace {

constexpr int disk_thread_nice = 10;

std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

thread_pool_disk_executor::thread_pool_disk_executor(asio::io_context& io, int threads) : io_(io) {
  threads = std::max(threads, 1);
  threads_.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i)
    threads_.emplace_back([this] { run_thread(); });
}

thread_pool_disk_executor::~thread_pool_disk_executor() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_)
    t.join();
}

void thread_pool_disk_executor::submit(std::string queue, std::function<void()> work,
                                       std::function<void()> done) {
  enqueue(std::move(queue), {std::move(work), std::move(done), false});
}

void thread_pool_disk_executor::submit_background(std::string queue, std::function<void()> work,
                                                  std::function<void()> done) {
  enqueue(std::move(queue), {std::move(work), std::move(done), true});
}

void thread_pool_disk_executor::enqueue(std::string queue, job j) {
  {
    std::lock_guard lock(mutex_);
    ++submitted_;
    queue_state& q = queues_[queue];
    q.jobs.push_back(std::move(j));
    if (q.running || q.jobs.size() > 1) return;  // already ready or held by a thread
    ready_.push_back(std::move(queue));
  }
  wake_.notify_one();
}

uint64_t thread_pool_disk_executor::in_flight() const {
  std::lock_guard lock(mutex_);
  return submitted_ - completed_.load(std::memory_order_relaxed);
}

void thread_pool_disk_executor::run_thread() {
  pthread_setname_np(pthread_self(), "sluice-disk");
  // Below the io thread: the jobs mostly wait for the device, but the CPU they do use (creating
  // a thousand partitions' files, say) must not delay the thread that serves every socket. On a
  // machine with few cores the io thread would otherwise queue behind them for milliseconds.
  // Best effort: without the permission nothing changes.
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), disk_thread_nice);
  for (;;) {
    std::string name;
    job j;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !ready_.empty(); });
      if (ready_.empty()) return;  // stopping, and every submitted job has been taken
      name = std::move(ready_.front());
      ready_.pop_front();
      queue_state& q = queues_[name];
      q.running = true;
      j = std::move(q.jobs.front());
      q.jobs.pop_front();
    }
    // Keeps io_context::run() from returning before the completion has run.
    auto guard = asio::make_work_guard(io_);
    const std::chrono::nanoseconds cpu_before = thread_cpu_time();
    j.work();
    asio::post(io_, [this, done = std::move(j.done), guard = std::move(guard)]() mutable {
      done();
      completed_.fetch_add(1, std::memory_order_relaxed);
      guard.reset();
    });
    if (j.background) {
      // The queue stays held meanwhile, so its next job waits too.
      std::this_thread::sleep_for((thread_cpu_time() - cpu_before) *
                                  (100 - background_cpu_percent) / background_cpu_percent);
    }
    {
      std::lock_guard lock(mutex_);
      queue_state& q = queues_[name];
      q.running = false;
      if (q.jobs.empty()) {
        queues_.erase(name);
      } else {
        ready_.push_back(std::move(name));
        wake_.notify_one();
      }
    }
  }
}

}  // namespace sluice::server

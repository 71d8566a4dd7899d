#pragma once
// The broker's disk executor (storage/disk_executor.h): a few threads that make the calls that
// may block on the disk, so that the io thread never does.
//
// Queues: jobs of one queue run one at a time in submission order; different queues run on
// different threads at once. A queue is a FIFO of jobs plus a flag saying whether a thread holds
// it; a thread takes the oldest ready queue, runs its front job, and puts the queue back at the
// end of the ready list if it has more, so a queue with many jobs (a busy partition) cannot
// starve the others.
//
// Completions are posted to the io_context, which a work guard per job keeps running: the
// broker's io_context does not run out of work while a job is in flight, so shutdown's
// io_context::run() returns only once every job has completed.
//
// Threading: submit() is called on the io thread (and is also safe from the disk threads);
// jobs run on the disk threads; completions run on the io thread.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "storage/disk_executor.h"

namespace sluice::server {

class thread_pool_disk_executor final : public storage::disk_executor {
 public:
  // Starts `threads` (at least 1) threads posting completions to `io`.
  thread_pool_disk_executor(boost::asio::io_context& io, int threads);
  // Stops the threads after the jobs already submitted have run. Completions not yet run by the
  // io_context are dropped with it.
  ~thread_pool_disk_executor();
  thread_pool_disk_executor(const thread_pool_disk_executor&) = delete;
  thread_pool_disk_executor& operator=(const thread_pool_disk_executor&) = delete;

  void submit(std::string queue, std::function<void()> work, std::function<void()> done) override;
  // Background jobs use at most background_cpu_percent of a core: after each one, its thread
  // sleeps in proportion to the CPU time the job used (Seastar's scheduling groups give such
  // work a small share in the same spirit). A 1,000-partition topic then takes longer to create,
  // and clients' requests stop queueing behind its inode allocations on a small machine.
  void submit_background(std::string queue, std::function<void()> work,
                         std::function<void()> done) override;
  static constexpr int background_cpu_percent = 25;

  // Jobs submitted and not yet completed (their completion not yet run), for tests and logs.
  uint64_t in_flight() const;
  uint64_t completed() const { return completed_.load(std::memory_order_relaxed); }

 private:
  struct job {
    std::function<void()> work;
    std::function<void()> done;
    bool background = false;
  };
  struct queue_state {
    std::deque<job> jobs;
    bool running = false;  // a thread is running this queue's front job
  };

  void run_thread();
  void enqueue(std::string queue, job j);

  boost::asio::io_context& io_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::unordered_map<std::string, queue_state> queues_;
  std::deque<std::string> ready_;  // queues with jobs and no thread, oldest first
  bool stopping_ = false;
  uint64_t submitted_ = 0;
  std::atomic<uint64_t> completed_ = 0;  // counted on the io thread
  std::vector<std::thread> threads_;
};

}  // namespace sluice::server

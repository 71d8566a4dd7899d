#pragma once
// Where storage sends the work that may block on the disk: fsyncs, file creation and deletion,
// renames, checkpoint and snapshot writes, index writes. The thread that owns the logs (the
// broker's io thread) never makes those calls itself; it hands a job the descriptors, paths and
// bytes it needs and gets the result back in a completion that runs on its own thread again.
//
// The rule that keeps this simple: a job never touches a log's state. It sees only what it
// captured (shared file descriptors, paths, byte buffers, a slot for its result); the completion,
// on the owner's thread, applies the result to the log (and does nothing if the log is gone).
//
// Ordering: jobs submitted with the same `queue` name run one at a time, in submission order;
// jobs of different queues may run in parallel. Storage names a queue after the directory or
// file the job changes, so that the jobs of one partition directory stay in order (a group-commit
// fsync after the roll that created its segment; a topic created again after its old directory
// was renamed aside), while different partitions sync in parallel.
//
// The broker's implementation is a small thread pool that posts completions to its io_context
// (server/disk_executor.h); storage's tests use a manual one that runs jobs when told.

#include <functional>
#include <string>

namespace sluice::storage {

class disk_executor {
 public:
  virtual ~disk_executor() = default;

  // Runs `work` on a disk thread once every job submitted earlier to `queue` has finished, then
  // `done` on the thread that owns the logs. `done` never runs before submit() returns.
  virtual void submit(std::string queue, std::function<void()> work,
                      std::function<void()> done) = 0;
  // The same for work that can wait and is CPU-heavy in the kernel: creating and deleting
  // partition directories (ext4's inode allocation). An executor may hold such jobs to a share
  // of one core so that they do not take the CPU from the threads serving clients; by default
  // they are ordinary jobs.
  virtual void submit_background(std::string queue, std::function<void()> work,
                                 std::function<void()> done) {
    submit(std::move(queue), std::move(work), std::move(done));
  }
};

}  // namespace sluice::storage

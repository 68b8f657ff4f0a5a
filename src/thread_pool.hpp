// src/thread_pool.hpp: tangled from notes/thread-pool.org; edit the note, not this file.

// [[file:../notes/thread-pool.org::*Sizing: between MIN and MAX][Sizing: between MIN and MAX:2]]
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

namespace caracal {

// Puma's `threads min, max`, plus how long an idle thread waits before leaving.
struct ThreadPoolSettings {
  int min_threads = 0;
  int max_threads = 5;
  // Long enough that a steady trickle of requests reuses threads, short enough
  // that a burst's threads are returned within seconds.
  std::chrono::milliseconds reap_interval{5000};
};

// A snapshot of the pool, taken under its mutex.
struct ThreadPoolStats {
  int running = 0;    // threads alive (Puma's "spawned")
  int busy = 0;       // threads inside a job
  int idle = 0;       // threads asleep on the condition variable
  int backlog = 0;    // jobs queued, waiting for a thread
  // max_threads - busy - backlog, never below 0: jobs it could start right now
  // without making one wait (queued jobs already own the next free threads).
  int capacity = 0;
  int unjoined = 0;   // threads that left but whose stacks are not yet returned
  std::uint64_t spawned_total = 0;
  std::uint64_t reaped_total = 0;
  std::uint64_t spawn_failures = 0;  // threads the system refused (EAGAIN)
  std::uint64_t job_exceptions = 0;  // jobs that threw (a bug in the caller)
  // Times a thread woke up and found nothing to do: rare, not impossible (see below).
  std::uint64_t empty_wakeups = 0;
};

namespace detail {
// The pool's bounds put in order: 1 <= max_threads, 0 <= min_threads <= max_threads.
ThreadPoolSettings normalized(ThreadPoolSettings settings);
// What `capacity` reports: the threads left once busy ones and queued jobs are counted.
int spare_capacity(int max_threads, int busy, int backlog);
}  // namespace detail
// Sizing: between MIN and MAX:2 ends here

// [[file:../notes/thread-pool.org::*The pool's interface][The pool's interface:1]]
// Runs jobs on between min_threads and max_threads threads.
class ThreadPool {
 public:
  using Job = std::function<void()>;

  explicit ThreadPool(ThreadPoolSettings settings);
  ~ThreadPool();  // stop()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // Queues a job and wakes one idle thread (spawning one if none is idle and
  // the pool is below max). Returns false, dropping the job, once stopping.
  bool submit(Job job);
  // Finishes every queued job, then joins all threads. Idempotent.
  void stop();
  ThreadPoolStats stats() const;

 private:
  using ThreadList = std::list<std::thread>;
  bool spawn_thread();                                 // mutex held; false if refused
  void join_reaped_threads();                          // mutex held
  void work(ThreadList::iterator self);
  void run_one_job(std::unique_lock<std::mutex>& lock);
  bool sleep_until_woken(std::unique_lock<std::mutex>& lock);

  const ThreadPoolSettings settings_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  ThreadList threads_;
  std::vector<ThreadList::iterator> reaped_;  // exited, not yet joined
  int running_ = 0, idle_ = 0, busy_ = 0;
  bool stopping_ = false;
  std::uint64_t spawned_total_ = 0, reaped_total_ = 0, spawn_failures_ = 0;
  std::uint64_t job_exceptions_ = 0, empty_wakeups_ = 0;
};

}  // namespace caracal
// The pool's interface:1 ends here

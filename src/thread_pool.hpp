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
  // How long the reactor may go without a thread, its leader being inside an
  // app, before a standby thread takes it over.
  std::chrono::microseconds takeover_delay{1000};
};

// A snapshot of the pool, taken under its mutex.
struct ThreadPoolStats {
  int running = 0;    // threads alive (Puma's "spawned"), the caller of run_reactor included
  int busy = 0;       // threads inside a job (an app)
  int idle = 0;       // threads asleep on a condition variable
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
  std::uint64_t inline_jobs = 0;  // jobs the leader ran itself, with no thread woken
  std::uint64_t takeovers = 0;    // times a standby took the reactor from a leader in an app
};

namespace detail {
// The pool's bounds put in order: 1 <= max_threads, 0 <= min_threads <= max_threads.
ThreadPoolSettings normalized(ThreadPoolSettings settings);
// What `capacity` reports: the threads left once busy ones and queued jobs are counted.
int spare_capacity(int max_threads, int busy, int backlog);
}  // namespace detail
// Sizing: between MIN and MAX:2 ends here

// [[file:../notes/thread-pool.org::*The pool's interface][The pool's interface:1]]
// The event loop the pool's threads take turns running (the worker's io_context).
struct ReactorTurns {
  // Runs one ready handler, or waits for one; false once the reactor has stopped.
  std::function<bool()> run_one;
  // Makes a waiting run_one return soon; called by a thread that stopped leading.
  std::function<void()> wake;
};

// Runs jobs on between min_threads and max_threads threads (one more with a reactor).
class ThreadPool {
 public:
  using Job = std::function<void()>;
  // Told `true` when the pool gains room for one more job in the app, `false`
  // when it has none left. Called with the pool's mutex held: keep it short.
  using CapacityListener = std::function<void(bool has_room)>;

  explicit ThreadPool(ThreadPoolSettings settings);
  ThreadPool(ThreadPoolSettings settings, ReactorTurns reactor, CapacityListener listener = {});
  ~ThreadPool();  // stop()
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // On the leader, with room in the app: runs the job here and now. Otherwise
  // queues it and wakes one idle thread (spawning one if none is idle and the
  // pool may grow). Returns false, dropping the job, once stopping.
  bool submit(Job job);
  // The calling thread joins the pool as its first leader, and returns once the
  // reactor has stopped (other threads may still be finishing jobs).
  void run_reactor();
  // No more capacity reports after this returns (the worker is closing its gate for good).
  void stop_capacity_reports();
  // Finishes every queued job, then joins all threads. Idempotent. With a
  // reactor, stop the reactor first: a leader leaves only when run_one says so.
  void stop();
  ThreadPoolStats stats() const;

 private:
  using ThreadList = std::list<std::thread>;
  using Clock = std::chrono::steady_clock;
  bool spawn_thread();                                 // mutex held; false if refused
  void join_reaped_threads();                          // mutex held
  void work(ThreadList::iterator self);
  bool take_part(std::unique_lock<std::mutex>& lock, bool until_the_reactor_stops);
  void run_one_job(std::unique_lock<std::mutex>& lock);
  bool sleep_until_woken(std::unique_lock<std::mutex>& lock);
  bool stand_by(std::unique_lock<std::mutex>& lock);
  bool may_run_a_job() const;                          // mutex held
  bool reactor_is_free(Clock::time_point now) const;   // mutex held
  void lead(std::unique_lock<std::mutex>& lock);
  void run_in_place(Job& job, std::unique_lock<std::mutex>& lock);
  void leave_the_reactor_for_an_app();                 // mutex held
  void report_capacity();                              // mutex held
  int thread_limit() const;

  const ThreadPoolSettings settings_;
  const ReactorTurns reactor_;
  CapacityListener listener_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;          // followers sleep here
  std::condition_variable standby_wake_;  // the one standby sleeps here
  std::deque<Job> jobs_;
  ThreadList threads_;
  std::vector<ThreadList::iterator> reaped_;  // exited, not yet joined
  int running_ = 0, idle_ = 0, busy_ = 0;
  bool stopping_ = false;
  bool has_room_ = false;  // what the listener was last told
  // The turns at the reactor (all under mutex_).
  bool reactor_started_ = false, reactor_stopped_ = false;
  bool leader_present_ = false;
  bool leader_in_app_ = false;     // the reactor is free because its leader is in an app
  Clock::time_point left_at_{};    // when it went there
  Clock::time_point last_left_{};  // the last time any leader went there
  bool standby_present_ = false, standby_deep_ = false;
  bool standby_called_ = false;  // a follower was woken or spawned to stand by
  std::uint64_t spawned_total_ = 0, reaped_total_ = 0, spawn_failures_ = 0;
  std::uint64_t job_exceptions_ = 0, empty_wakeups_ = 0, inline_jobs_ = 0, takeovers_ = 0;
};

}  // namespace caracal
// The pool's interface:1 ends here

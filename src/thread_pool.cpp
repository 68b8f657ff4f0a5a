// src/thread_pool.cpp: tangled from notes/thread-pool.org; edit the note, not this file.

// [[file:../notes/thread-pool.org::*Starting, submitting, stopping][Starting, submitting, stopping:2]]
#include "thread_pool.hpp"

#include <algorithm>
#include <iterator>

namespace caracal {

namespace {
// The pool whose reactor this thread is running right now, if any.
thread_local const ThreadPool* leading = nullptr;
// A standby that has seen no leader go into an app for this long sleeps until
// told: a quiet worker then wakes nobody at all.
constexpr std::chrono::seconds kStandbyDozesAfter{1};
}  // namespace

ThreadPool::ThreadPool(ThreadPoolSettings settings) : ThreadPool(settings, {}, {}) {}

ThreadPool::ThreadPool(ThreadPoolSettings settings, ReactorTurns reactor, CapacityListener listener)
    : settings_(detail::normalized(settings)),
      reactor_(std::move(reactor)),
      listener_(std::move(listener)) {
  std::lock_guard lock(mutex_);
  for (int i = 0; i < settings_.min_threads; ++i)
    if (!spawn_thread()) break;  // refused now; submit() tries again when work comes
}

ThreadPool::~ThreadPool() { stop(); }

bool ThreadPool::submit(Job job) {
  std::unique_lock lock(mutex_);
  if (stopping_) return false;
  if (leading == this && busy_ < settings_.max_threads) {
    run_in_place(job, lock);
    return true;
  }
  jobs_.push_back(std::move(job));
  report_capacity();
  join_reaped_threads();
  const bool too_few_sleepers = idle_ < static_cast<int>(jobs_.size());
  const bool may_grow = running_ < thread_limit() && busy_ < settings_.max_threads;
  // A refusal is counted by spawn_thread; the job waits for a thread that exists.
  if (too_few_sleepers && may_grow) spawn_thread();
  wake_.notify_one();
  if (standby_present_) standby_wake_.notify_one();  // it may be the only one awake enough
  return true;
}
// Starting, submitting, stopping:2 ends here

// [[file:../notes/thread-pool.org::*Starting, submitting, stopping][Starting, submitting, stopping:4]]
void ThreadPool::stop() {
  ThreadList threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
    reaped_.clear();
  }
  wake_.notify_all();
  standby_wake_.notify_all();
  for (auto& thread : threads) thread.join();
}

void ThreadPool::stop_capacity_reports() {
  std::lock_guard lock(mutex_);
  listener_ = nullptr;
}

void ThreadPool::report_capacity() {
  const int backlog = static_cast<int>(jobs_.size());
  const bool has_room = detail::spare_capacity(settings_.max_threads, busy_, backlog) > 0;
  if (has_room == has_room_) return;
  has_room_ = has_room;
  if (listener_) listener_(has_room);
}

int ThreadPool::thread_limit() const {
  return settings_.max_threads + (reactor_.run_one ? 1 : 0);
}

ThreadPoolStats ThreadPool::stats() const {
  std::lock_guard lock(mutex_);
  ThreadPoolStats stats;
  stats.running = running_;
  stats.busy = busy_;
  stats.idle = idle_;
  stats.backlog = static_cast<int>(jobs_.size());
  stats.capacity = detail::spare_capacity(settings_.max_threads, busy_, stats.backlog);
  stats.unjoined = static_cast<int>(reaped_.size());
  stats.spawned_total = spawned_total_;
  stats.reaped_total = reaped_total_;
  stats.spawn_failures = spawn_failures_;
  stats.job_exceptions = job_exceptions_;
  stats.empty_wakeups = empty_wakeups_;
  stats.inline_jobs = inline_jobs_;
  stats.takeovers = takeovers_;
  return stats;
}

ThreadPoolSettings detail::normalized(ThreadPoolSettings settings) {
  settings.max_threads = std::max(settings.max_threads, 1);
  settings.min_threads = std::clamp(settings.min_threads, 0, settings.max_threads);
  return settings;
}

int detail::spare_capacity(int max_threads, int busy, int backlog) {
  return std::max(max_threads - busy - backlog, 0);
}
// Starting, submitting, stopping:4 ends here

// [[file:../notes/thread-pool.org::*A thread's life][A thread's life:1]]
bool ThreadPool::spawn_thread() {
  try {
    ThreadList born(1);  // the node first; it joins threads_ once its thread runs
    const auto self = born.begin();
    *self = std::thread([this, self] { work(self); });
    threads_.splice(threads_.end(), born);  // cannot throw; `self` stays valid
  } catch (const std::exception&) {  // EAGAIN from pthread_create, or no memory
    ++spawn_failures_;
    return false;
  }
  ++running_;
  ++spawned_total_;
  return true;
}

void ThreadPool::join_reaped_threads() {
  for (auto it : reaped_) {
    it->join();
    threads_.erase(it);
  }
  reaped_.clear();
}

void ThreadPool::work(ThreadList::iterator self) {
  std::unique_lock lock(mutex_);
  const bool reaped = !take_part(lock, false);
  --running_;
  if (reaped) ++reaped_total_;
  if (!stopping_) reaped_.push_back(self);  // stop() joins the others
}

void ThreadPool::run_reactor() {
  std::unique_lock lock(mutex_);
  reactor_started_ = true;
  ++running_;
  report_capacity();  // the first report: the worker opens its gate
  take_part(lock, true);
  --running_;
}

// False when the thread leaves because it was idle too long.
bool ThreadPool::take_part(std::unique_lock<std::mutex>& lock, bool until_the_reactor_stops) {
  for (;;) {
    join_reaped_threads();  // a burst's leavers return their stacks at our next wake
    if (may_run_a_job()) {
      run_one_job(lock);
      continue;
    }
    if (reactor_is_free(Clock::now())) {
      lead(lock);
      continue;
    }
    if (until_the_reactor_stops ? reactor_stopped_ : stopping_) return true;
    if (!sleep_until_woken(lock) && !until_the_reactor_stops && running_ > settings_.min_threads &&
        !standby_called_)  // a thread called to stand by answers the call instead of leaving
      return false;
  }
}

bool ThreadPool::may_run_a_job() const {
  return !jobs_.empty() && busy_ < settings_.max_threads;
}
// A thread's life:1 ends here

// [[file:../notes/thread-pool.org::*A thread's life][A thread's life:3]]
bool ThreadPool::sleep_until_woken(std::unique_lock<std::mutex>& lock) {
  if (reactor_started_ && !reactor_stopped_ && !standby_present_) return stand_by(lock);
  ++idle_;
  const auto status = wake_.wait_for(lock, settings_.reap_interval);
  --idle_;
  const bool has_work = may_run_a_job() || stopping_ || reactor_is_free(Clock::now());
  if (status == std::cv_status::no_timeout && !has_work) ++empty_wakeups_;
  return has_work || status == std::cv_status::no_timeout;
}

void ThreadPool::run_one_job(std::unique_lock<std::mutex>& lock) {
  Job job = std::move(jobs_.front());
  jobs_.pop_front();
  ++busy_;
  lock.unlock();
  bool threw = false;
  try {
    job();
  } catch (...) {
    threw = true;  // a job must not throw; keep the thread rather than lose it
  }
  job = nullptr;  // destroy captures outside the mutex
  lock.lock();
  --busy_;
  if (threw) ++job_exceptions_;
  report_capacity();
}
// A thread's life:3 ends here

// [[file:../notes/thread-pool.org::*Taking turns at the reactor][Taking turns at the reactor:1]]
bool ThreadPool::reactor_is_free(Clock::time_point now) const {
  if (!reactor_started_ || reactor_stopped_ || leader_present_) return false;
  return !leader_in_app_ || now - left_at_ >= settings_.takeover_delay;
}

void ThreadPool::lead(std::unique_lock<std::mutex>& lock) {
  if (leader_in_app_) ++takeovers_;
  standby_called_ = false;  // whoever was called may have come to lead; call again if needed
  leader_present_ = true;
  leader_in_app_ = false;
  leading = this;
  while (leading == this) {
    lock.unlock();
    bool running = true;
    bool threw = false;
    try {
      running = reactor_.run_one();
    } catch (...) {
      threw = true;
    }
    lock.lock();
    if (threw) ++job_exceptions_;
    if (!running) {
      reactor_stopped_ = true;  // nobody leads again; followers leave when stopped
      leader_present_ = false;
      leading = nullptr;
      wake_.notify_all();
      standby_wake_.notify_all();
      return;
    }
  }
  lock.unlock();
  if (reactor_.wake) reactor_.wake();  // see above: what this thread queued must not wait
  lock.lock();
}
// Taking turns at the reactor:1 ends here

// [[file:../notes/thread-pool.org::*Running the app where the request arrived][Running the app where the request arrived:1]]
void ThreadPool::run_in_place(Job& job, std::unique_lock<std::mutex>& lock) {
  ++busy_;
  ++inline_jobs_;
  leave_the_reactor_for_an_app();
  report_capacity();
  lock.unlock();
  bool threw = false;
  try {
    job();
  } catch (...) {
    threw = true;
  }
  job = nullptr;
  lock.lock();
  --busy_;
  if (threw) ++job_exceptions_;
  report_capacity();
  if (!leader_present_ && !reactor_stopped_ && !may_run_a_job()) {
    leader_present_ = true;  // nobody took it: the reactor is ours again
    leader_in_app_ = false;
    leading = this;
  }
}

void ThreadPool::leave_the_reactor_for_an_app() {
  leading = nullptr;
  leader_present_ = false;
  leader_in_app_ = true;
  left_at_ = last_left_ = Clock::now();
  if (standby_present_) {
    if (standby_deep_) standby_wake_.notify_one();
  } else if (!standby_called_) {
    standby_called_ = true;
    if (idle_ > 0) {
      wake_.notify_one();  // a follower comes to stand by
    } else if (running_ < thread_limit()) {
      standby_called_ = spawn_thread();
    } else {
      standby_called_ = false;  // every thread is busy: the next one free stands by
    }
  }
}
// Running the app where the request arrived:1 ends here

// [[file:../notes/thread-pool.org::*The standby][The standby:2]]
bool ThreadPool::stand_by(std::unique_lock<std::mutex>& lock) {
  standby_present_ = true;
  standby_called_ = false;
  ++idle_;
  const auto now = Clock::now();
  if (!leader_present_ && leader_in_app_) {
    standby_wake_.wait_until(lock, left_at_ + settings_.takeover_delay);
  } else if (now - last_left_ < kStandbyDozesAfter) {
    standby_wake_.wait_for(lock, settings_.takeover_delay);
  } else {
    standby_deep_ = true;
    standby_wake_.wait(lock);
    standby_deep_ = false;
  }
  --idle_;
  standby_present_ = false;
  return true;
}

}  // namespace caracal
// The standby:2 ends here

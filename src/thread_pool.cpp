// src/thread_pool.cpp: tangled from notes/thread-pool.org; edit the note, not this file.

// [[file:../notes/thread-pool.org::*Starting, submitting, stopping][Starting, submitting, stopping:2]]
#include "thread_pool.hpp"

#include <algorithm>
#include <iterator>

namespace caracal {

ThreadPool::ThreadPool(ThreadPoolSettings settings) : settings_(detail::normalized(settings)) {
  std::lock_guard lock(mutex_);
  for (int i = 0; i < settings_.min_threads; ++i)
    if (!spawn_thread()) break;  // refused now; submit() tries again when work comes
}

ThreadPool::~ThreadPool() { stop(); }

bool ThreadPool::submit(Job job) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  jobs_.push_back(std::move(job));
  join_reaped_threads();
  const bool too_few_sleepers = idle_ < static_cast<int>(jobs_.size());
  const bool below_max = running_ < settings_.max_threads;
  // A refusal is counted by spawn_thread; the job waits for a thread that exists.
  if (too_few_sleepers && below_max) spawn_thread();
  wake_.notify_one();
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
  for (auto& thread : threads) thread.join();
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
  for (;;) {
    join_reaped_threads();  // a burst's leavers return their stacks at our next wake
    if (!jobs_.empty()) {
      run_one_job(lock);
      continue;
    }
    if (stopping_) break;
    if (!sleep_until_woken(lock) && running_ > settings_.min_threads) {
      ++reaped_total_;
      break;
    }
  }
  --running_;
  if (!stopping_) reaped_.push_back(self);  // stop() joins the others
}
// A thread's life:1 ends here

// [[file:../notes/thread-pool.org::*A thread's life][A thread's life:3]]
bool ThreadPool::sleep_until_woken(std::unique_lock<std::mutex>& lock) {
  ++idle_;
  const auto status = wake_.wait_for(lock, settings_.reap_interval);
  --idle_;
  const bool has_work = !jobs_.empty() || stopping_;
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
}

}  // namespace caracal
// A thread's life:3 ends here

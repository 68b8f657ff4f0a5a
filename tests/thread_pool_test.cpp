// tests/thread_pool_test.cpp: tangled from notes/thread-pool.org; edit the note, not this file.

// [[file:../notes/thread-pool.org::*Tests][Tests:2]]
#include <catch2/catch.hpp>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include "thread_pool.hpp"

using namespace std::chrono_literals;
using caracal::ThreadPool;
using caracal::ThreadPoolSettings;
using caracal::ThreadPoolStats;

namespace {
// Enough for any condition in these tests on a loaded machine, and still finite.
constexpr auto kPatience = 10s;

// Polls the pool until `ok` holds or the patience runs out; returns the last answer.
template <class Predicate>
bool eventually(const ThreadPool& pool, Predicate ok) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!ok(pool.stats())) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}
}  // namespace
// Tests:2 ends here

// [[file:../notes/thread-pool.org::*Tests][Tests:3]]
// A burst larger than the pool must use every allowed thread and queue the rest.
TEST_CASE("a pool under load grows to max threads and queues the excess") {
  ThreadPool pool({.min_threads = 0, .max_threads = 4, .reap_interval = 60s});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  for (int i = 0; i < 8; ++i) pool.submit([released] { released.wait(); });
  REQUIRE(eventually(pool, [](const ThreadPoolStats& s) { return s.busy == 4; }));
  const auto stats = pool.stats();
  CHECK(stats.running == 4);
  CHECK(stats.backlog == 4);
  CHECK(stats.capacity == 0);
  release.set_value();
  REQUIRE(eventually(pool, [](const ThreadPoolStats& s) { return s.backlog == 0 && s.busy == 0; }));
}

// Threads spawned for a burst must be returned, stacks and all, with no new work to trigger it.
TEST_CASE("idle threads are reaped back to min threads and joined without another submit") {
  ThreadPool pool({.min_threads = 1, .max_threads = 4, .reap_interval = 50ms});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  for (int i = 0; i < 4; ++i) pool.submit([released] { released.wait(); });
  REQUIRE(eventually(pool, [](const ThreadPoolStats& s) { return s.running == 4; }));
  release.set_value();
  REQUIRE(eventually(pool, [](const ThreadPoolStats& s) { return s.running == 1; }));
  CHECK(pool.stats().reaped_total == 3);
  CHECK(eventually(pool, [](const ThreadPoolStats& s) { return s.unjoined == 0; }));
}

// Losing or repeating a job would lose or repeat a request.
TEST_CASE("every submitted job runs exactly once, and stop finishes queued work") {
  constexpr int kJobs = 2000;
  std::vector<std::atomic<int>> runs(kJobs);
  {
    ThreadPool pool({.min_threads = 2, .max_threads = 6, .reap_interval = 10ms});
    for (int i = 0; i < kJobs; ++i) pool.submit([&runs, i] { runs[i].fetch_add(1); });
    pool.stop();
    CHECK_FALSE(pool.submit([] {}));
  }
  int wrong = 0;
  for (auto& count : runs) wrong += count.load() != 1;
  CHECK(wrong == 0);
}

// notify_all would wake every sleeper for one job; with no thread busy, any extra wakeup shows.
TEST_CASE("a submitted job wakes exactly one idle thread") {
  ThreadPool pool({.min_threads = 4, .max_threads = 4, .reap_interval = 3600s});
  REQUIRE(eventually(pool, [](const ThreadPoolStats& s) { return s.idle == 4; }));
  for (int round = 0; round < 20; ++round) {
    std::promise<void> done;
    pool.submit([&done] { done.set_value(); });
    done.get_future().wait();
    REQUIRE(eventually(pool, [](const ThreadPoolStats& s) { return s.idle == 4; }));
  }
  CHECK(pool.stats().empty_wakeups == 0);
  CHECK(pool.stats().spawned_total == 4);
}

// A throwing job must not take its thread down with it, nor go unnoticed.
TEST_CASE("a job that throws is counted and leaves the pool able to run the next job") {
  std::promise<void> done;  // before the pool: the pool joins its threads before `done` goes
  ThreadPool pool({.min_threads = 1, .max_threads = 1, .reap_interval = 60s});
  pool.submit([] { throw 42; });
  pool.submit([&done] { done.set_value(); });
  CHECK(done.get_future().wait_for(kPatience) == std::future_status::ready);
  CHECK(pool.stats().running == 1);
  CHECK(pool.stats().job_exceptions == 1);
}

// "threads 8, 2" must not give a worker more threads than its maximum.
TEST_CASE("a minimum above the maximum is clamped to the maximum") {
  ThreadPool pool({.min_threads = 8, .max_threads = 2, .reap_interval = 60s});
  CHECK(pool.stats().running == 2);
  CHECK(pool.stats().spawned_total == 2);
  CHECK(caracal::detail::normalized({.min_threads = -1, .max_threads = 0}).max_threads == 1);
  CHECK(caracal::detail::normalized({.min_threads = -1, .max_threads = 0}).min_threads == 0);
}

// Queued jobs own the next free threads, so the heartbeat must not report them as room.
TEST_CASE("capacity counts queued jobs as well as busy threads") {
  CHECK(caracal::detail::spare_capacity(5, 2, 0) == 3);
  CHECK(caracal::detail::spare_capacity(5, 2, 2) == 1);
  CHECK(caracal::detail::spare_capacity(5, 5, 7) == 0);
}
// Tests:3 ends here

// [[file:../notes/thread-pool.org::*Tests][Tests:5]]
// A refused thread (EAGAIN) must cost a delay, not the process (std::terminate) or the job.
TEST_CASE("a pool the system refuses a thread keeps the job and runs it once a thread exists") {
  std::atomic<int> ran{0};  // before the pool: jobs may touch it until the pool is joined
  ThreadPool pool({.min_threads = 0, .max_threads = 2, .reap_interval = 60s});
  pthread_attr_t saved, unmappable;
  REQUIRE(::pthread_getattr_default_np(&saved) == 0);
  ::pthread_attr_init(&unmappable);
  ::pthread_attr_setstacksize(&unmappable, std::size_t{1} << 46);
  REQUIRE(::pthread_setattr_default_np(&unmappable) == 0);
  const bool queued = pool.submit([&ran] { ++ran; });
  ::pthread_setattr_default_np(&saved);
  ::pthread_attr_destroy(&unmappable);
  ::pthread_attr_destroy(&saved);
  CHECK(queued);
  CHECK(pool.stats().spawn_failures == 1);
  CHECK(pool.stats().backlog == 1);
  pool.submit([&ran] { ++ran; });
  CHECK(eventually(pool, [&ran](const ThreadPoolStats&) { return ran.load() == 2; }));
}
// Tests:5 ends here

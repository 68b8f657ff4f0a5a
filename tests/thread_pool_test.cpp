// tests/thread_pool_test.cpp: tangled from notes/thread-pool.org; edit the note, not this file.

// [[file:../notes/thread-pool.org::*Tests][Tests:2]]
#include <catch2/catch.hpp>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
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

// [[file:../notes/thread-pool.org::*The turns at the reactor][The turns at the reactor:1]]
namespace {
// A reactor for tests: handlers run one at a time by whichever thread leads.
class TestReactor {
 public:
  void post(std::function<void()> handler) {
    std::lock_guard lock(mutex_);
    handlers_.push_back(std::move(handler));
    ready_.notify_all();
  }
  void stop() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    ready_.notify_all();
  }
  caracal::ReactorTurns turns() {
    return {[this] { return run_one(); }, [this] { ready_.notify_all(); }};
  }

 private:
  bool run_one() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [this] { return stopped_ || !handlers_.empty(); });
    if (stopped_) return false;
    auto handler = std::move(handlers_.front());
    handlers_.pop_front();
    lock.unlock();
    handler();
    return true;
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> handlers_;
  bool stopped_ = false;
};

// A pool leading a TestReactor on a thread of its own, stopped in order at the end.
struct LeadingPool {
  explicit LeadingPool(ThreadPoolSettings settings, ThreadPool::CapacityListener listener = {})
      : pool(settings, reactor.turns(), std::move(listener)),
        main([this] { pool.run_reactor(); }) {}
  ~LeadingPool() {
    reactor.stop();
    main.join();
    pool.stop();
  }
  TestReactor reactor;
  ThreadPool pool;
  std::thread main;
};
}  // namespace
// The turns at the reactor:1 ends here

// [[file:../notes/thread-pool.org::*The turns at the reactor][The turns at the reactor:2]]
TEST_CASE("the leader runs the app itself, on the thread that read the request") {
  LeadingPool leading({.min_threads = 0, .max_threads = 4, .reap_interval = 60s});
  constexpr int kRequests = 100;
  std::atomic<int> same_thread{0}, done{0};
  for (int i = 0; i < kRequests; ++i)
    leading.reactor.post([&] {
      const auto reader = std::this_thread::get_id();
      leading.pool.submit([&, reader] {
        same_thread += std::this_thread::get_id() == reader;
        ++done;
      });
    });
  REQUIRE(eventually(leading.pool, [&](const ThreadPoolStats&) { return done.load() == kRequests; }));
  CHECK(same_thread.load() == kRequests);
  const auto stats = leading.pool.stats();
  CHECK(stats.inline_jobs == kRequests);
  CHECK(stats.spawned_total <= 1);  // the standby, spawned at the first request
  CHECK(stats.takeovers == 0);
}
// The turns at the reactor:2 ends here

// [[file:../notes/thread-pool.org::*The turns at the reactor][The turns at the reactor:3]]
TEST_CASE("a leader stuck in a slow app loses the reactor and other requests go on") {
  LeadingPool leading({.min_threads = 0, .max_threads = 2, .reap_interval = 60s});
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::promise<void> fast_done;
  leading.reactor.post([&] { leading.pool.submit([released] { released.wait(); }); });
  leading.reactor.post([&] { leading.pool.submit([&fast_done] { fast_done.set_value(); }); });
  CHECK(fast_done.get_future().wait_for(kPatience) == std::future_status::ready);
  CHECK(leading.pool.stats().takeovers >= 1);
  // The fast job may still be returning; the slow one stays in its app.
  CHECK(eventually(leading.pool, [](const ThreadPoolStats& s) { return s.busy == 1; }));
  release.set_value();
  CHECK(eventually(leading.pool, [](const ThreadPoolStats& s) { return s.busy == 0; }));
}
// The turns at the reactor:3 ends here

// [[file:../notes/thread-pool.org::*The turns at the reactor][The turns at the reactor:4]]
TEST_CASE("with every thread in the app a request waits in the queue and the gate is told") {
  std::mutex reports_mutex;
  std::vector<bool> reports;
  LeadingPool leading({.min_threads = 0, .max_threads = 1, .reap_interval = 60s},
                      [&](bool has_room) {
                        std::lock_guard lock(reports_mutex);
                        reports.push_back(has_room);
                      });
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> second_ran{false};
  std::thread::id slow_thread, second_thread;
  leading.reactor.post([&] {
    leading.pool.submit([&, released] {
      slow_thread = std::this_thread::get_id();
      released.wait();
    });
  });
  leading.reactor.post([&] {
    leading.pool.submit([&] {
      second_thread = std::this_thread::get_id();
      second_ran = true;
    });
  });
  REQUIRE(eventually(leading.pool, [](const ThreadPoolStats& s) { return s.backlog == 1; }));
  CHECK_FALSE(second_ran.load());
  release.set_value();
  REQUIRE(eventually(leading.pool, [&](const ThreadPoolStats&) { return second_ran.load(); }));
  CHECK(second_thread == slow_thread);
  REQUIRE(eventually(leading.pool, [](const ThreadPoolStats& s) { return s.capacity == 1; }));
  std::lock_guard lock(reports_mutex);
  CHECK(reports == std::vector<bool>{true, false, true});
}
// The turns at the reactor:4 ends here

// [[file:../notes/thread-pool.org::*The turns at the reactor][The turns at the reactor:5]]
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <string>

TEST_CASE("what an app hands to the reactor is not held back by the apps queued after it") {
  namespace net = boost::asio;
  net::io_context reactor{1};  // as the worker's: one thread at a time runs it
  auto keep_running = net::make_work_guard(reactor);
  ThreadPool pool({.min_threads = 0, .max_threads = 1, .reap_interval = 60s},
                  caracal::ReactorTurns{[&] { return reactor.run_one() > 0; },
                                        [&] { net::post(reactor, [] {}); }});
  std::mutex events_mutex;
  std::vector<std::string> events;
  auto record = [&](std::string event) {
    std::lock_guard lock(events_mutex);
    events.push_back(std::move(event));
  };
  net::post(reactor, [&] {
    pool.submit([&] {
      std::this_thread::sleep_for(50ms);
      net::post(reactor, [&] { record("response 1 written"); });
    });
  });
  for (int app = 2; app <= 4; ++app)
    net::post(reactor, [&, app] {
      pool.submit([&, app] {
        std::this_thread::sleep_for(100ms);
        record("app " + std::to_string(app) + " done");
      });
    });
  std::thread main([&] { pool.run_reactor(); });
  const bool all_four = eventually(pool, [&](const ThreadPoolStats&) {
    std::lock_guard lock(events_mutex);
    return events.size() == 4;
  });
  keep_running.reset();
  reactor.stop();
  main.join();
  pool.stop();
  REQUIRE(all_four);
  CHECK(events.front() == "response 1 written");
}
// The turns at the reactor:5 ends here

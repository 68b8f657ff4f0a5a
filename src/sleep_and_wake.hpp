// src/sleep_and_wake.hpp: tangled from notes/sleep-and-wake.org; edit the note, not this file.

// [[file:../notes/sleep-and-wake.org::*Running out of file descriptors][Running out of file descriptors:2]]
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "unique_fd.hpp"

struct epoll_event;  // <sys/epoll.h>; only sleep_and_wake.cpp needs its members

namespace caracal {

// Counters of one worker's gate; readable from any thread.
struct AcceptGateStats {
  std::uint64_t accepts = 0;        // connections taken
  std::uint64_t empty_wakeups = 0;  // woken, but the connection was already gone
  // accept4 failures other than EAGAIN, and failed listener registrations
  std::uint64_t accept_errors = 0;
  bool open = false;                // listeners currently registered
};

// A worker's way of sleeping on the shared listening sockets (see the note).
class AcceptGate {
 public:
  // Receives each accepted socket (non-blocking, close-on-exec) on the gate's
  // sleeper thread; the receiver owns the descriptor.
  using Deliver = std::function<void(int fd)>;
  // How long the gate stays closed after running out of descriptors.
  static constexpr std::chrono::milliseconds kDefaultExhaustionBackoff{100};

  // Starts closed. Sets O_NONBLOCK on the listening sockets (shared by all
  // workers): a woken worker that lost the race must get EAGAIN, not block.
  AcceptGate(std::span<const int> listen_fds, Deliver deliver,
             std::chrono::milliseconds exhaustion_backoff = kDefaultExhaustionBackoff);
  ~AcceptGate();  // stop()
  AcceptGate(const AcceptGate&) = delete;
  AcceptGate& operator=(const AcceptGate&) = delete;

  void open();   // take part in the wake-one race (thread-safe, idempotent)
  void close();  // leave it; queued connections stay for other workers
  void stop();   // close and join the sleeper; idempotent
  AcceptGateStats stats() const;

 private:
  void register_listeners_if_wanted();  // mutex held
  void deregister_listeners();          // mutex held
  void queue_behind_the_others(int listen_fd);  // mutex held
  void wake_the_sleeper();
  void sleep_until_connections_arrive();
  void act_on_one_event(const ::epoll_event& event);
  int wait_timeout_ms();
  void end_backoff();
  void accept_one_connection(int listen_fd);
  void deliver_or_close(int fd);
  void begin_backoff();

  std::vector<int> listen_fds_;
  Deliver deliver_;
  const std::chrono::milliseconds exhaustion_backoff_;
  UniqueFd epoll_fd_;
  // An eventfd that wakes the sleeper: for stop(), and to start a back-off's timeout.
  UniqueFd wake_fd_;
  std::mutex mutex_;
  bool wanted_open_ = false, backing_off_ = false, registered_ = false;
  std::atomic<bool> stopping_{false}, open_{false};
  std::atomic<std::uint64_t> accepts_{0}, empty_wakeups_{0}, accept_errors_{0};
  std::thread sleeper_;
};

}  // namespace caracal
// Running out of file descriptors:2 ends here

// src/sleep_and_wake.cpp: tangled from notes/sleep-and-wake.org; edit the note, not this file.

// [[file:../notes/sleep-and-wake.org::*Opening and closing][Opening and closing:2]]
#include "sleep_and_wake.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace caracal {

namespace {
[[noreturn]] void throw_errno(const char* what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void make_non_blocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw_errno("fcntl");
}
}  // namespace

AcceptGate::AcceptGate(std::span<const int> listen_fds, Deliver deliver,
                       std::chrono::milliseconds exhaustion_backoff)
    : listen_fds_(listen_fds.begin(), listen_fds.end()),
      deliver_(std::move(deliver)),
      exhaustion_backoff_(exhaustion_backoff) {
  for (int fd : listen_fds_) make_non_blocking(fd);
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) throw_errno("eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = stop_fd_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &event) < 0) throw_errno("epoll_ctl");
  sleeper_ = std::thread([this] { sleep_until_connections_arrive(); });
}
// Opening and closing:2 ends here

// [[file:../notes/sleep-and-wake.org::*Opening and closing][Opening and closing:4]]
AcceptGate::~AcceptGate() {
  stop();
  ::close(stop_fd_);
  ::close(epoll_fd_);
}

void AcceptGate::open() {
  std::lock_guard lock(mutex_);
  wanted_open_ = true;
  register_listeners_if_wanted();
}

void AcceptGate::close() {
  std::lock_guard lock(mutex_);
  wanted_open_ = false;
  deregister_listeners();
}

void AcceptGate::stop() {
  if (!sleeper_.joinable()) return;
  close();
  stopping_ = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(stop_fd_, &one, sizeof one);
  sleeper_.join();
}

AcceptGateStats AcceptGate::stats() const {
  return {accepts_.load(), empty_wakeups_.load(), accept_errors_.load(), open_.load()};
}
// Opening and closing:4 ends here

// [[file:../notes/sleep-and-wake.org::*Opening and closing][Opening and closing:5]]
void AcceptGate::register_listeners_if_wanted() {
  if (!wanted_open_ || backing_off_ || registered_) return;
  for (int fd : listen_fds_) {
    epoll_event event{};
    event.events = EPOLLIN | EPOLLEXCLUSIVE;
    event.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &event) < 0) throw_errno("epoll_ctl ADD");
  }
  registered_ = true;
  open_ = true;
}

void AcceptGate::deregister_listeners() {
  if (!registered_) return;
  for (int fd : listen_fds_) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  registered_ = false;
  open_ = false;
}
// Opening and closing:5 ends here

// [[file:../notes/sleep-and-wake.org::*The sleeper][The sleeper:1]]
void AcceptGate::sleep_until_connections_arrive() {
  std::array<epoll_event, 16> events{};
  while (!stopping_) {
    const int ready = ::epoll_wait(epoll_fd_, events.data(), events.size(), wait_timeout_ms());
    if (ready < 0 && errno != EINTR) throw_errno("epoll_wait");  // only a bug gets here
    if (ready == 0) end_backoff();
    for (int i = 0; i < ready && !stopping_; ++i) {
      if (events[i].data.fd != stop_fd_) accept_one_connection(events[i].data.fd);
    }
  }
}

int AcceptGate::wait_timeout_ms() {
  std::lock_guard lock(mutex_);
  return backing_off_ ? static_cast<int>(exhaustion_backoff_.count()) : -1;
}
// The sleeper:1 ends here

// [[file:../notes/sleep-and-wake.org::*The sleeper][The sleeper:2]]
void AcceptGate::accept_one_connection(int listen_fd) {
  const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd >= 0) {
    ++accepts_;
    deliver_(fd);
    return;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    ++empty_wakeups_;  // another worker won the race: the herd we try to avoid
    return;
  }
  ++accept_errors_;
  const bool out_of_resources =
      errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
  if (out_of_resources) begin_backoff();  // never spin on a queue we cannot take from
}
// The sleeper:2 ends here

// [[file:../notes/sleep-and-wake.org::*The sleeper][The sleeper:4]]
void AcceptGate::begin_backoff() {
  std::lock_guard lock(mutex_);
  backing_off_ = true;
  deregister_listeners();
}

void AcceptGate::end_backoff() {
  std::lock_guard lock(mutex_);
  backing_off_ = false;
  register_listeners_if_wanted();
}

}  // namespace caracal
// The sleeper:4 ends here

// src/sleep_and_wake.cpp: tangled from notes/sleep-and-wake.org; edit the note, not this file.

// [[file:../notes/sleep-and-wake.org::*Opening and closing][Opening and closing:2]]
#include "sleep_and_wake.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

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
  epoll_fd_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_fd_) throw_errno("epoll_create1");
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw_errno("eventfd");
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.fd = wake_fd_.get();
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, wake_fd_.get(), &event) < 0) throw_errno("epoll_ctl");
  sleeper_ = std::thread([this] { sleep_until_connections_arrive(); });
}
// Opening and closing:2 ends here

// [[file:../notes/sleep-and-wake.org::*Opening and closing][Opening and closing:4]]
AcceptGate::~AcceptGate() { stop(); }  // the descriptors close after the sleeper is joined

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
  wake_the_sleeper();
  sleeper_.join();
}

void AcceptGate::wake_the_sleeper() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(wake_fd_.get(), &one, sizeof one);
}

AcceptGateStats AcceptGate::stats() const {
  return {accepts_.load(), empty_wakeups_.load(), accept_errors_.load(), open_.load()};
}
// Opening and closing:4 ends here

// [[file:../notes/sleep-and-wake.org::*Opening and closing][Opening and closing:6]]
namespace {
// EEXIST means the socket is already in the set, which is what was asked for.
bool add_exclusive(int epoll_fd, int fd) {
  epoll_event event{};
  event.events = EPOLLIN | EPOLLEXCLUSIVE;
  event.data.fd = fd;
  return ::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) == 0 || errno == EEXIST;
}
}  // namespace

void AcceptGate::register_listeners_if_wanted() {
  if (!wanted_open_ || backing_off_ || registered_) return;
  for (std::size_t i = 0; i < listen_fds_.size(); ++i) {
    if (add_exclusive(epoll_fd_.get(), listen_fds_[i])) continue;
    ++accept_errors_;  // ENOMEM, or ENOSPC past max_user_watches: a shortage, not a bug
    for (std::size_t j = 0; j < i; ++j) ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fds_[j], nullptr);
    backing_off_ = true;
    wake_the_sleeper();  // its current wait has no timeout; the next one must
    return;
  }
  registered_ = true;
  open_ = true;
}

void AcceptGate::deregister_listeners() {
  if (!registered_) return;
  for (int fd : listen_fds_) ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  registered_ = false;
  open_ = false;
}
// Opening and closing:6 ends here

// [[file:../notes/sleep-and-wake.org::*The sleeper][The sleeper:2]]
void AcceptGate::sleep_until_connections_arrive() {
  epoll_event event{};
  while (!stopping_) {
    const int ready = ::epoll_wait(epoll_fd_.get(), &event, 1, wait_timeout_ms());
    if (ready < 0) {
      if (errno == EINTR) continue;
      ++accept_errors_;  // EBADF or EINVAL: a bug, but not one worth the whole worker
      std::this_thread::sleep_for(exhaustion_backoff_);
      continue;
    }
    if (ready == 0) end_backoff();
    else act_on_one_event(event);
  }
}

void AcceptGate::act_on_one_event(const epoll_event& event) {
  if (event.data.fd != wake_fd_.get()) return accept_one_connection(event.data.fd);
  std::uint64_t count = 0;  // drain it: a wake is a one-off, the fd is level-triggered
  [[maybe_unused]] auto read = ::read(wake_fd_.get(), &count, sizeof count);
}

int AcceptGate::wait_timeout_ms() {
  std::lock_guard lock(mutex_);
  return backing_off_ ? static_cast<int>(exhaustion_backoff_.count()) : -1;
}
// The sleeper:2 ends here

// [[file:../notes/sleep-and-wake.org::*The sleeper][The sleeper:4]]
void AcceptGate::accept_one_connection(int listen_fd) {
  int fd = -1, error = 0;
  {
    std::lock_guard lock(mutex_);
    if (!registered_) return;  // closed since epoll_wait returned: leave it to others
    fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    error = errno;
    if (fd >= 0) queue_behind_the_others(listen_fd);
  }
  if (fd >= 0) return deliver_or_close(fd);
  if (error == EAGAIN || error == EWOULDBLOCK) {
    ++empty_wakeups_;  // another worker won the race: the herd we try to avoid
    return;
  }
  ++accept_errors_;
  const bool out_of_resources =
      error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
  if (out_of_resources) begin_backoff();  // never spin on a queue we cannot take from
}

void AcceptGate::deliver_or_close(int fd) {
  ++accepts_;
  try {
    deliver_(fd);
  } catch (...) {
    ::close(fd);
    ++accept_errors_;
  }
}
// The sleeper:4 ends here

// [[file:../notes/sleep-and-wake.org::*The sleeper][The sleeper:6]]
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
// The sleeper:6 ends here

// [[file:../notes/sleep-and-wake.org::*Taking turns between workers][Taking turns between workers:1]]
void AcceptGate::queue_behind_the_others(int listen_fd) {
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, listen_fd, nullptr);
  if (add_exclusive(epoll_fd_.get(), listen_fd)) return;
  ++accept_errors_;
  deregister_listeners();
  backing_off_ = true;  // the sleeper's next wait has the back-off as timeout
}

}  // namespace caracal
// Taking turns between workers:1 ends here

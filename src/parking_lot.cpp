// src/parking_lot.cpp: tangled from notes/parking-lot.org; edit the note, not this file.

// [[file:../notes/parking-lot.org::*Opening and closing the lot][Opening and closing the lot:2]]
#include "parking_lot.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>
#include <new>
#include <system_error>

namespace caracal {

ParkingLot::ParkingLot() : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (!epoll_fd_) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

ParkingLot::~ParkingLot() { close_all(); }  // epoll_fd_ closes after the connections

int ParkingLot::watch_fd() const { return epoll_fd_.get(); }
// Opening and closing the lot:2 ends here

// [[file:../notes/parking-lot.org::*Parking][Parking:1]]
bool ParkingLot::start_watching(int fd) {
  epoll_event event{};
  event.events = EPOLLIN | EPOLLRDHUP;  // level-triggered: bytes already there are reported at once
  event.data.fd = fd;
  if (::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) == 0) return true;
  if (errno != EBADF && errno != EEXIST) ::close(fd);
  return false;
}
// Parking:1 ends here

// [[file:../notes/parking-lot.org::*Parking][Parking:3]]
bool ParkingLot::park(ParkedConnection connection, Clock::time_point deadline) {
  if (connection.fd < 0) return false;
  if (!start_watching(connection.fd)) return false;
  try {
    record(connection, deadline);
  } catch (const std::bad_alloc&) {
    ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, connection.fd, nullptr);
    ::close(connection.fd);
    return false;
  }
  ++parked_;
  ++parked_total_;
  return true;
}
// Parking:3 ends here

// [[file:../notes/parking-lot.org::*Parking][Parking:4]]
void ParkingLot::record(ParkedConnection connection, Clock::time_point deadline) {
  const auto index = static_cast<std::size_t>(connection.fd);
  if (index >= slots_.size()) slots_.resize(index + 1);
  const std::uint32_t generation = slots_[index].generation + 1;  // odd: parked
  enqueue_in_deadline_order({deadline, connection.fd, generation});
  slots_[index] = {connection.requests_served, generation};
}

// A new deadline is nearly always the latest, so the walk back usually takes no step.
void ParkingLot::enqueue_in_deadline_order(const Entry& entry) {
  auto position = queue_.end();
  while (position != queue_.begin() && std::prev(position)->deadline > entry.deadline) --position;
  queue_.insert(position, entry);
}
// Parking:4 ends here

// [[file:../notes/parking-lot.org::*Waking][Waking:1]]
std::vector<ParkedConnection> ParkingLot::take_ready(std::size_t max) {
  constexpr std::size_t kEventsPerWait = 64;
  epoll_event events[kEventsPerWait];
  std::vector<ParkedConnection> ready;
  while (ready.size() < max) {
    const int asked = static_cast<int>(std::min(max - ready.size(), kEventsPerWait));
    const int count = ::epoll_wait(epoll_fd_.get(), events, asked, 0);
    for (int i = 0; i < count; ++i) ready.push_back(unpark(events[i].data.fd));
    if (count < asked) break;  // no more ready, or a failed wait (count < 0)
  }
  drop_stale_heads();
  compact_if_mostly_stale();
  return ready;
}
// Waking:1 ends here

// [[file:../notes/parking-lot.org::*Waking][Waking:2]]
ParkedConnection ParkingLot::unpark(int fd) {
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);  // the new session reads it, not us
  Slot& slot = slots_[static_cast<std::size_t>(fd)];
  ++slot.generation;  // even: no longer parked; its queue entry is stale
  --parked_;
  ++woken_total_;
  return {fd, slot.requests_served};
}
// Waking:2 ends here

// [[file:../notes/parking-lot.org::*Waking][Waking:3]]
bool ParkingLot::is_live(const Entry& entry) const {
  return slots_[static_cast<std::size_t>(entry.fd)].generation == entry.generation;
}

void ParkingLot::drop_stale_heads() {
  while (!queue_.empty() && !is_live(queue_.front())) queue_.pop_front();
}
// Waking:3 ends here

// [[file:../notes/parking-lot.org::*Waking][Waking:4]]
void ParkingLot::compact_if_mostly_stale() {
  constexpr std::size_t kStaleEntriesAllowed = 1024;
  const std::size_t stale = queue_.size() - parked_;
  if (stale <= parked_ + kStaleEntriesAllowed) return;
  std::erase_if(queue_, [this](const Entry& entry) { return !is_live(entry); });
}
// Waking:4 ends here

// [[file:../notes/parking-lot.org::*Expiring][Expiring:1]]
std::size_t ParkingLot::expire(Clock::time_point now) {
  std::size_t closed = 0;
  while (!queue_.empty() && queue_.front().deadline <= now) {
    close_parked(queue_.front().fd);
    queue_.pop_front();
    drop_stale_heads();
    ++closed;
  }
  expired_total_ += closed;
  return closed;
}

std::optional<ParkingLot::Clock::time_point> ParkingLot::next_deadline() const {
  if (queue_.empty()) return std::nullopt;
  return queue_.front().deadline;
}
// Expiring:1 ends here

// [[file:../notes/parking-lot.org::*Expiring][Expiring:2]]
void ParkingLot::close_parked(int fd) {
  ::epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  ::close(fd);
  ++slots_[static_cast<std::size_t>(fd)].generation;  // even: the number is free again
  --parked_;
}
// Expiring:2 ends here

// [[file:../notes/parking-lot.org::*Closing everything][Closing everything:1]]
std::size_t ParkingLot::close_all() {
  std::size_t closed = 0;
  for (const Entry& entry : queue_) {
    if (!is_live(entry)) continue;
    close_parked(entry.fd);
    ++closed;
  }
  queue_.clear();
  return closed;
}

ParkingLotStats ParkingLot::stats() const {
  return {parked_, parked_total_, woken_total_, expired_total_};
}

}  // namespace caracal
// Closing everything:1 ends here

// src/parking_lot.hpp: tangled from notes/parking-lot.org; edit the note, not this file.

// [[file:../notes/parking-lot.org::*The interface][The interface:2]]
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "unique_fd.hpp"

namespace caracal {

// What a session needs back when its client speaks again.
struct ParkedConnection {
  int fd = -1;
  int requests_served = 0;  // for max_keep_alive, carried across the park
};

struct ParkingLotStats {
  std::size_t parked = 0;  // connections in the lot now
  std::uint64_t parked_total = 0, woken_total = 0, expired_total = 0;
};
// The interface:2 ends here

// [[file:../notes/parking-lot.org::*The interface][The interface:3]]
// A worker's idle keep-alive connections, kept as bare descriptors (see the note).
// Not thread-safe; one reactor thread at a time.
class ParkingLot {
 public:
  using Clock = std::chrono::steady_clock;

  ParkingLot();   // creates the epoll instance; throws std::system_error on failure
  ~ParkingLot();  // closes every parked fd and the epoll fd
  ParkingLot(const ParkingLot&) = delete;
  ParkingLot& operator=(const ParkingLot&) = delete;

  // The epoll fd: readable when some parked connection needs attention.
  int watch_fd() const;
  // Takes ownership of fd, to be closed at `deadline` if nothing arrives. Returns
  // false if epoll refused it (the lot has then closed it, unless it was not open).
  bool park(ParkedConnection connection, Clock::time_point deadline);
  // Hands back (ownership to the caller) up to `max` connections whose socket is
  // readable or hung up, taken out of the epoll set; never blocks.
  std::vector<ParkedConnection> take_ready(std::size_t max = 64);
  // Closes every connection whose deadline is <= now; returns how many.
  std::size_t expire(Clock::time_point now);
  // The earliest deadline of a parked connection, if any (for the worker's one timer).
  std::optional<Clock::time_point> next_deadline() const;
  // Graceful stop: closes every parked connection; returns how many.
  std::size_t close_all();
  ParkingLotStats stats() const;

 private:
  // One per descriptor number; the descriptor is parked while `generation` is odd.
  struct Slot {
    std::int32_t requests_served = 0;
    std::uint32_t generation = 0;
  };
  // One per park, in deadline order; stale once its slot's generation has moved on.
  struct Entry {
    Clock::time_point deadline;
    std::int32_t fd;
    std::uint32_t generation;
  };
  static_assert(sizeof(Slot) == 8 && sizeof(Entry) == 16, "the memory budget in the note");

  bool start_watching(int fd);
  void record(ParkedConnection connection, Clock::time_point deadline);
  void enqueue_in_deadline_order(const Entry& entry);
  ParkedConnection unpark(int fd);
  void close_parked(int fd);
  bool is_live(const Entry& entry) const;
  void drop_stale_heads();
  void compact_if_mostly_stale();

  UniqueFd epoll_fd_;
  std::vector<Slot> slots_;  // indexed by descriptor number
  std::deque<Entry> queue_;  // sorted by deadline; its head is always live
  std::size_t parked_ = 0;
  std::uint64_t parked_total_ = 0, woken_total_ = 0, expired_total_ = 0;
};

}  // namespace caracal
// The interface:3 ends here

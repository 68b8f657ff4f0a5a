// tests/parking_lot_test.cpp: tangled from notes/parking-lot.org; edit the note, not this file.

// [[file:../notes/parking-lot.org::*Tests][Tests:2]]
#include "parking_lot.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "unique_fd.hpp"

namespace {
using caracal::ParkingLot;
using caracal::UniqueFd;
using namespace std::chrono_literals;
constexpr int kGenerousWaitMs = 5000;  // bounds a hang only; a passing test never waits this long
// Tests:2 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:3]]
struct Connection {
  UniqueFd lot_end;  // what a session would park
  UniqueFd client;   // the other end, played by the test
};

Connection open_connection() {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

bool park(ParkingLot& lot, Connection& connection, ParkingLot::Clock::time_point deadline,
          int requests_served = 0) {
  return lot.park({connection.lot_end.release(), requests_served}, deadline);
}

std::vector<UniqueFd> owned(const std::vector<caracal::ParkedConnection>& handed_back) {
  std::vector<UniqueFd> owners;
  for (const auto& connection : handed_back) owners.emplace_back(connection.fd);
  return owners;
}
// Tests:3 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:4]]
bool becomes_readable(int fd) {
  pollfd watch{fd, POLLIN, 0};
  return ::poll(&watch, 1, kGenerousWaitMs) == 1;
}

bool is_readable_now(int fd) {
  pollfd watch{fd, POLLIN, 0};
  return ::poll(&watch, 1, 0) == 1;
}

void say_something(const UniqueFd& client) { REQUIRE(::send(client.get(), "x", 1, MSG_NOSIGNAL) == 1); }

// The lot closed its end: the client reads end of stream at once.
bool sees_end_of_stream(const UniqueFd& client) {
  char byte;
  return ::recv(client.get(), &byte, 1, MSG_DONTWAIT) == 0;
}

// Its end is still open, and silent.
bool sees_an_open_connection(const UniqueFd& client) {
  char byte;
  return ::recv(client.get(), &byte, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
}  // namespace
// Tests:4 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:5]]
// The worker's whole use of the lot: watch one descriptor, get back the connection that spoke.
TEST_CASE("a parked connection whose client writes is handed back with its request count") {
  ParkingLot lot;
  auto connection = open_connection();
  const int fd = connection.lot_end.get();
  REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h, 7));
  say_something(connection.client);
  REQUIRE(becomes_readable(lot.watch_fd()));
  const auto ready = lot.take_ready();
  const auto owners = owned(ready);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].fd == fd);
  CHECK(ready[0].requests_served == 7);
  char byte = 0;
  CHECK(::recv(fd, &byte, 1, MSG_DONTWAIT) == 1);  // the lot never reads the client's bytes
  CHECK(byte == 'x');
}

// A hang-up needs the session too: only it can close the connection and forget it properly.
TEST_CASE("a parked connection whose client hangs up is handed back too") {
  ParkingLot lot;
  auto connection = open_connection();
  const int fd = connection.lot_end.get();
  REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h));
  connection.client.reset();
  REQUIRE(becomes_readable(lot.watch_fd()));
  const auto ready = lot.take_ready();
  const auto owners = owned(ready);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].fd == fd);
}
// Tests:5 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:6]]
// A connection handed back without cause would cost a session for nothing.
TEST_CASE("a parked connection whose client is silent stays parked") {
  ParkingLot lot;
  auto quiet = open_connection();
  auto talking = open_connection();
  const int talking_fd = talking.lot_end.get();
  REQUIRE(park(lot, quiet, ParkingLot::Clock::now() + 1h));
  CHECK_FALSE(is_readable_now(lot.watch_fd()));
  CHECK(lot.take_ready().empty());
  REQUIRE(park(lot, talking, ParkingLot::Clock::now() + 1h));
  say_something(talking.client);
  REQUIRE(becomes_readable(lot.watch_fd()));
  const auto ready = lot.take_ready();
  const auto owners = owned(ready);
  REQUIRE(ready.size() == 1);
  CHECK(ready[0].fd == talking_fd);
  CHECK(lot.stats().parked == 1);
  CHECK(sees_an_open_connection(quiet.client));
}

// Bytes that arrive while the session hands the socket over must not be lost.
TEST_CASE("a connection whose client spoke before the park is reported at once") {
  ParkingLot lot;
  auto connection = open_connection();
  say_something(connection.client);
  REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h));
  CHECK(is_readable_now(lot.watch_fd()));
  const auto owners = owned(lot.take_ready());
  CHECK(owners.size() == 1);
}
// Tests:6 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:1]]
// A watch left behind would wake the reactor on every turn while the new session reads.
TEST_CASE("a connection handed back is not reported again while its bytes wait unread") {
  ParkingLot lot;
  auto connection = open_connection();
  REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h));
  say_something(connection.client);
  REQUIRE(becomes_readable(lot.watch_fd()));
  const auto owners = owned(lot.take_ready());
  REQUIRE(owners.size() == 1);
  CHECK(is_readable_now(owners[0].get()));
  CHECK_FALSE(is_readable_now(lot.watch_fd()));
  CHECK(lot.take_ready().empty());
}

// A burst of wakes must not hold the reactor; the rest wait for the next call.
TEST_CASE("take_ready hands back no more than asked, and the rest on the next call") {
  ParkingLot lot;
  std::vector<Connection> connections;
  for (int i = 0; i < 3; ++i) connections.push_back(open_connection());
  for (auto& connection : connections) {
    REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h));
    say_something(connection.client);
  }
  REQUIRE(becomes_readable(lot.watch_fd()));
  const auto first = owned(lot.take_ready(2));
  CHECK(first.size() == 2);
  CHECK(is_readable_now(lot.watch_fd()));
  const auto rest = owned(lot.take_ready(2));
  CHECK(rest.size() == 1);
  CHECK(lot.stats().parked == 0);
}
// Tests:1 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:1]]
// persistent_timeout still holds for a parked connection, to the connection.
TEST_CASE("expire closes exactly the connections whose deadline has passed") {
  ParkingLot lot;
  const auto base = ParkingLot::Clock::now();
  std::vector<Connection> connections;
  for (int i = 0; i < 3; ++i) connections.push_back(open_connection());
  for (int i = 0; i < 3; ++i) REQUIRE(park(lot, connections[i], base + (i + 1) * 1s));
  CHECK(lot.expire(base) == 0);
  CHECK(lot.expire(base + 2s) == 2);
  CHECK(sees_end_of_stream(connections[0].client));
  CHECK(sees_end_of_stream(connections[1].client));
  CHECK(sees_an_open_connection(connections[2].client));
  CHECK(lot.next_deadline() == base + 3s);
  CHECK(lot.stats().parked == 1);
}

// Timer jitter can park connections slightly out of deadline order; none may expire late.
TEST_CASE("a deadline earlier than those already parked expires first") {
  ParkingLot lot;
  const auto base = ParkingLot::Clock::now();
  auto later = open_connection();
  auto earlier = open_connection();
  REQUIRE(park(lot, later, base + 10s));
  REQUIRE(park(lot, earlier, base + 5s));
  CHECK(lot.next_deadline() == base + 5s);
  CHECK(lot.expire(base + 5s) == 1);
  CHECK(sees_end_of_stream(earlier.client));
  CHECK(sees_an_open_connection(later.client));
}
// Tests:1 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:2]]
// The worker arms its one timer at this; a woken connection's deadline would fire it for nothing.
TEST_CASE("the next deadline is the earliest of the connections still parked") {
  ParkingLot lot;
  const auto base = ParkingLot::Clock::now();
  CHECK_FALSE(lot.next_deadline().has_value());
  auto first = open_connection();
  auto second = open_connection();
  REQUIRE(park(lot, first, base + 1s));
  REQUIRE(park(lot, second, base + 2s));
  CHECK(lot.next_deadline() == base + 1s);
  say_something(first.client);
  REQUIRE(becomes_readable(lot.watch_fd()));
  const auto owners = owned(lot.take_ready());
  REQUIRE(owners.size() == 1);
  CHECK(lot.next_deadline() == base + 2s);
  CHECK(lot.expire(base + 2s) == 1);
  CHECK_FALSE(lot.next_deadline().has_value());
}
// Tests:2 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:3]]
// Descriptor numbers are recycled; an old deadline must not close the number's next connection.
TEST_CASE("a descriptor number reused after a wake is not expired by its old deadline") {
  ParkingLot lot;
  const auto base = ParkingLot::Clock::now();
  auto earliest = open_connection();
  auto woken = open_connection();
  const int number = woken.lot_end.get();
  REQUIRE(park(lot, earliest, base + 1s));
  REQUIRE(park(lot, woken, base + 2s));
  say_something(woken.client);
  REQUIRE(becomes_readable(lot.watch_fd()));
  REQUIRE(owned(lot.take_ready()).size() == 1);  // handed back, then closed by its "session"
  auto successor = open_connection();
  REQUIRE(successor.lot_end.get() == number);
  REQUIRE(park(lot, successor, base + 5s));
  CHECK(lot.expire(base + 3s) == 1);
  CHECK(sees_end_of_stream(earliest.client));
  CHECK(sees_an_open_connection(successor.client));
  CHECK(lot.next_deadline() == base + 5s);
}
// Tests:3 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:4]]
// Pruning stale entries must keep the deadline order that expiry depends on.
TEST_CASE("a long run of parks and wakes leaves expiry and the next deadline exact") {
  ParkingLot lot;
  const auto base = ParkingLot::Clock::now();
  auto early = open_connection();
  auto cycled = open_connection();
  auto late = open_connection();
  REQUIRE(park(lot, early, base + 1s));
  say_something(cycled.client);
  for (int i = 0; i < 3000; ++i) {
    REQUIRE(lot.park({cycled.lot_end.release(), i}, base + 10s + i * 1ms));
    auto ready = lot.take_ready();
    REQUIRE(ready.size() == 1);
    cycled.lot_end.reset(ready[0].fd);
  }
  REQUIRE(park(lot, late, base + 1h));
  CHECK(lot.next_deadline() == base + 1s);
  CHECK(lot.expire(base + 30min) == 1);
  CHECK(lot.next_deadline() == base + 1h);
  CHECK(sees_an_open_connection(late.client));
  CHECK(lot.stats().woken_total == 3000);
}
// Tests:4 ends here

// [[file:../notes/parking-lot.org::*Tests][Tests:1]]
// A stopping worker must not leave its parked clients hanging until their own timeouts.
TEST_CASE("close_all closes every parked connection") {
  ParkingLot lot;
  std::vector<Connection> connections;
  for (int i = 0; i < 3; ++i) connections.push_back(open_connection());
  for (auto& connection : connections) REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h));
  CHECK(lot.close_all() == 3);
  for (const auto& connection : connections) CHECK(sees_end_of_stream(connection.client));
  CHECK(lot.stats().parked == 0);
  CHECK_FALSE(lot.next_deadline().has_value());
  CHECK(lot.take_ready().empty());
}

// The lot owns what is parked in it; dropping the lot must not leak descriptors.
TEST_CASE("the lot's destructor closes the connections still parked") {
  std::vector<Connection> connections;
  for (int i = 0; i < 2; ++i) connections.push_back(open_connection());
  int epoll_fd = -1;
  {
    ParkingLot lot;
    epoll_fd = lot.watch_fd();
    for (auto& connection : connections) REQUIRE(park(lot, connection, ParkingLot::Clock::now() + 1h));
  }
  for (const auto& connection : connections) CHECK(sees_end_of_stream(connection.client));
  CHECK_FALSE(is_open(epoll_fd));
}
// Tests:1 ends here

// [[file:../notes/parking-lot.org::*Refusals and counters][Refusals and counters:1]]
// The session is gone once it parks; a refused descriptor must not be left open by anyone.
TEST_CASE("a descriptor epoll refuses is closed and reported, and a bad number is refused") {
  ParkingLot lot;
  const int file = ::memfd_create("parking-lot-test", MFD_CLOEXEC);
  REQUIRE(file >= 0);
  CHECK_FALSE(lot.park({file, 0}, ParkingLot::Clock::now() + 1h));
  CHECK_FALSE(is_open(file));
  CHECK_FALSE(lot.park({-1, 0}, ParkingLot::Clock::now() + 1h));
  auto closed = open_connection();
  const int number = closed.lot_end.get();
  closed.lot_end.reset();
  CHECK_FALSE(lot.park({number, 0}, ParkingLot::Clock::now() + 1h));
  CHECK(lot.stats().parked_total == 0);
  CHECK_FALSE(lot.next_deadline().has_value());
}

// The counters go into the worker's stats; each way out of the lot must be counted once.
TEST_CASE("the counters follow parks, wakes and expiries") {
  ParkingLot lot;
  const auto base = ParkingLot::Clock::now();
  std::vector<Connection> connections;
  for (int i = 0; i < 3; ++i) connections.push_back(open_connection());
  for (int i = 0; i < 3; ++i) REQUIRE(park(lot, connections[i], base + (i + 1) * 1s));
  say_something(connections[2].client);
  REQUIRE(becomes_readable(lot.watch_fd()));
  REQUIRE(owned(lot.take_ready()).size() == 1);
  REQUIRE(lot.expire(base + 1s) == 1);
  const auto stats = lot.stats();
  CHECK(stats.parked == 1);
  CHECK(stats.parked_total == 3);
  CHECK(stats.woken_total == 1);
  CHECK(stats.expired_total == 1);
}
// Refusals and counters:1 ends here

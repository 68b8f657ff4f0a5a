// tests/sleep_and_wake_test.cpp: tangled from notes/sleep-and-wake.org; edit the note, not this file.

// [[file:../notes/sleep-and-wake.org::*Tests][Tests:2]]
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "sleep_and_wake.hpp"

using namespace std::chrono_literals;
using caracal::AcceptGate;

namespace {
constexpr auto kPatience = 10s;         // upper bound for anything that should happen
constexpr auto kSettleTime = 300ms;     // time given to a wrong wakeup to show itself

// A listening socket on 127.0.0.1 and a free port; closed on destruction.
struct Listener {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  Listener() {
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd, 64) == 0);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  }
  ~Listener() { ::close(fd); }
  // A connected client socket; the handshake completes in the kernel's queue.
  int connect_client() const {
    const int client = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(::connect(client, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0);
    return client;
  }
};

template <class Predicate>
bool eventually(Predicate ok) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!ok()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);
  }
  return true;
}

// Delivered sockets are closed at once; the tests only count them.
AcceptGate::Deliver count_into(std::atomic<int>& delivered) {
  return [&delivered](int fd) {
    ::close(fd);
    ++delivered;
  };
}
}  // namespace
// Tests:2 ends here

// [[file:../notes/sleep-and-wake.org::*Tests][Tests:3]]
// Several open gates on one socket must behave like one wake-one queue, not a herd.
TEST_CASE("each connection is accepted once by several open gates, with empty wakeups far below a herd's") {
  Listener listener;
  std::atomic<int> delivered{0};
  std::vector<std::unique_ptr<AcceptGate>> gates;
  const int fds[] = {listener.fd};
  for (int i = 0; i < 4; ++i) gates.push_back(std::make_unique<AcceptGate>(fds, count_into(delivered)));
  for (auto& gate : gates) gate->open();
  std::this_thread::sleep_for(kSettleTime);  // let every sleeper reach epoll_wait
  constexpr int kConnections = 20;
  for (int i = 0; i < kConnections; ++i) {
    const int client = listener.connect_client();
    REQUIRE(eventually([&] { return delivered.load() == i + 1; }));
    ::close(client);
  }
  std::this_thread::sleep_for(kSettleTime);
  std::uint64_t accepts = 0, empty = 0;
  for (auto& gate : gates) {
    accepts += gate->stats().accepts;
    empty += gate->stats().empty_wakeups;
  }
  INFO("empty wakeups: " << empty);
  CHECK(accepts == kConnections);
  // A herd would cost three empty wakeups per connection here (four gates).
  CHECK(empty < kConnections / 4);
}

// Idle workers must share new connections, not leave them all to the first.
TEST_CASE("connections to two idle gates alternate between them") {
  Listener listener;
  std::atomic<int> first{0}, second{0};
  const int fds[] = {listener.fd};
  AcceptGate gate_a(fds, count_into(first));
  AcceptGate gate_b(fds, count_into(second));
  gate_a.open();
  gate_b.open();
  std::this_thread::sleep_for(kSettleTime);  // let both sleepers reach epoll_wait
  constexpr int kConnections = 20;
  for (int i = 0; i < kConnections; ++i) {
    const int client = listener.connect_client();
    REQUIRE(eventually([&] { return first.load() + second.load() == i + 1; }));
    ::close(client);
    std::this_thread::sleep_for(5ms);  // the sleeper that accepted is waiting again
  }
  INFO("first gate " << first.load() << ", second gate " << second.load());
  CHECK(first.load() >= kConnections / 2 - 2);
  CHECK(second.load() >= kConnections / 2 - 2);
}

// A full worker must leave a connection to others, and find it later if nobody took it.
TEST_CASE("a closed gate is not woken, and opening it finds the queued connection") {
  Listener listener;
  std::atomic<int> delivered{0};
  const int fds[] = {listener.fd};
  AcceptGate gate(fds, count_into(delivered));
  gate.open();
  gate.close();
  const int client = listener.connect_client();
  std::this_thread::sleep_for(kSettleTime);
  CHECK(delivered.load() == 0);
  CHECK(gate.stats().empty_wakeups == 0);
  CHECK_FALSE(gate.stats().open);
  gate.open();
  CHECK(eventually([&] { return delivered.load() == 1; }));
  ::close(client);
}

// One event per wakeup must still reach every socket, not only the first one listed.
TEST_CASE("a gate watching two sockets accepts from both") {
  Listener first, second;
  std::atomic<int> delivered{0};
  const int fds[] = {first.fd, second.fd};
  AcceptGate gate(fds, count_into(delivered));
  gate.open();
  const int a = first.connect_client();
  const int b = second.connect_client();
  CHECK(eventually([&] { return delivered.load() == 2; }));
  ::close(a);
  ::close(b);
}

// Out of descriptors, the gate must neither spin nor give up for good.
TEST_CASE("running out of descriptors closes the gate until a retry succeeds") {
  Listener listener;
  std::atomic<int> delivered{0};
  const int fds[] = {listener.fd};
  AcceptGate gate(fds, count_into(delivered), 20ms);
  const int client = listener.connect_client();
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  const int lowest_free = ::dup(0);
  ::close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = lowest_free;  // the next descriptor would exceed the limit
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  gate.open();
  const bool failed = eventually([&] { return gate.stats().accept_errors > 0; });
  ::setrlimit(RLIMIT_NOFILE, &saved);
  CHECK(failed);
  CHECK(eventually([&] { return delivered.load() == 1; }));
  CHECK(gate.stats().open);
  ::close(client);
}

// The back-off must really take the worker out of the race, and not retry in a loop.
TEST_CASE("after running out of descriptors the gate is closed and tries no accept until the back-off ends") {
  Listener listener;
  std::atomic<int> delivered{0};
  const int fds[] = {listener.fd};
  AcceptGate gate(fds, count_into(delivered), 3600s);  // a back-off the test never sees end
  const int client = listener.connect_client();
  rlimit saved{};
  ::getrlimit(RLIMIT_NOFILE, &saved);
  const int lowest_free = ::dup(0);
  ::close(lowest_free);
  rlimit tight = saved;
  tight.rlim_cur = lowest_free;  // the next descriptor would exceed the limit
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &tight) == 0);
  gate.open();
  const bool failed = eventually([&] { return gate.stats().accept_errors > 0; });
  std::this_thread::sleep_for(kSettleTime);  // time a spinning gate would use to fail again
  const auto stats = gate.stats();
  ::setrlimit(RLIMIT_NOFILE, &saved);
  CHECK(failed);
  CHECK_FALSE(stats.open);
  CHECK(stats.accept_errors == 1);
  CHECK(delivered.load() == 0);
  ::close(client);
}

// A descriptor listed twice gets EEXIST from epoll; that must not throw out of open().
TEST_CASE("a listener given twice is registered once and the gate still accepts") {
  Listener listener;
  std::atomic<int> delivered{0};
  const int fds[] = {listener.fd, listener.fd};
  AcceptGate gate(fds, count_into(delivered));
  gate.open();
  CHECK(gate.stats().open);
  const int client = listener.connect_client();
  CHECK(eventually([&] { return delivered.load() == 1; }));
  CHECK(gate.stats().accept_errors == 0);
  ::close(client);
}
// Tests:3 ends here

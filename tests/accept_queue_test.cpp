// tests/accept_queue_test.cpp: tangled from notes/accept-queue.org; edit the note, not this file.

// [[file:../notes/accept-queue.org::*Binding everything][Binding everything:3]]
#include "accept_queue.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace {

caracal::BindUri bind_of(const std::string& uri) {
  auto bind = caracal::parse_bind_uri(uri);
  REQUIRE(bind.ok());
  return *bind;
}

// open_bind for a bind that names one address (a literal or a path).
caracal::Outcome<caracal::Listener> open_single(const caracal::BindUri& bind) {
  auto opened = caracal::open_bind(bind);
  if (!opened) return caracal::Outcome<caracal::Listener>::failure(opened.error());
  REQUIRE(opened->size() == 1);
  return std::move(opened->front());
}

// A Unix socket path unique to this test process.
std::string temp_socket_path(const char* name) {
  return "/tmp/caracal-aq-" + std::to_string(::getpid()) + "-" + name + ".sock";
}

bool connect_unix(const std::string& path) {
  caracal::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strcpy(address.sun_path, path.c_str());
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

bool connect_tcp4(int port) {
  caracal::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
}

int int_option(int fd, int level, int name) {
  int value = 0;
  socklen_t length = sizeof value;
  ::getsockopt(fd, level, name, &value, &length);
  return value;
}

}  // namespace

// The listener must be in the listening state with the options the note promises.
TEST_CASE("a tcp listener listens with SO_REUSEADDR and close-on-exec") {
  auto listener = open_single(bind_of("tcp://127.0.0.1:0"));
  REQUIRE(listener.ok());
  int fd = listener->fd.get();
  CHECK(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1);
  CHECK(int_option(fd, SOL_SOCKET, SO_REUSEADDR) == 1);
  CHECK((::fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  CHECK(caracal::local_port(fd) > 0);
}

// The kernel completes the handshake with nobody calling accept(): that is the accept queue.
TEST_CASE("a client connects before anyone accepts") {
  auto listener = open_single(bind_of("tcp://127.0.0.1:0?backlog=8"));
  REQUIRE(listener.ok());
  CHECK(connect_tcp4(caracal::local_port(listener->fd.get())));
}

// IPv6 listeners must not grab the IPv4 port too, or binding both stacks would fail.
TEST_CASE("an IPv6 listener is IPv6-only") {
  auto listener = open_single(bind_of("tcp://[::1]:0"));
  REQUIRE(listener.ok());
  CHECK(int_option(listener->fd.get(), IPPROTO_IPV6, IPV6_V6ONLY) == 1);
  CHECK(caracal::local_port(listener->fd.get()) > 0);
}

// A taken port must be reported with the URI, so the operator knows which bind failed.
TEST_CASE("binding a port that is taken fails with the URI and the reason") {
  auto first = open_single(bind_of("tcp://127.0.0.1:0"));
  REQUIRE(first.ok());
  auto uri = "tcp://127.0.0.1:" + std::to_string(caracal::local_port(first->fd.get()));
  auto second = open_single(bind_of(uri));
  REQUIRE_FALSE(second.ok());
  CHECK(second.error() == uri + ": Address already in use");
}

// Every address a name resolves to must be served, on one port, each by its own listener.
TEST_CASE("a host name is bound on every address it resolves to, all on one port") {
  auto listeners = caracal::open_bind(bind_of("tcp://localhost:0"));
  REQUIRE(listeners.ok());
  const int port = caracal::local_port(listeners->front().fd.get());
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  REQUIRE(::getaddrinfo("localhost", std::to_string(port).c_str(), &hints, &found) == 0);
  std::size_t addresses = 0;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next, ++addresses) {
    caracal::UniqueFd client(::socket(a->ai_family, SOCK_STREAM, 0));
    CHECK(::connect(client.get(), a->ai_addr, a->ai_addrlen) == 0);
  }
  ::freeaddrinfo(found);
  CHECK(listeners->size() <= addresses);  // a repeated address is bound once
  for (const auto& listener : *listeners) CHECK(caracal::local_port(listener.fd.get()) == port);
}

// Name resolution failures also name the URI.
TEST_CASE("an unresolvable host fails with the URI") {
  auto listener = open_single(bind_of("tcp://no-such-host.invalid:1"));
  REQUIRE_FALSE(listener.ok());
  CHECK(listener.error().starts_with("tcp://no-such-host.invalid:1: "));
}

// All or nothing: a failed bind must not leave the earlier ones open.
TEST_CASE("open_listeners closes what it bound when a later bind fails") {
  auto taken = open_single(bind_of("tcp://127.0.0.1:0"));
  REQUIRE(taken.ok());
  int port = caracal::local_port(taken->fd.get());
  auto path = temp_socket_path("all-or-nothing");
  std::vector<caracal::BindUri> binds{bind_of("unix://" + path), bind_of("tcp://127.0.0.1:" + std::to_string(port))};
  auto listeners = caracal::open_listeners(binds);
  REQUIRE_FALSE(listeners.ok());
  CHECK_FALSE(connect_unix(path));
  CHECK(::access(path.c_str(), F_OK) != 0);
}

// A crashed server leaves its socket file behind; the next start must not trip on it.
TEST_CASE("a stale unix socket file is replaced, a live one is refused") {
  auto path = temp_socket_path("stale");
  {
    // Make a stale file: bind a socket, then close it without removing the file.
    caracal::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path.c_str());
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  auto listener = open_single(bind_of("unix://" + path));
  REQUIRE(listener.ok());
  CHECK(connect_unix(path));
  auto second = open_single(bind_of("unix://" + path));
  REQUIRE_FALSE(second.ok());
  CHECK(second.error() == "unix://" + path + ": another server is listening on this socket");
}

// Files that are not sockets may be someone's data; they are never deleted.
TEST_CASE("a unix bind onto a regular file fails and leaves the file") {
  auto path = temp_socket_path("regular");
  { caracal::UniqueFd fd(::open(path.c_str(), O_CREAT | O_WRONLY, 0600)); }
  auto listener = open_single(bind_of("unix://" + path));
  REQUIRE_FALSE(listener.ok());
  CHECK(listener.error() == "unix://" + path + ": exists and is not a socket");
  CHECK(::access(path.c_str(), F_OK) == 0);
  ::unlink(path.c_str());
}

// The socket file belongs to the listener; closing it cleans up.
TEST_CASE("closing a unix listener removes its socket file") {
  auto path = temp_socket_path("cleanup");
  {
    auto listener = open_single(bind_of("unix://" + path));
    REQUIRE(listener.ok());
    CHECK(::access(path.c_str(), F_OK) == 0);
  }
  CHECK(::access(path.c_str(), F_OK) != 0);
}
// Binding everything:3 ends here

// [[file:../notes/accept-queue.org::*Adopting listeners for a hot restart][Adopting listeners for a hot restart:5]]
// A re-executed master must find its sockets again by the variables it exported.
TEST_CASE("listeners survive a round trip through CARACAL_INHERIT variables") {
  auto listeners = caracal::open_listeners(std::vector{bind_of("tcp://127.0.0.1:0")});
  REQUIRE(listeners.ok());
  int fd = listeners->at(0).fd.release();
  std::string uri = "tcp://127.0.0.1:" + std::to_string(caracal::local_port(fd));
  auto env = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "CARACAL_INHERIT_0") return std::to_string(fd) + ":" + uri;
    return std::nullopt;
  };
  auto adopted = caracal::adopt_listeners(env, ::getpid());
  REQUIRE(adopted.ok());
  REQUIRE(adopted->size() == 1);
  CHECK(adopted->at(0).fd.get() == fd);
  CHECK(caracal::inherit_variables(*adopted).at(0).second == std::to_string(fd) + ":" + uri);
  auto reused = caracal::open_listeners_reusing(std::vector{bind_of(uri)}, std::move(*adopted));
  REQUIRE(reused.ok());
  CHECK(reused->at(0).fd.get() == fd);
}

// A descriptor that is not a listening socket would make workers spin on accept errors.
TEST_CASE("an inherited descriptor that is not listening is refused") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  auto env = [&](std::string_view name) -> std::optional<std::string> {
    if (name == "CARACAL_INHERIT_0") return std::to_string(fds[0]) + ":tcp://127.0.0.1:1";
    return std::nullopt;
  };
  auto adopted = caracal::adopt_listeners(env, ::getpid());
  REQUIRE_FALSE(adopted.ok());
  CHECK(adopted.error() == "CARACAL_INHERIT_0: descriptor " + std::to_string(fds[0]) + " is not a listening socket");
  ::close(fds[0]);
  ::close(fds[1]);
}

// systemd's variables are meant for one pid; another process must ignore them.
TEST_CASE("LISTEN_FDS for another pid is ignored") {
  auto env = [](std::string_view name) -> std::optional<std::string> {
    if (name == "LISTEN_FDS") return "2";
    if (name == "LISTEN_PID") return "1";
    return std::nullopt;
  };
  auto adopted = caracal::adopt_listeners(env, ::getpid());
  REQUIRE(adopted.ok());
  CHECK(adopted->empty());
}

// systemd names its sockets by number only; the configured URI must find them by address.
TEST_CASE("a systemd socket is reused by the bind whose address it is bound to") {
  auto made = open_single(bind_of("tcp://127.0.0.1:0"));
  REQUIRE(made.ok());
  const int fd = made->fd.release();
  const std::string uri = "tcp://127.0.0.1:" + std::to_string(caracal::local_port(fd));
  std::vector<caracal::Listener> adopted;
  adopted.push_back(caracal::detail::adopt_systemd_socket(fd));
  auto listeners = caracal::open_listeners_reusing(std::vector{bind_of(uri)}, std::move(adopted));
  REQUIRE(listeners.ok());
  REQUIRE(listeners->size() == 1);
  CHECK(listeners->at(0).fd.get() == fd);
  CHECK(listeners->at(0).bind.text == uri);
}

// Closing a socket systemd handed over would refuse the connections it keeps queueing.
TEST_CASE("a systemd socket that matches no bind is kept, after the configured listeners") {
  auto made = open_single(bind_of("tcp://127.0.0.1:0"));
  REQUIRE(made.ok());
  const int fd = made->fd.release();
  std::vector<caracal::Listener> adopted;
  adopted.push_back(caracal::detail::adopt_systemd_socket(fd));
  auto listeners = caracal::open_listeners_reusing(std::vector{bind_of("tcp://127.0.0.1:0")}, std::move(adopted));
  REQUIRE(listeners.ok());
  REQUIRE(listeners->size() == 2);
  CHECK(listeners->at(0).fd.get() != fd);
  CHECK(listeners->at(1).fd.get() == fd);
  CHECK(int_option(fd, SOL_SOCKET, SO_ACCEPTCONN) == 1);
}
// Adopting listeners for a hot restart:5 ends here

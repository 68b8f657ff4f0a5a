// src/accept_queue.cpp: tangled from notes/accept-queue.org; edit the note, not this file.

// [[file:../notes/accept-queue.org::*Owned descriptors][Owned descriptors:2]]
#include "accept_queue.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>

namespace caracal {

Listener::~Listener() {
  if (fd && bind.scheme == BindUri::Scheme::unix && owner == ::getpid()) ::unlink(bind.path.c_str());
}
// Owned descriptors:2 ends here

// [[file:../notes/accept-queue.org::*Binding a TCP address][Binding a TCP address:4]]
namespace {

using Listeners = std::vector<Listener>;
using AddressList = std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)>;

std::string errno_text() { return std::strerror(errno); }

template <class T = Listener>
Outcome<T> failure(const BindUri& bind, const std::string& why) {
  return Outcome<T>::failure(bind.text + ": " + why);
}

// listen() and hand the descriptor over; the common tail of every scheme.
Outcome<Listener> start_listening(UniqueFd fd, const BindUri& bind) {
  if (::listen(fd.get(), bind.backlog) != 0) return failure(bind, errno_text());
  return Listener(std::move(fd), bind, ::getpid());
}

// Every address the bind's host names, with the bind's port.
Outcome<AddressList> resolve(const BindUri& bind) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto port = std::to_string(bind.port);
  if (int rc = ::getaddrinfo(bind.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return failure<AddressList>(bind, ::gai_strerror(rc));
  return AddressList(found, &::freeaddrinfo);
}

Outcome<Listener> open_tcp_address(const BindUri& bind, const addrinfo& address) {
  auto fail_errno = [&] { return failure(bind, errno_text()); };
  UniqueFd fd(::socket(address.ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno();
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return fail_errno();
  if (address.ai_family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)
    return fail_errno();
  if (::bind(fd.get(), address.ai_addr, address.ai_addrlen) != 0) return fail_errno();
  return start_listening(std::move(fd), bind);
}
// Binding a TCP address:4 ends here

// [[file:../notes/accept-queue.org::*Binding a TCP address][Binding a TCP address:5]]
// "127.0.0.1 8080", "::1 8080" or "/run/app.sock": a bound address, comparable as text.
std::string address_key(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "";
  if (address->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return std::string(text) + " " + std::to_string(ntohs(in->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return std::string(text) + " " + std::to_string(ntohs(in6->sin6_port));
  }
  if (address->sa_family == AF_UNIX) return reinterpret_cast<const sockaddr_un*>(address)->sun_path;
  return "";
}

void set_port(sockaddr* address, int port) {
  if (address->sa_family == AF_INET) reinterpret_cast<sockaddr_in*>(address)->sin_port = htons(port);
  if (address->sa_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(address)->sin6_port = htons(port);
}

Outcome<Listeners> open_tcp_listeners(const BindUri& bind) {
  auto addresses = resolve(bind);
  if (!addresses) return Outcome<Listeners>::failure(addresses.error());
  Listeners listeners;
  std::set<std::string> seen;
  std::string skipped;
  int port = bind.port;
  for (addrinfo* address = addresses->get(); address != nullptr; address = address->ai_next) {
    if (!seen.insert(address_key(address->ai_addr)).second) continue;  // listed twice
    set_port(address->ai_addr, port);
    auto listener = open_tcp_address(bind, *address);
    if (!listener) {
      // errno is still the failed socket() or bind(): building the message keeps it.
      if (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL) return Outcome<Listeners>::failure(listener.error());
      skipped = listener.error();
      continue;
    }
    if (port == 0) port = local_port(listener->fd.get());  // the others get the same port
    listeners.push_back(std::move(*listener));
  }
  if (listeners.empty()) return Outcome<Listeners>::failure(skipped);
  return listeners;
}
// Binding a TCP address:5 ends here

// [[file:../notes/accept-queue.org::*Binding a Unix socket][Binding a Unix socket:2]]
Outcome<Listener> open_unix_listener(const BindUri& bind) {
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  // sun_path is a fixed array (108 bytes on Linux) that needs room for the NUL.
  if (bind.path.size() >= sizeof address.sun_path)
    return failure(bind, "socket path longer than " + std::to_string(sizeof address.sun_path - 1) + " bytes");
  std::memcpy(address.sun_path, bind.path.c_str(), bind.path.size() + 1);
  struct stat info{};
  if (::lstat(bind.path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) return failure(bind, "exists and is not a socket");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0)
      return failure(bind, "another server is listening on this socket");
    if (errno == ECONNREFUSED) ::unlink(bind.path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return failure(bind, errno_text());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
    return failure(bind, errno_text());
  return start_listening(std::move(fd), bind);
}

}  // namespace
// Binding a Unix socket:2 ends here

// [[file:../notes/accept-queue.org::*Binding everything][Binding everything:2]]
Outcome<std::vector<Listener>> open_bind(const BindUri& bind) {
  if (bind.scheme != BindUri::Scheme::unix) return open_tcp_listeners(bind);
  auto listener = open_unix_listener(bind);
  if (!listener) return Outcome<Listeners>::failure(listener.error());
  Listeners one;
  one.push_back(std::move(*listener));
  return one;
}

Outcome<std::vector<Listener>> open_listeners(std::span<const BindUri> binds) {
  Listeners listeners, others;
  for (const auto& bind : binds) {
    auto opened = open_bind(bind);
    // Returning drops both lists, closing every socket bound so far.
    if (!opened) return Outcome<Listeners>::failure(opened.error());
    listeners.push_back(std::move(opened->front()));
    for (std::size_t i = 1; i < opened->size(); ++i)
      others.push_back(std::move((*opened)[i]));
  }
  for (auto& listener : others) listeners.push_back(std::move(listener));
  return listeners;
}

std::vector<int> listener_fds(const std::vector<Listener>& listeners) {
  std::vector<int> fds;
  for (const auto& listener : listeners) fds.push_back(listener.fd.get());
  return fds;
}

int local_port(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return -1;
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
  return -1;
}
// Binding everything:2 ends here

// [[file:../notes/accept-queue.org::*Adopting listeners for a hot restart][Adopting listeners for a hot restart:4]]
namespace {

bool is_listening_socket(int fd) {
  int listening = 0;
  socklen_t length = sizeof listening;
  return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0 && listening == 1;
}

// systemd passes LISTEN_FDS descriptors from 3 on; they are known only by number.
std::optional<std::string> adopt_systemd_listeners(const EnvironmentLookup& env, pid_t self,
                                                   std::vector<Listener>& adopted) {
  auto count = env("LISTEN_FDS");
  auto pid = env("LISTEN_PID");
  if (!count || !pid || parse_count(*pid) != static_cast<int>(self)) return std::nullopt;
  auto n = parse_count(*count);
  if (!n) return "LISTEN_FDS: expected a whole number, got '" + *count + "'";
  for (int fd = 3; fd < 3 + *n; ++fd) {
    if (!is_listening_socket(fd)) return "LISTEN_FDS: descriptor " + std::to_string(fd) + " is not a listening socket";
    adopted.push_back(detail::adopt_systemd_socket(fd));
  }
  return std::nullopt;
}

bool is_from_systemd(const Listener& listener) { return listener.bind.text.starts_with("systemd://"); }

// The address `fd` is bound to, as address_key spells it.
std::string bound_key(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "";
  return address_key(reinterpret_cast<sockaddr*>(&address));
}

// Every address `bind` would be bound to, as address_key spells it (none for port 0).
std::set<std::string> bind_keys(const BindUri& bind) {
  if (bind.scheme == BindUri::Scheme::unix) return {bind.path};
  std::set<std::string> keys;
  auto addresses = resolve(bind);
  if (!addresses || bind.port == 0) return keys;
  for (addrinfo* a = addresses->get(); a != nullptr; a = a->ai_next) keys.insert(address_key(a->ai_addr));
  return keys;
}

// The adopted listeners that serve `bind`, moved out of `adopted`.
Listeners take_adopted_for(const BindUri& bind, Listeners& adopted) {
  Listeners taken;
  const auto keys = bind_keys(bind);
  for (auto it = adopted.begin(); it != adopted.end();) {
    const bool same_uri = it->bind.text == bind.text;
    const bool same_address = is_from_systemd(*it) && keys.contains(bound_key(it->fd.get()));
    if (!same_uri && !same_address) {
      ++it;
      continue;
    }
    taken.emplace_back(std::move(it->fd), bind, -1);  // the configured bind, e.g. its TLS files
    it = adopted.erase(it);
  }
  return taken;
}

}  // namespace

Listener detail::adopt_systemd_socket(int fd) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  BindUri bind;
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  if (address.ss_family == AF_UNIX) bind.scheme = BindUri::Scheme::unix;
  bind.text = "systemd://" + std::to_string(fd);
  return Listener(UniqueFd(fd), bind, -1);  // owner -1: the socket file is systemd's
}

Outcome<std::vector<Listener>> adopt_listeners(const EnvironmentLookup& env, pid_t self) {
  auto fail = [](const std::string& why) { return Outcome<std::vector<Listener>>::failure(why); };
  std::vector<Listener> adopted;
  for (int i = 0;; ++i) {
    auto name = "CARACAL_INHERIT_" + std::to_string(i);
    auto value = env(name);
    if (!value) break;
    auto colon = value->find(':');
    auto fd = parse_count(std::string_view(*value).substr(0, colon == std::string::npos ? 0 : colon));
    auto bind = fd ? parse_bind_uri(value->substr(colon + 1)) : Outcome<BindUri>::failure("expected FD:URI");
    if (!bind) return fail(name + ": " + bind.error());
    if (!is_listening_socket(*fd)) return fail(name + ": descriptor " + std::to_string(*fd) + " is not a listening socket");
    ::fcntl(*fd, F_SETFD, FD_CLOEXEC);
    adopted.emplace_back(UniqueFd(*fd), *bind, -1);
  }
  if (auto error = adopt_systemd_listeners(env, self, adopted)) return fail(*error);
  return adopted;
}

Outcome<std::vector<Listener>> open_listeners_reusing(std::span<const BindUri> binds,
                                                      std::vector<Listener> adopted) {
  Listeners listeners, others;
  for (const auto& bind : binds) {
    Listeners reused = take_adopted_for(bind, adopted);
    auto opened = reused.empty() ? open_bind(bind) : Outcome<Listeners>(std::move(reused));
    if (!opened) return Outcome<Listeners>::failure(opened.error());
    listeners.push_back(std::move(opened->front()));
    for (std::size_t i = 1; i < opened->size(); ++i)
      others.push_back(std::move((*opened)[i]));
  }
  for (auto& listener : others) listeners.push_back(std::move(listener));
  for (auto& listener : adopted)  // the rest: inherited ones close here, systemd's stay
    if (is_from_systemd(listener)) listeners.push_back(std::move(listener));
  return listeners;
}

std::vector<std::pair<std::string, std::string>> inherit_variables(const std::vector<Listener>& listeners) {
  std::vector<std::pair<std::string, std::string>> vars;
  for (std::size_t i = 0; i < listeners.size(); ++i)
    vars.emplace_back("CARACAL_INHERIT_" + std::to_string(i),
                      std::to_string(listeners[i].fd.get()) + ":" + listeners[i].bind.text);
  return vars;
}

}  // namespace caracal
// Adopting listeners for a hot restart:4 ends here

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

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace caracal {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) reset(other.release());
  return *this;
}

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

Listener::~Listener() {
  if (fd && bind.scheme == BindUri::Scheme::unix && owner == ::getpid()) ::unlink(bind.path.c_str());
}
// Owned descriptors:2 ends here

// [[file:../notes/accept-queue.org::*Binding a TCP address][Binding a TCP address:3]]
namespace {

std::string errno_text() { return std::strerror(errno); }

Outcome<Listener> failure(const BindUri& bind, const std::string& why) {
  return Outcome<Listener>::failure(bind.text + ": " + why);
}

// listen() and hand the descriptor over; the common tail of every scheme.
Outcome<Listener> start_listening(UniqueFd fd, const BindUri& bind) {
  if (::listen(fd.get(), bind.backlog) != 0) return failure(bind, errno_text());
  return Listener(std::move(fd), bind, ::getpid());
}

Outcome<Listener> open_tcp_listener(const BindUri& bind) {
  auto fail = [&](const std::string& why) { return failure(bind, why); };
  auto fail_errno = [&] { return failure(bind, errno_text()); };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto port = std::to_string(bind.port);
  if (int rc = ::getaddrinfo(bind.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return fail(::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, &::freeaddrinfo);
  UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno();
  int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) return fail_errno();
  if (found->ai_family == AF_INET6 &&
      ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) != 0)
    return fail_errno();
  if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0) return fail_errno();
  return start_listening(std::move(fd), bind);
}
// Binding a TCP address:3 ends here

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

// [[file:../notes/accept-queue.org::*Binding everything][Binding everything:1]]
Outcome<Listener> open_listener(const BindUri& bind) {
  if (bind.scheme == BindUri::Scheme::unix) return open_unix_listener(bind);
  return open_tcp_listener(bind);
}

Outcome<std::vector<Listener>> open_listeners(std::span<const BindUri> binds) {
  std::vector<Listener> listeners;
  for (const auto& bind : binds) {
    auto listener = open_listener(bind);
    // Returning drops `listeners`, closing every socket bound so far.
    if (!listener) return Outcome<std::vector<Listener>>::failure(listener.error());
    listeners.push_back(std::move(*listener));
  }
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
// Binding everything:1 ends here

// [[file:../notes/accept-queue.org::*Adopting listeners for a hot restart][Adopting listeners for a hot restart:3]]
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
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    BindUri bind;
    bind.text = "systemd://" + std::to_string(fd);
    adopted.emplace_back(UniqueFd(fd), bind, -1);
  }
  return std::nullopt;
}

}  // namespace

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
  std::vector<Listener> listeners;
  for (const auto& bind : binds) {
    auto same = std::find_if(adopted.begin(), adopted.end(), [&](const Listener& l) { return l.bind.text == bind.text; });
    if (same != adopted.end()) {
      listeners.push_back(std::move(*same));
      adopted.erase(same);
      continue;
    }
    auto fresh = open_listener(bind);
    if (!fresh) return Outcome<std::vector<Listener>>::failure(fresh.error());
    listeners.push_back(std::move(*fresh));
  }
  return listeners;  // adopted sockets nobody asked for close here
}

std::vector<std::pair<std::string, std::string>> inherit_variables(const std::vector<Listener>& listeners) {
  std::vector<std::pair<std::string, std::string>> vars;
  for (std::size_t i = 0; i < listeners.size(); ++i)
    vars.emplace_back("CARACAL_INHERIT_" + std::to_string(i),
                      std::to_string(listeners[i].fd.get()) + ":" + listeners[i].bind.text);
  return vars;
}

}  // namespace caracal
// Adopting listeners for a hot restart:3 ends here

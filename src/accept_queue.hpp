// src/accept_queue.hpp: tangled from notes/accept-queue.org; edit the note, not this file.

// [[file:../notes/accept-queue.org::*Owned descriptors][Owned descriptors:1]]
#pragma once
#include "configuration.hpp"
#include "unique_fd.hpp"

#include <sys/types.h>

#include <span>
#include <vector>

namespace caracal {

// A bound, listening socket and the bind it serves.
struct Listener {
  UniqueFd fd;
  BindUri bind;
  pid_t owner = -1;  // the process that created a unix socket file and may remove it

  Listener(UniqueFd f, BindUri b, pid_t o) : fd(std::move(f)), bind(std::move(b)), owner(o) {}
  Listener(Listener&&) noexcept = default;
  Listener& operator=(Listener&&) noexcept = default;
  ~Listener();
};

// Binds and listens on one URI; a host name gets one listener per address it
// resolves to (localhost: 127.0.0.1 and ::1). Errors read "URI: reason".
Outcome<std::vector<Listener>> open_bind(const BindUri& bind);
// Binds every URI or none: on the first failure the ones already open are closed.
// Listener i belongs to bind i; a host name's further addresses follow the last bind.
Outcome<std::vector<Listener>> open_listeners(std::span<const BindUri> binds);
// The raw descriptors, in bind order, for run_worker.
std::vector<int> listener_fds(const std::vector<Listener>& listeners);
// The port a TCP listener actually got (useful after binding port 0); -1 if none.
int local_port(int fd);
// Owned descriptors:1 ends here

// [[file:../notes/accept-queue.org::*Adopting listeners for a hot restart][Adopting listeners for a hot restart:1]]
// Descriptors handed over by a previous master (CARACAL_INHERIT_N=FD:URI) or by
// systemd (LISTEN_FDS with LISTEN_PID == self); errors name the variable.
Outcome<std::vector<Listener>> adopt_listeners(const EnvironmentLookup& env, pid_t self);
// Like open_listeners, but a bind reuses the adopted listeners that match it: by URI
// text (CARACAL_INHERIT) or by bound address (systemd). Adopted systemd sockets that
// match no bind are kept, after the others; unmatched inherited ones are closed.
Outcome<std::vector<Listener>> open_listeners_reusing(std::span<const BindUri> binds,
                                                      std::vector<Listener> adopted);
// The CARACAL_INHERIT_N=FD:URI pairs a re-executed master needs to adopt `listeners`.
std::vector<std::pair<std::string, std::string>> inherit_variables(const std::vector<Listener>& listeners);

namespace detail {
// What systemd's descriptor `fd` becomes once adopted: a listener named systemd://FD.
Listener adopt_systemd_socket(int fd);
}  // namespace detail

}  // namespace caracal
// Adopting listeners for a hot restart:1 ends here

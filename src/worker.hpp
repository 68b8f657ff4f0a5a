// src/worker.hpp: tangled from notes/worker.org; edit the note, not this file.

// [[file:../notes/worker.org::*Heartbeats][Heartbeats:2]]
#pragma once
// No Beast and no Asio here: main and the cluster include this header.
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "app.hpp"
#include "lowlevel_error_handler.hpp"

namespace caracal {

struct TlsContext;  // see the HTTP session note; opaque here

struct WorkerSettings {
  int index = 0;                                   // which worker (0-based); 0 in single mode
  int min_threads = 0, max_threads = 5;
  std::chrono::milliseconds first_data_timeout{30000};
  std::chrono::milliseconds persistent_timeout{65000};
  std::chrono::milliseconds write_timeout{30000};
  std::chrono::milliseconds shutdown_timeout{30000}; // how long in-flight requests get on SIGTERM
  std::chrono::milliseconds heartbeat_interval{5000}; // Puma's worker_check_interval
  // How long a pool thread may sleep unused before it is reaped (down to min_threads).
  std::chrono::milliseconds thread_reap_interval{5000};
  int max_keep_alive = 999;
  std::string environment = "development";
  int heartbeat_fd = -1;                           // write end of the pipe to the master; -1 = none
  RequestLimits limits;                            // what a request may weigh
  LowlevelErrorHandler lowlevel_error_handler;     // Puma's hook; empty: the default answers
  // One entry per listening socket, in the same order; null for plain TCP and Unix sockets.
  std::vector<std::shared_ptr<TlsContext>> tls;
  // Single mode: a terminal hangup stops the server like SIGINT. In a cluster the
  // worker leaves SIGHUP ignored, because the master decides what a hangup means.
  bool stop_on_hangup = false;
};

// After shutdown_timeout a worker cuts off the requests still in the app and
// spends up to this long writing their 503s; a master should wait that much longer.
inline constexpr std::chrono::seconds kCutOffGrace{2};

// Serves the inherited listening sockets (already bound and listening, owned by the caller)
// until SIGTERM or SIGINT: then it stops accepting, lets in-flight requests finish (up to
// shutdown_timeout), and returns the process exit status (0 on a clean stop).
// It installs its own SIGTERM/SIGINT handling (the caller resets dispositions after fork).
int run_worker(const WorkerSettings& settings, std::span<const int> listen_fds, App app);

// The signal that began the graceful stop of the last run_worker in this process, or
// 0. Single mode reads it to end the way Puma does: by re-raising SIGTERM (status 143).
int last_stop_signal();

}  // namespace caracal
// Heartbeats:2 ends here

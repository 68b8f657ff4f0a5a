// src/cluster.hpp: tangled from notes/cluster.org; edit the note, not this file.

// [[file:../notes/cluster.org::*The master's states][The master's states:5]]
#pragma once
#include "accept_queue.hpp"

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace caracal {

using Clock = std::chrono::steady_clock;

// Later states: phased_restarting (SIGUSR1), re_executing (SIGUSR2).
enum class MasterState { booting, running, stopping, stopped };
std::string_view to_string(MasterState state);
// The master's states:5 ends here

// [[file:../notes/cluster.org::*The worker slot][The worker slot:2]]
// A worker that dies sooner than this after its start is respawned only once it is over.
inline constexpr std::chrono::milliseconds minimum_worker_lifetime{1000};

// The master's view of one worker slot (not the worker itself: see worker.hpp).
struct WorkerHandle {
  int index = 0;
  int phase = 0;  // bumped by a phased restart (later): older phases get replaced
  pid_t pid = -1;  // -1: no process in this slot right now
  UniqueFd heartbeat;  // read end of the worker's check-in pipe
  std::string partial_line;  // a check-in line not yet complete
  bool booted = false;
  Clock::time_point started_at{};
  Clock::time_point last_check_in{};
  std::optional<Clock::time_point> term_sent_at;
  bool kill_sent = false;
  Clock::time_point respawn_not_before{};
  std::string last_stats;  // the JSON of the latest `p` line

  bool is_running() const { return pid > 0; }
  bool is_stopping() const { return term_sent_at.has_value(); }
  bool has_missed_its_boot(Clock::time_point now, std::chrono::milliseconds boot_timeout) const {
    return is_running() && !booted && now - started_at > boot_timeout;
  }
  bool has_stopped_checking_in(Clock::time_point now, std::chrono::milliseconds timeout) const {
    return is_running() && booted && now - last_check_in > timeout;
  }
  bool has_overrun_its_shutdown(Clock::time_point now, std::chrono::milliseconds grace) const {
    return is_running() && term_sent_at && now - *term_sent_at > grace;
  }
};
// The worker slot:2 ends here

// [[file:../notes/cluster.org::*The cluster's interface][The cluster's interface:1]]
// Runs in the forked child: serve until SIGTERM/SIGINT, return the exit status.
using WorkerEntry = std::function<int(int index, int heartbeat_fd)>;

struct ClusterSettings {
  int workers = 1;
  std::chrono::milliseconds worker_timeout{60000};
  std::chrono::milliseconds worker_boot_timeout{60000};
  std::chrono::milliseconds worker_shutdown_timeout{30000};
  bool raise_exception_on_sigterm = true;
  std::string listening_on;  // shown in the master's process title
  std::function<void()> stop_accepting;  // called once when a stop begins
  std::function<void(const std::string&)> log;  // one line, no newline; empty = stdout
};

// How the master should end: an exit status, or a signal to re-raise (Puma's 143).
struct ClusterExit {
  int status = 0;
  int reraise_signal = 0;
};

class Cluster {
 public:
  Cluster(ClusterSettings settings, WorkerEntry entry);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Supervises until a stop completes. Installs its signal handlers and restores them.
  ClusterExit run();

 private:
  void open_self_pipe();
  void install_signal_handlers();
  void restore_signal_handlers();
  void act_on_signals(Clock::time_point now);
  void begin_stop(int signal, Clock::time_point now);
  void add_worker();
  void remove_worker(Clock::time_point now);
  void reap_workers(Clock::time_point now);
  void read_check_ins(Clock::time_point now);
  void read_check_ins_of(WorkerHandle& slot, Clock::time_point now);
  void kill_unresponsive_workers(Clock::time_point now);
  void kill_workers_that_overrun_their_shutdown(Clock::time_point now);
  void spawn_missing_workers(Clock::time_point now);
  void spawn_worker(WorkerHandle& slot, Clock::time_point now);
  [[noreturn]] void become_worker(WorkerHandle& slot, int heartbeat_fd, pid_t master);
  void note_when_all_workers_booted();
  void sleep_until_something_happens();
  bool is_supervising() const;
  bool has_running_workers() const;
  void log(const std::string& line) const;

  ClusterSettings settings_;
  WorkerEntry entry_;
  MasterState state_ = MasterState::booting;
  int target_workers_ = 0;
  std::vector<WorkerHandle> slots_;
  UniqueFd signal_read_, signal_write_;
  std::vector<int> pending_signals_;
  int stop_signal_ = 0;
};
// The cluster's interface:1 ends here

// [[file:../notes/cluster.org::*Process titles][Process titles:1]]
// Makes the argv (and environment) area writable for set_process_title. Call once,
// from main, after copying argv: its strings are overwritten by the first title.
void init_process_title(int argc, char** argv);
// Shows `title` in ps and /proc/PID/cmdline, `short_name` (15 bytes) in top.
void set_process_title(std::string_view title, std::string_view short_name);

namespace detail {
// Writes `title` into an area of `capacity` bytes: truncated, NUL-terminated, NUL-padded.
void write_title(char* area, std::size_t capacity, std::string_view title);
}  // namespace detail

}  // namespace caracal
// Process titles:1 ends here

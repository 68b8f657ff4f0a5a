// src/cluster.cpp: tangled from notes/cluster.org; edit the note, not this file.

// [[file:../notes/cluster.org::*Process titles][Process titles:3]]
#include "cluster.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <system_error>

extern char** environ;

namespace caracal {

namespace {
char* title_area = nullptr;
std::size_t title_capacity = 0;
}  // namespace

void detail::write_title(char* area, std::size_t capacity, std::string_view title) {
  if (capacity == 0) return;
  std::size_t length = std::min(title.size(), capacity - 1);
  std::memcpy(area, title.data(), length);
  std::memset(area + length, '\0', capacity - length);
}

void init_process_title(int argc, char** argv) {
  if (argc <= 0 || argv[0] == nullptr) return;
  char* end = argv[0] + std::strlen(argv[0]) + 1;
  // Only strings that follow each other directly form one writable area.
  for (int i = 1; i < argc; ++i)
    if (argv[i] == end) end = argv[i] + std::strlen(argv[i]) + 1;
  std::size_t count = 0;
  while (environ != nullptr && environ[count] != nullptr) ++count;
  char** copy = new char*[count + 1];
  for (std::size_t i = 0; i < count; ++i) {
    if (environ[i] == end) end = environ[i] + std::strlen(environ[i]) + 1;
    copy[i] = ::strdup(environ[i]);
  }
  copy[count] = nullptr;
  environ = copy;  // deliberately never freed: it is the process environment from now on
  title_area = argv[0];
  title_capacity = static_cast<std::size_t>(end - argv[0]);
}

void set_process_title(std::string_view title, std::string_view short_name) {
  if (title_area != nullptr) detail::write_title(title_area, title_capacity, title);
  std::string comm(short_name.substr(0, 15));
  ::prctl(PR_SET_NAME, comm.c_str(), 0, 0, 0);
}

std::string_view to_string(MasterState state) {
  switch (state) {
    case MasterState::booting: return "booting";
    case MasterState::running: return "running";
    case MasterState::stopping: return "stopping";
    case MasterState::stopped: return "stopped";
  }
  return "unknown";
}
// Process titles:3 ends here

// [[file:../notes/cluster.org::*The self-pipe][The self-pipe:1]]
namespace {

int signal_pipe_write = -1;  // the self-pipe's write end, for the handler

// The signals the master handles; the child puts every one back to its default.
constexpr int master_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
struct sigaction saved_actions[std::size(master_signals)];

extern "C" void record_signal(int signal) {
  int saved_errno = errno;
  unsigned char byte = static_cast<unsigned char>(signal);
  [[maybe_unused]] auto ignored = ::write(signal_pipe_write, &byte, 1);
  errno = saved_errno;
}

void restore_default_signal_dispositions() {
  for (int signal : master_signals) ::signal(signal, SIG_DFL);
}

// A hangup is the master's to act on (see the table); it stops workers by SIGTERM.
void leave_hangups_to_the_master() { ::signal(SIGHUP, SIG_IGN); }

}  // namespace

Cluster::Cluster(ClusterSettings settings, WorkerEntry entry)
    : settings_(std::move(settings)), entry_(std::move(entry)) {}

Cluster::~Cluster() = default;

void Cluster::open_self_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
  signal_read_.reset(fds[0]);
  signal_write_.reset(fds[1]);
  signal_pipe_write = fds[1];
}

void Cluster::install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = record_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  for (std::size_t i = 0; i < std::size(master_signals); ++i)
    ::sigaction(master_signals[i], &action, &saved_actions[i]);
}

void Cluster::restore_signal_handlers() {
  for (std::size_t i = 0; i < std::size(master_signals); ++i)
    ::sigaction(master_signals[i], &saved_actions[i], nullptr);
  signal_pipe_write = -1;
}
// The self-pipe:1 ends here

// [[file:../notes/cluster.org::*The master loop][The master loop:2]]
ClusterExit Cluster::run() {
  open_self_pipe();
  install_signal_handlers();
  set_process_title("caracal: cluster master (" + settings_.listening_on + ")", "caracal master");
  target_workers_ = settings_.workers;
  while (state_ != MasterState::stopped) {
    auto now = Clock::now();
    act_on_signals(now);
    reap_workers(now);
    read_check_ins(now);
    if (is_supervising()) {
      kill_unresponsive_workers(now);
      spawn_missing_workers(now);
      note_when_all_workers_booted();
    } else {
      kill_workers_that_overrun_their_shutdown(now);
      if (!has_running_workers()) state_ = MasterState::stopped;
    }
    if (state_ != MasterState::stopped) sleep_until_something_happens();
  }
  restore_signal_handlers();
  bool reraise = stop_signal_ == SIGTERM && settings_.raise_exception_on_sigterm;
  return ClusterExit{0, reraise ? SIGTERM : 0};
}

bool Cluster::is_supervising() const {
  return state_ == MasterState::booting || state_ == MasterState::running;
}

bool Cluster::has_running_workers() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const WorkerHandle& s) { return s.is_running(); });
}

void Cluster::log(const std::string& line) const {
  if (settings_.log) return settings_.log(line);
  std::cout << "[" << ::getpid() << "] " << line << std::endl;
}
// The master loop:2 ends here

// [[file:../notes/cluster.org::*Sleeping][Sleeping:2]]
void Cluster::sleep_until_something_happens() {
  std::vector<pollfd> fds{{signal_read_.get(), POLLIN, 0}};
  for (const auto& slot : slots_)
    if (slot.heartbeat) fds.push_back({slot.heartbeat.get(), POLLIN, 0});
  // EINTR is expected (a signal arrived) and harmless: the loop looks at everything anyway.
  ::poll(fds.data(), fds.size(), 200);
  unsigned char bytes[64];
  for (ssize_t n; (n = ::read(signal_read_.get(), bytes, sizeof bytes)) > 0;)
    pending_signals_.insert(pending_signals_.end(), bytes, bytes + n);
}
// Sleeping:2 ends here

// [[file:../notes/cluster.org::*Acting on signals][Acting on signals:1]]
void Cluster::act_on_signals(Clock::time_point now) {
  auto signals = std::move(pending_signals_);
  pending_signals_.clear();
  for (int signal : signals) {
    switch (signal) {
      case SIGTERM: case SIGINT: case SIGHUP: begin_stop(signal, now); break;
      case SIGTTIN: add_worker(); break;
      case SIGTTOU: remove_worker(now); break;
      case SIGUSR1: log("! SIGUSR1 (phased restart) is not implemented yet; ignored"); break;
      case SIGUSR2: log("! SIGUSR2 (hot restart) is not implemented yet; ignored"); break;
      default: break;  // SIGCHLD: reap_workers runs every turn
    }
  }
}
// Acting on signals:1 ends here

// [[file:../notes/cluster.org::*Acting on signals][Acting on signals:2]]
void Cluster::begin_stop(int signal, Clock::time_point now) {
  if (!is_supervising()) return;
  log("- stop requested: asking every worker to finish (SIGTERM)");
  state_ = MasterState::stopping;
  stop_signal_ = signal;
  if (settings_.stop_accepting) settings_.stop_accepting();
  for (auto& slot : slots_) {
    if (!slot.is_running() || slot.is_stopping()) continue;
    ::kill(slot.pid, SIGTERM);
    slot.term_sent_at = now;
  }
}
// Acting on signals:2 ends here

// [[file:../notes/cluster.org::*Acting on signals][Acting on signals:3]]
void Cluster::add_worker() {
  if (!is_supervising()) return;
  ++target_workers_;
  log("- worker count raised to " + std::to_string(target_workers_) + " (SIGTTIN)");
}

void Cluster::remove_worker(Clock::time_point now) {
  if (!is_supervising() || target_workers_ < 2) return;
  --target_workers_;
  log("- worker count lowered to " + std::to_string(target_workers_) + " (SIGTTOU)");
  for (auto& slot : slots_) {
    if (slot.index < target_workers_ || !slot.is_running() || slot.is_stopping()) continue;
    ::kill(slot.pid, SIGTERM);
    slot.term_sent_at = now;
  }
}
// Acting on signals:3 ends here

// [[file:../notes/cluster.org::*Reaping][Reaping:2]]
namespace {

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" + ::strsignal(WTERMSIG(status)) + ")";
  return "changed state";
}

}  // namespace

void Cluster::reap_workers(Clock::time_point now) {
  int status = 0;
  for (pid_t pid; (pid = ::waitpid(-1, &status, WNOHANG)) > 0;) {
    auto slot = std::find_if(slots_.begin(), slots_.end(), [&](const WorkerHandle& s) { return s.pid == pid; });
    if (slot == slots_.end()) continue;  // not ours (the app may fork)
    log("- worker " + std::to_string(slot->index) + " (pid " + std::to_string(pid) + ") " + describe_exit(status));
    slot->pid = -1;
    slot->heartbeat.reset();
    slot->partial_line.clear();
    slot->booted = false;
    slot->term_sent_at.reset();
    slot->kill_sent = false;
    slot->respawn_not_before = std::max(now, slot->started_at + minimum_worker_lifetime);
  }
  while (!slots_.empty() && static_cast<int>(slots_.size()) > target_workers_ && !slots_.back().is_running())
    slots_.pop_back();
}
// Reaping:2 ends here

// [[file:../notes/cluster.org::*Check-ins][Check-ins:2]]
void Cluster::read_check_ins(Clock::time_point now) {
  for (auto& slot : slots_)
    if (slot.heartbeat) read_check_ins_of(slot, now);
}

void Cluster::read_check_ins_of(WorkerHandle& slot, Clock::time_point now) {
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(slot.heartbeat.get(), buffer, sizeof buffer)) > 0) slot.partial_line.append(buffer, n);
  if (n == 0) slot.heartbeat.reset();  // the worker closed its end
  for (auto newline = slot.partial_line.find('\n'); newline != std::string::npos;
       newline = slot.partial_line.find('\n')) {
    std::string line = slot.partial_line.substr(0, newline);
    slot.partial_line.erase(0, newline + 1);
    slot.last_check_in = now;
    if (line.starts_with("b ") && !slot.booted) {
      slot.booted = true;
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - slot.started_at).count();
      log("- worker " + std::to_string(slot.index) + " (pid " + std::to_string(slot.pid) + ") ready after " +
          std::to_string(ms) + " ms (phase " + std::to_string(slot.phase) + ")");
    } else if (line.starts_with("p ")) {
      auto brace = line.find('{');
      slot.last_stats = brace == std::string::npos ? "" : line.substr(brace);
    }
  }
}

void Cluster::note_when_all_workers_booted() {
  if (state_ != MasterState::booting) return;
  if (static_cast<int>(slots_.size()) < target_workers_) return;
  if (!std::all_of(slots_.begin(), slots_.end(), [](const WorkerHandle& s) { return s.booted; })) return;
  state_ = MasterState::running;
  log("- all " + std::to_string(target_workers_) + " workers ready");
}
// Check-ins:2 ends here

// [[file:../notes/cluster.org::*Killing what does not answer][Killing what does not answer:1]]
void Cluster::kill_unresponsive_workers(Clock::time_point now) {
  for (auto& slot : slots_) {
    if (slot.kill_sent || slot.is_stopping()) continue;
    bool missed_boot = slot.has_missed_its_boot(now, settings_.worker_boot_timeout);
    bool silent = slot.has_stopped_checking_in(now, settings_.worker_timeout);
    if (!missed_boot && !silent) continue;
    log("! worker " + std::to_string(slot.index) + " (pid " + std::to_string(slot.pid) +
        (missed_boot ? ") did not boot in time; sending SIGKILL" : ") stopped checking in; sending SIGKILL"));
    ::kill(slot.pid, SIGKILL);
    slot.kill_sent = true;
  }
  kill_workers_that_overrun_their_shutdown(now);
}

void Cluster::kill_workers_that_overrun_their_shutdown(Clock::time_point now) {
  for (auto& slot : slots_) {
    if (slot.kill_sent || !slot.has_overrun_its_shutdown(now, settings_.worker_shutdown_timeout)) continue;
    log("! worker " + std::to_string(slot.index) + " (pid " + std::to_string(slot.pid) +
        ") outlived worker_shutdown_timeout; sending SIGKILL");
    ::kill(slot.pid, SIGKILL);
    slot.kill_sent = true;
  }
}
// Killing what does not answer:1 ends here

// [[file:../notes/cluster.org::*Spawning][Spawning:2]]
void Cluster::spawn_missing_workers(Clock::time_point now) {
  while (static_cast<int>(slots_.size()) < target_workers_) {
    slots_.emplace_back();
    slots_.back().index = static_cast<int>(slots_.size()) - 1;
  }
  for (auto& slot : slots_)
    if (slot.index < target_workers_ && !slot.is_running() && now >= slot.respawn_not_before)
      spawn_worker(slot, now);
}

void Cluster::spawn_worker(WorkerHandle& slot, Clock::time_point now) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return log(std::string("! pipe2: ") + std::strerror(errno));
  std::cout.flush();
  std::fflush(nullptr);  // or the child would write the master's buffered output again
  sigset_t all, previous;
  sigfillset(&all);
  ::sigprocmask(SIG_BLOCK, &all, &previous);
  pid_t master = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);  // the master's end; see become_worker
    become_worker(slot, fds[1], master);
  }
  ::sigprocmask(SIG_SETMASK, &previous, nullptr);
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    slot.respawn_not_before = now + minimum_worker_lifetime;
    return log(std::string("! fork: ") + std::strerror(errno));
  }
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  slot.pid = pid;
  slot.heartbeat.reset(fds[0]);
  slot.started_at = slot.last_check_in = now;
}
// Spawning:2 ends here

// [[file:../notes/cluster.org::*Spawning][Spawning:3]]
void Cluster::become_worker(WorkerHandle& slot, int heartbeat_fd, pid_t master) {
  restore_default_signal_dispositions();
  leave_hangups_to_the_master();
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0);
  if (::getppid() != master) ::_exit(1);
  signal_read_.reset();
  signal_write_.reset();
  for (auto& other : slots_) other.heartbeat.reset();
  set_process_title("caracal: cluster worker " + std::to_string(slot.index),
                    "caracal wkr " + std::to_string(slot.index));
  int status = 1;
  try {
    status = entry_(slot.index, heartbeat_fd);
  } catch (const std::exception& error) {
    std::cerr << "caracal: worker " << slot.index << ": " << error.what() << std::endl;
  } catch (...) {
    std::cerr << "caracal: worker " << slot.index << ": unknown exception" << std::endl;
  }
  std::fflush(nullptr);
  ::_exit(status);
}

}  // namespace caracal
// Spawning:3 ends here

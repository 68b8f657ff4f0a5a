// src/worker.cpp: tangled from notes/worker.org; edit the note, not this file.

// [[file:../notes/worker.org::*The worker's parts][The worker's parts:2]]
#include "worker.hpp"

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <csignal>
#include <iostream>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "accept_queue.hpp"  // local_port: the TCP port of a socket, -1 for a Unix one
#include "http_session.hpp"
#include "parking_lot.hpp"
#include "sleep_and_wake.hpp"
#include "thread_pool.hpp"

namespace caracal {

namespace net = boost::asio;

namespace detail {

class Worker {
 public:
  Worker(const WorkerSettings& settings, std::span<const int> listen_fds, App app);
  int run();

 private:
  void adopt_connection(int fd, int requests_served = 0);
  void park_connection(int fd, int requests_served, ParkingLot::Clock::time_point until);
  void watch_parked_connections();
  void expire_parked_connections_in_time();
  std::shared_ptr<TlsContext> tls_for(int fd) const;
  std::shared_ptr<const SessionHooks> make_session_hooks();
  void open_gate_while_there_is_room(bool has_room);  // the pool's mutex held
  void wait_for_signals();
  void begin_shutdown();
  void tell_every_session(void (HttpSession::*what)());
  void cut_off_the_sessions_left();
  void stop_when_sessions_are_done();
  void schedule_heartbeat();
  void write_heartbeat(const std::string& line) const;
  std::string stats_json() const;

  const WorkerSettings settings_;
  // One copy of each for every session: an idle connection should not carry its own.
  const std::shared_ptr<const SessionSettings> session_settings_;
  const std::shared_ptr<const SessionHooks> session_hooks_ = make_session_hooks();
  std::shared_ptr<const App> app_;
  ServerInfo info_;
  // One thread at a time runs it (the pool's leader), so Asio may keep the
  // handlers a handler queues in that thread's own queue, without a lock.
  net::io_context reactor_{1};
  net::executor_work_guard<net::io_context::executor_type> keep_running_{reactor_.get_executor()};
  ThreadPool pool_;
  AcceptGate gate_;
  net::signal_set signals_;
  net::steady_timer heartbeat_timer_, shutdown_timer_;
  ParkingLot parking_;
  net::posix::stream_descriptor parking_watch_;  // a copy of the lot's epoll descriptor
  net::steady_timer parking_timer_;
  bool parking_timer_armed_ = false;
  std::atomic<std::size_t> parked_{0};  // the lot's count, for /stats on a pool thread
  std::unordered_map<HttpSession*, std::weak_ptr<HttpSession>> sessions_;
  std::vector<int> listen_ports_;  // parallel to settings_.tls, to recognise an ssl:// socket
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<bool> stopping_{false};  // written by the reactor
};
// The worker's parts:2 ends here

// [[file:../notes/worker.org::*The worker's parts][The worker's parts:3]]
Worker::Worker(const WorkerSettings& settings, std::span<const int> listen_fds, App app)
    : settings_(settings),
      session_settings_(std::make_shared<const SessionSettings>(SessionSettings{
          settings.first_data_timeout, settings.persistent_timeout, settings.write_timeout,
          settings.max_keep_alive, settings.limits, settings.lowlevel_error_handler})),
      app_(std::make_shared<const App>(std::move(app))),
      pool_({settings.min_threads, std::max(settings.max_threads, 1), settings.thread_reap_interval},
            ReactorTurns{[this] { return reactor_.run_one() > 0; },
                         [this] { net::post(reactor_, [] {}); }},
            [this](bool has_room) { open_gate_while_there_is_room(has_room); }),
      gate_(listen_fds,
            [this](int fd) { net::post(reactor_, [this, fd] { adopt_connection(fd); }); }),
      signals_(reactor_, SIGTERM, SIGINT),
      heartbeat_timer_(reactor_),
      shutdown_timer_(reactor_),
      parking_watch_(reactor_, ::dup(parking_.watch_fd())),
      parking_timer_(reactor_) {
  info_.worker_index = settings.index;
  info_.environment = settings.environment;
  info_.stats_json = [this] { return stats_json(); };
  for (int fd : listen_fds) listen_ports_.push_back(local_port(fd));
}
// The worker's parts:3 ends here

// [[file:../notes/worker.org::*Running][Running:1]]
int Worker::run() {
  std::signal(SIGPIPE, SIG_IGN);  // sendfile to a vanished client must not kill us
  wait_for_signals();
  write_heartbeat("b " + std::to_string(settings_.index) + " " + std::to_string(::getpid()) + "\n");
  schedule_heartbeat();
  watch_parked_connections();
  pool_.run_reactor();  // returns once the reactor has stopped
  gate_.stop();
  pool_.stop();  // an app still running past shutdown_timeout is waited for here
  return 0;
}

void Worker::open_gate_while_there_is_room(bool has_room) {
  if (has_room) gate_.open();
  else gate_.close();
}
// Running:1 ends here

// [[file:../notes/worker.org::*Connections and the pool][Connections and the pool:1]]
void Worker::adopt_connection(int fd, int requests_served) {
  if (stopping_) {
    ::close(fd);  // accepted just before the gate closed; the client will retry elsewhere
    return;
  }
  auto tls = tls_for(fd);
  auto session = tls ? start_tls_session(reactor_, fd, std::move(tls), app_, &info_,
                                         session_settings_, session_hooks_)
                     : start_http_session(reactor_, fd, app_, &info_, session_settings_,
                                          session_hooks_, {}, requests_served);
  if (session) sessions_.emplace(session.get(), session);
}

std::shared_ptr<TlsContext> Worker::tls_for(int fd) const {
  if (std::none_of(settings_.tls.begin(), settings_.tls.end(), [](const auto& tls) { return tls; }))
    return nullptr;  // no ssl:// listener: spare every connection a getsockname
  const int port = local_port(fd);
  for (std::size_t i = 0; i < listen_ports_.size() && i < settings_.tls.size(); ++i)
    if (listen_ports_[i] == port && port > 0) return settings_.tls[i];
  return nullptr;
}

std::shared_ptr<const SessionHooks> Worker::make_session_hooks() {
  auto hooks = std::make_shared<SessionHooks>();
  hooks->run_on_pool = [this](std::function<void()> job) { pool_.submit(std::move(job)); };
  hooks->request_received = [this] { ++requests_; };
  hooks->closed = [this](HttpSession* session) {
    sessions_.erase(session);
    stop_when_sessions_are_done();
  };
  hooks->park = [this](int fd, int requests_served, ParkingLot::Clock::time_point until) {
    park_connection(fd, requests_served, until);
  };
  return hooks;
}
// Connections and the pool:1 ends here

// [[file:../notes/worker.org::*Parked connections][Parked connections:1]]
void Worker::park_connection(int fd, int requests_served, ParkingLot::Clock::time_point until) {
  if (stopping_) {
    ::close(fd);  // idle, and the worker is stopping: nobody is owed an answer
    return;
  }
  if (parking_.park({fd, requests_served}, until)) expire_parked_connections_in_time();
  parked_ = parking_.stats().parked;
}

void Worker::watch_parked_connections() {
  parking_watch_.async_wait(net::posix::stream_descriptor::wait_read,
                            [this](const boost::system::error_code& ec) {
                              if (ec) return;  // cancelled: stopping
                              for (const auto& parked : parking_.take_ready())
                                adopt_connection(parked.fd, parked.requests_served);
                              parked_ = parking_.stats().parked;
                              watch_parked_connections();
                            });
}

void Worker::expire_parked_connections_in_time() {
  const auto next = parking_.next_deadline();
  if (!next || (parking_timer_armed_ && parking_timer_.expiry() <= *next)) return;
  parking_timer_armed_ = true;
  parking_timer_.expires_at(*next);  // a wait for a later deadline ends, cancelled
  parking_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: re-armed earlier, or stopping
    parking_timer_armed_ = false;
    parking_.expire(ParkingLot::Clock::now());
    parked_ = parking_.stats().parked;
    expire_parked_connections_in_time();
  });
}
// Parked connections:1 ends here

// [[file:../notes/worker.org::*Stopping gracefully][Stopping gracefully:1]]
namespace {
std::atomic<int> stop_signal{0};  // written on the reactor, read after run_worker returns
}  // namespace

void Worker::wait_for_signals() {
  if (settings_.stop_on_hangup) signals_.add(SIGHUP);
  signals_.async_wait([this](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    stop_signal = signal;
    begin_shutdown();
  });
}

void Worker::begin_shutdown() {
  if (stopping_) return;
  stopping_ = true;
  pool_.stop_capacity_reports();  // no thread opens the gate after this
  gate_.stop();
  parking_.close_all();  // idle: nobody is owed an answer
  parked_ = 0;
  parking_watch_.cancel();
  parking_timer_.cancel();
  heartbeat_timer_.cancel();
  tell_every_session(&HttpSession::shut_down);
  shutdown_timer_.expires_after(settings_.shutdown_timeout);
  shutdown_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: every session finished in time
    cut_off_the_sessions_left();
  });
  stop_when_sessions_are_done();
}
// Stopping gracefully:1 ends here

// [[file:../notes/worker.org::*Stopping gracefully][Stopping gracefully:2]]
void Worker::cut_off_the_sessions_left() {
  std::cerr << "caracal: worker " << settings_.index << ": shutdown timeout, "
            << sessions_.size() << " connections cut off\n";
  tell_every_session(&HttpSession::cut_off);
  shutdown_timer_.expires_after(kCutOffGrace);
  shutdown_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) reactor_.stop();
  });
}
// Stopping gracefully:2 ends here

// [[file:../notes/worker.org::*Stopping gracefully][Stopping gracefully:3]]
void Worker::tell_every_session(void (HttpSession::*what)()) {
  std::vector<std::weak_ptr<HttpSession>> sessions;
  for (const auto& [key, session] : sessions_) sessions.push_back(session);
  for (const auto& weak : sessions)
    if (auto session = weak.lock()) (session.get()->*what)();
}
// Stopping gracefully:3 ends here

// [[file:../notes/worker.org::*Stopping gracefully][Stopping gracefully:4]]
void Worker::stop_when_sessions_are_done() {
  if (!stopping_ || !sessions_.empty()) return;
  shutdown_timer_.cancel();
  signals_.cancel();
  reactor_.stop();
}
// Stopping gracefully:4 ends here

// [[file:../notes/worker.org::*Heartbeats and counters][Heartbeats and counters:1]]
void Worker::schedule_heartbeat() {
  if (settings_.heartbeat_fd < 0) return;
  heartbeat_timer_.expires_after(settings_.heartbeat_interval);
  heartbeat_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    write_heartbeat("p " + std::to_string(settings_.index) + " " +
                    std::to_string(::getpid()) + " " + stats_json() + "\n");
    schedule_heartbeat();
  });
}

void Worker::write_heartbeat(const std::string& line) const {
  if (settings_.heartbeat_fd < 0) return;
  // One write per line keeps lines whole on a pipe shared by workers; a master
  // that is gone is not our problem to report (SIGPIPE is ignored).
  [[maybe_unused]] auto written = ::write(settings_.heartbeat_fd, line.data(), line.size());
}
// Heartbeats and counters:1 ends here

// [[file:../notes/worker.org::*Heartbeats and counters][Heartbeats and counters:2]]
std::string Worker::stats_json() const {
  const auto pool = pool_.stats();
  const auto gate = gate_.stats();
  const auto parked = parked_.load();  // the lot itself belongs to the reactor
  auto field = [](const char* name, auto value) {
    return std::string("\"") + name + "\":" + std::to_string(value);
  };
  return "{" + field("pid", ::getpid()) + "," + field("index", settings_.index) + "," +
         field("requests", requests_.load()) + "," + field("accepts", gate.accepts) + "," +
         field("empty_wakeups", gate.empty_wakeups) + "," + field("busy_threads", pool.busy) +
         "," + field("pool_capacity", pool.capacity) + "," + field("running", pool.running) +
         "," + field("backlog", pool.backlog) + "," + field("takeovers", pool.takeovers) + "," +
         field("parked", parked) + "}";
}

}  // namespace detail
// Heartbeats and counters:2 ends here

// [[file:../notes/worker.org::*Two malloc arenas][Two malloc arenas:1]]
namespace {
void limit_malloc_arenas() {
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) ::mallopt(M_ARENA_MAX, 2);
}
}  // namespace

int run_worker(const WorkerSettings& settings, std::span<const int> listen_fds, App app) {
  limit_malloc_arenas();  // before the pool starts its threads
  detail::stop_signal = 0;
  detail::Worker worker(settings, listen_fds, std::move(app));
  return worker.run();
}

int last_stop_signal() { return detail::stop_signal; }

}  // namespace caracal
// Two malloc arenas:1 ends here

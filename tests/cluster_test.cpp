// tests/cluster_test.cpp: tangled from notes/cluster.org; edit the note, not this file.

// [[file:../notes/cluster.org::*The worker slot][The worker slot:3]]
#include "cluster.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

using namespace std::chrono_literals;
using caracal::Clock;
using caracal::WorkerHandle;

namespace {
// A fixed instant so the predicates are tested without sleeping.
const Clock::time_point t0 = Clock::time_point(std::chrono::hours(1));
}  // namespace

// A worker that never says it booted must be caught, but only after its grace.
TEST_CASE("a slot has missed its boot only after the boot timeout") {
  WorkerHandle slot;
  slot.pid = 42;
  slot.started_at = t0;
  CHECK_FALSE(slot.has_missed_its_boot(t0 + 59s, 60s));
  CHECK(slot.has_missed_its_boot(t0 + 61s, 60s));
  slot.booted = true;
  CHECK_FALSE(slot.has_missed_its_boot(t0 + 61s, 60s));
}

// Silence is measured from the last check-in, not from the start.
TEST_CASE("a booted slot has stopped checking in after worker_timeout of silence") {
  WorkerHandle slot;
  slot.pid = 42;
  slot.booted = true;
  slot.started_at = t0;
  slot.last_check_in = t0 + 100s;
  CHECK_FALSE(slot.has_stopped_checking_in(t0 + 150s, 60s));
  CHECK(slot.has_stopped_checking_in(t0 + 161s, 60s));
}

// The shutdown grace starts when SIGTERM was sent, and empty slots never overrun.
TEST_CASE("a slot overruns its shutdown only after the grace since SIGTERM") {
  WorkerHandle slot;
  CHECK_FALSE(slot.has_overrun_its_shutdown(t0, 30s));
  slot.pid = 42;
  slot.term_sent_at = t0;
  CHECK_FALSE(slot.has_overrun_its_shutdown(t0 + 29s, 30s));
  CHECK(slot.has_overrun_its_shutdown(t0 + 31s, 30s));
}
// The worker slot:3 ends here

// [[file:../notes/cluster.org::*Process titles][Process titles:4]]
// The title must never overrun the argv area, which other data may follow.
TEST_CASE("a process title is truncated to the area and padded with NULs") {
  char area[12];
  std::memset(area, 'x', sizeof area);
  caracal::detail::write_title(area, sizeof area, "caracal: cluster master");
  CHECK(std::string(area) == "caracal: cl");
  caracal::detail::write_title(area, sizeof area, "w 1");
  CHECK(std::string(area) == "w 1");
  CHECK(area[11] == '\0');
}
// Process titles:4 ends here

// [[file:../notes/cluster.org::*Tests with stub workers][Tests with stub workers:1]]
namespace {

// How a stub worker behaves, to provoke each of the master's policies.
enum class Stub { healthy, never_boots, goes_silent, ignores_sigterm, throws_an_int };

volatile sig_atomic_t stub_stop = 0;
extern "C" void stub_on_term(int) { stub_stop = 1; }

int run_stub(Stub kind, int index, int heartbeat_fd, int report_fd) {
  if (kind == Stub::ignores_sigterm) ::signal(SIGTERM, SIG_IGN);
  else ::signal(SIGTERM, stub_on_term);
  auto line = std::to_string(index) + " " + std::to_string(::getpid()) + "\n";
  [[maybe_unused]] auto r = ::write(report_fd, line.data(), line.size());
  if (kind == Stub::throws_an_int) throw 42;  // not a std::exception
  auto id = std::to_string(index) + " " + std::to_string(::getpid());
  std::string booted = "b " + id + "\n", ping = "p " + id + " {}\n";
  if (kind != Stub::never_boots) r = ::write(heartbeat_fd, booted.data(), booted.size());
  while (!stub_stop) {
    ::usleep(50'000);
    if (kind == Stub::healthy || kind == Stub::ignores_sigterm) r = ::write(heartbeat_fd, ping.data(), ping.size());
  }
  return 0;
}

// A cluster running in its own process, with the report pipe of its stub workers.
// The master leads a process group of its own, so that the destructor can kill
// whatever it leaves behind, stub workers included.
struct StubCluster {
  pid_t master = -1;
  pid_t group = -1;
  int report = -1;
  std::string buffered;

  StubCluster(int workers, Stub kind, std::chrono::milliseconds timeouts = 30s) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    std::cout.flush();
    master = ::fork();
    REQUIRE(master >= 0);
    if (master == 0) {
      ::setpgid(0, 0);
      // Like a fresh caracal process: default dispositions, not the test runner's handlers.
      for (int signal : {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2}) ::signal(signal, SIG_DFL);
      ::close(fds[0]);
      caracal::ClusterSettings settings;
      settings.workers = workers;
      settings.worker_timeout = settings.worker_boot_timeout = settings.worker_shutdown_timeout = timeouts;
      settings.log = [](const std::string&) {};
      int report_fd = fds[1];
      caracal::Cluster cluster(settings, [=](int index, int hb) { return run_stub(kind, index, hb, report_fd); });
      auto exit = cluster.run();
      if (exit.reraise_signal != 0) ::raise(exit.reraise_signal);
      ::_exit(exit.status);
    }
    ::setpgid(master, master);  // as in the child: whichever runs first makes the group
    group = master;
    ::close(fds[1]);
    report = fds[0];
  }

  ~StubCluster() {
    ::kill(-group, SIGKILL);  // the master and any stub it left, in one call
    if (master > 0) ::waitpid(master, nullptr, 0);
    ::close(report);
  }

  // The next "INDEX PID" a stub reported, or nullopt after a generous deadline.
  std::optional<std::pair<int, pid_t>> next_report(std::chrono::seconds deadline = 15s) {
    auto until = Clock::now() + deadline;
    while (buffered.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
      pollfd fd{report, POLLIN, 0};
      if (left <= 0 || ::poll(&fd, 1, static_cast<int>(left)) <= 0) return std::nullopt;
      char chunk[256];
      auto n = ::read(report, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffered.append(chunk, n);
    }
    std::istringstream line(buffered.substr(0, buffered.find('\n')));
    buffered.erase(0, buffered.find('\n') + 1);
    int index = 0;
    pid_t pid = 0;
    line >> index >> pid;
    return std::make_pair(index, pid);
  }

  // Waits for the master to exit; returns its wait status, or -1 after the deadline.
  int wait_for_exit(std::chrono::seconds deadline = 20s) {
    auto until = Clock::now() + deadline;
    int status = 0;
    while (Clock::now() < until) {
      if (::waitpid(master, &status, WNOHANG) == master) {
        master = -1;
        return status;
      }
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }
};

// Whether `pid` ignores `signal`, from the SigIgn mask in /proc/PID/status.
bool ignores_signal(pid_t pid, int signal) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.starts_with("SigIgn:")) return (std::stoull(line.substr(7), nullptr, 16) >> (signal - 1)) & 1;
  return false;
}

// Once the master is gone, its children have been reaped: the pid no longer exists.
bool process_is_gone(pid_t pid, std::chrono::seconds deadline = 10s) {
  auto until = Clock::now() + deadline;
  while (Clock::now() < until) {
    if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

}  // namespace

// The master must start one worker per slot, indexed from 0.
TEST_CASE("the master forks one worker per slot", "[cluster]") {
  StubCluster cluster(2, Stub::healthy);
  std::set<int> indexes;
  for (int i = 0; i < 2; ++i) {
    auto report = cluster.next_report();
    REQUIRE(report);
    indexes.insert(report->first);
  }
  CHECK(indexes == std::set<int>{0, 1});
}

// A crashed worker is replaced in the same slot; Puma's core promise.
TEST_CASE("a worker killed with SIGKILL is replaced in the same slot", "[cluster]") {
  StubCluster cluster(2, Stub::healthy);
  auto first = cluster.next_report();
  auto second = cluster.next_report();
  REQUIRE(first);
  REQUIRE(second);
  ::kill(first->second, SIGKILL);
  auto replacement = cluster.next_report();
  REQUIRE(replacement);
  CHECK(replacement->first == first->first);
  CHECK(replacement->second != first->second);
}

// SIGTERM stops every worker and ends the master like Puma: by SIGTERM (status 143).
TEST_CASE("SIGTERM stops the workers and the master exits by SIGTERM", "[cluster]") {
  StubCluster cluster(2, Stub::healthy);
  auto a = cluster.next_report();
  auto b = cluster.next_report();
  REQUIRE(a);
  REQUIRE(b);
  ::kill(cluster.master, SIGTERM);
  int status = cluster.wait_for_exit();
  REQUIRE(status != -1);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK(process_is_gone(a->second));
  CHECK(process_is_gone(b->second));
}

// Ctrl-C is an ordinary stop and ends with status 0.
TEST_CASE("SIGINT stops the workers and the master exits 0", "[cluster]") {
  StubCluster cluster(1, Stub::healthy);
  REQUIRE(cluster.next_report());
  ::kill(cluster.master, SIGINT);
  int status = cluster.wait_for_exit();
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// A worker stuck before boot must not hold its slot forever.
TEST_CASE("a worker that never boots is killed after worker_boot_timeout and replaced", "[cluster]") {
  StubCluster cluster(1, Stub::never_boots, 500ms);
  auto first = cluster.next_report();
  REQUIRE(first);
  auto replacement = cluster.next_report();
  REQUIRE(replacement);
  CHECK(replacement->second != first->second);
  CHECK(process_is_gone(first->second));
}

// A hung worker (no check-ins) is killed, not waited on.
TEST_CASE("a worker that stops checking in is killed after worker_timeout and replaced", "[cluster]") {
  StubCluster cluster(1, Stub::goes_silent, 500ms);
  auto first = cluster.next_report();
  REQUIRE(first);
  auto replacement = cluster.next_report();
  REQUIRE(replacement);
  CHECK(replacement->second != first->second);
}

// The grace period bounds a stop even when a worker ignores SIGTERM.
TEST_CASE("a worker that ignores SIGTERM is killed after worker_shutdown_timeout", "[cluster]") {
  StubCluster cluster(1, Stub::ignores_sigterm, 500ms);
  auto worker = cluster.next_report();
  REQUIRE(worker);
  ::kill(cluster.master, SIGINT);
  int status = cluster.wait_for_exit();
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(process_is_gone(worker->second));
}

// SIGUSR1's default action would end the master; until phased restarts exist it is ignored.
TEST_CASE("SIGUSR1 and SIGUSR2 leave the cluster running", "[cluster]") {
  StubCluster cluster(1, Stub::healthy);
  auto worker = cluster.next_report();
  REQUIRE(worker);
  ::kill(cluster.master, SIGUSR1);
  ::kill(cluster.master, SIGUSR2);
  ::kill(cluster.master, SIGINT);
  int status = cluster.wait_for_exit();
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// A terminal hangup reaches the workers too; only the master may decide what it means.
TEST_CASE("a worker ignores SIGHUP, leaving the decision to the master", "[cluster]") {
  StubCluster cluster(1, Stub::healthy);
  auto worker = cluster.next_report();
  REQUIRE(worker);
  CHECK(ignores_signal(worker->second, SIGHUP));
  CHECK_FALSE(ignores_signal(worker->second, SIGTERM));
}

// An exception of any type must end the child, never resume the master's loop in it.
TEST_CASE("a worker whose entry throws a non-standard exception exits and is replaced", "[cluster]") {
  StubCluster cluster(1, Stub::throws_an_int);
  auto first = cluster.next_report();
  REQUIRE(first);
  auto replacement = cluster.next_report();
  REQUIRE(replacement);
  CHECK(replacement->second != first->second);
  CHECK(process_is_gone(first->second));
}

// TTIN/TTOU resize a running cluster without a restart.
TEST_CASE("SIGTTIN adds a worker with the next index and SIGTTOU removes it", "[cluster]") {
  StubCluster cluster(2, Stub::healthy);
  REQUIRE(cluster.next_report());
  REQUIRE(cluster.next_report());
  ::kill(cluster.master, SIGTTIN);
  auto added = cluster.next_report();
  REQUIRE(added);
  CHECK(added->first == 2);
  ::kill(cluster.master, SIGTTOU);
  CHECK(process_is_gone(added->second));
}
// Tests with stub workers:1 ends here

// [[file:../notes/cluster.org::*Integration tests against the real binary][Integration tests against the real binary:1]]
namespace {

int free_port() {
  caracal::UniqueFd fd(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

caracal::UniqueFd connect_to(int port) {
  caracal::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) return {};
  timeval timeout{20, 0};  // a hang fails the test instead of blocking the suite
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Sends one request on `fd` and reads one response with a Content-Length body.
std::optional<std::string> request_on(int fd, const std::string& target, bool close = false) {
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
                        (close ? "Connection: close\r\n" : "") + "\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    return std::nullopt;
  std::string response;
  char chunk[4096];
  for (;;) {
    auto end = response.find("\r\n\r\n");
    if (end != std::string::npos) {
      auto cl = response.find("Content-Length: ");
      if (cl == std::string::npos) cl = response.find("content-length: ");
      std::size_t length = cl == std::string::npos ? 0 : std::stoul(response.substr(cl + 16));
      if (response.size() >= end + 4 + length) return response.substr(end + 4, length);
    }
    auto n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) return std::nullopt;
    response.append(chunk, n);
  }
}

std::optional<std::string> http_get(int port, const std::string& target) {
  auto fd = connect_to(port);
  if (!fd) return std::nullopt;
  return request_on(fd.get(), target, true);
}

// A caracal process started for one test, stopped by the destructor whatever happens.
struct Server {
  pid_t pid = -1;
  pid_t group = -1;  // the master's process group: it and every worker it forked
  int port = 0;
  std::string log_path;

  explicit Server(std::vector<std::string> args) {
    for (int attempt = 0; attempt < 5 && pid < 0; ++attempt) try_start(args);
    REQUIRE(pid > 0);
  }
  ~Server() {
    stop(SIGTERM);
    if (group > 0) ::kill(-group, SIGKILL);  // workers a dead master left behind
    ::unlink(log_path.c_str());
  }

  void try_start(const std::vector<std::string>& args) {
    const char* bin = std::getenv("CARACAL_BIN");
    REQUIRE(bin != nullptr);  // set by the Makefile to build/caracal
    port = free_port();
    log_path = "/tmp/caracal-cluster-test-" + std::to_string(::getpid()) + "-" + std::to_string(port) + ".log";
    std::vector<std::string> full{bin, "-b", "tcp://127.0.0.1:" + std::to_string(port)};
    full.insert(full.end(), args.begin(), args.end());
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::setpgid(0, 0);
      exec_with_log(full);
    }
    ::setpgid(child, child);  // as in the child: whichever runs first makes the group
    if (wait_until_serving(child)) pid = group = child;
    else ::unlink(log_path.c_str());
  }

  [[noreturn]] void exec_with_log(std::vector<std::string>& args) {
    int log = ::open(log_path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0600);
    ::dup2(log, 1);
    ::dup2(log, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }

  // True once the port answers; false (child reaped) if the child exited first.
  bool wait_until_serving(pid_t child) {
    auto until = Clock::now() + 20s;
    while (Clock::now() < until) {
      if (::waitpid(child, nullptr, WNOHANG) == child) return false;
      if (http_get(port, "/hello")) return true;
      std::this_thread::sleep_for(50ms);
    }
    ::kill(-child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    return false;
  }

  // Signals the server and waits for it; SIGKILL after a generous deadline.
  int stop(int signal) {
    if (pid < 0) return -1;
    ::kill(pid, signal);
    int status = -1;
    auto until = Clock::now() + 40s;
    while (::waitpid(pid, &status, WNOHANG) != pid) {
      if (Clock::now() > until) {
        ::kill(-pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
    pid = -1;
    return status;
  }
};

// One round of six concurrent clients. Each keeps a worker thread busy with a short
// sleep, then asks on the same connection which process holds it: a worker with
// spare threads accepts the next client, so busy workers push clients to the others.
std::set<std::string> pids_of_one_round(int port) {
  std::vector<std::optional<std::string>> answers(6);
  std::vector<std::thread> clients;
  for (auto& answer : answers)
    clients.emplace_back([&answer, port] {
      auto fd = connect_to(port);
      if (fd && request_on(fd.get(), "/sleep?ms=100")) answer = request_on(fd.get(), "/pid");
    });
  for (auto& client : clients) client.join();
  std::set<std::string> pids;
  for (auto& answer : answers)
    if (answer) pids.insert(*answer);
  return pids;
}

// Rounds of clients until `wanted` distinct pids answered or the deadline passed.
std::set<std::string> distinct_pids(int port, std::size_t wanted, std::chrono::seconds deadline = 20s) {
  std::set<std::string> pids;
  auto until = Clock::now() + deadline;
  while (pids.size() < wanted && Clock::now() < until) pids.merge(pids_of_one_round(port));
  return pids;
}

// Polls the worker's /stats until it reports `busy` busy threads; false after a
// generous deadline. The /stats request runs on a pool thread itself, so it counts.
bool busy_threads_reach(int port, int busy) {
  const std::string wanted = "\"busy_threads\":" + std::to_string(busy) + ",";
  auto until = Clock::now() + 20s;
  while (Clock::now() < until) {
    auto stats = http_get(port, "/stats");
    if (stats && stats->find(wanted) != std::string::npos) return true;
    std::this_thread::sleep_for(20ms);
  }
  return false;
}

pid_t parent_of(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto after_name = text.rfind(')');
  if (after_name == std::string::npos) return -1;
  std::istringstream fields(text.substr(after_name + 2));
  std::string state;
  pid_t parent = -1;
  fields >> state >> parent;
  return parent;
}

std::string command_line_of(pid_t pid) {
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline");
  std::string text((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  return text.substr(0, text.find('\0'));
}

}  // namespace

// Every worker takes connections from the shared socket; the master serves none.
TEST_CASE("concurrent clients are served by every worker", "[integration]") {
  Server server({"-w", "2", "-t", "1:2"});
  auto pids = distinct_pids(server.port, 2);
  REQUIRE(pids.size() == 2);
  for (const auto& pid : pids) CHECK(parent_of(pid) == server.pid);
}

// ps must tell the master from the workers.
TEST_CASE("the master and the workers show their role in the process title", "[integration]") {
  Server server({"-w", "2"});
  CHECK(command_line_of(server.pid) == "caracal: cluster master (tcp://127.0.0.1:" + std::to_string(server.port) + ")");
  auto pids = distinct_pids(server.port, 2);
  std::set<std::string> titles;
  for (const auto& pid : pids) titles.insert(command_line_of(std::stoi(pid)));
  CHECK(titles == std::set<std::string>{"caracal: cluster worker 0", "caracal: cluster worker 1"});
}

// A crashed worker is replaced while the other worker's connections carry on.
TEST_CASE("after kill -9 of a worker a new one serves and the other's connection is unaffected", "[integration]") {
  Server server({"-w", "2", "-t", "1:4"});
  auto pids = distinct_pids(server.port, 2);
  REQUIRE(pids.size() == 2);
  auto kept = connect_to(server.port);
  REQUIRE(kept);
  auto survivor = request_on(kept.get(), "/pid");
  REQUIRE(survivor);
  std::string victim = *pids.begin() == *survivor ? *pids.rbegin() : *pids.begin();
  ::kill(std::stoi(victim), SIGKILL);
  auto until = Clock::now() + 10s;
  std::optional<std::string> newcomer;
  while (!newcomer && Clock::now() < until)
    for (const auto& pid : pids_of_one_round(server.port))
      if (pid != *survivor && pid != victim) newcomer = pid;
  CHECK(newcomer);
  CHECK(request_on(kept.get(), "/pid") == survivor);
}
// Integration tests against the real binary:1 ends here

// [[file:../notes/cluster.org::*Integration tests against the real binary][Integration tests against the real binary:2]]
namespace {

// True when a thread of `pid` is blocked in nanosleep: the demo app's /sleep is running.
bool a_thread_is_sleeping(const std::string& pid) {
  std::error_code error;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + pid + "/task", error)) {
    std::ifstream syscall_file(task.path() / "syscall");
    long number = -1;
    if (syscall_file >> number && (number == SYS_clock_nanosleep || number == SYS_nanosleep)) return true;
  }
  return false;
}

bool becomes_true_within(std::chrono::seconds limit, const std::function<bool()>& condition) {
  auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

}  // namespace

// Puma's known weakness (#2078): a busy worker can win a connection an idle one could serve.
TEST_CASE("a worker busy with a slow request leaves every new connection to the idle worker", "[integration]") {
  Server server({"-w", "2", "-t", "1:1"});
  auto slow = connect_to(server.port);
  REQUIRE(slow);
  auto busy_pid = request_on(slow.get(), "/pid");
  REQUIRE(busy_pid);
  const std::string sleep = "GET /sleep?ms=5000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  REQUIRE(::send(slow.get(), sleep.data(), sleep.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(sleep.size()));
  REQUIRE(becomes_true_within(20s, [&] { return a_thread_is_sleeping(*busy_pid); }));

  std::map<std::string, int> answered_by;
  for (int i = 0; i < 100; ++i) answered_by[http_get(server.port, "/pid").value_or("no answer")] += 1;
  CHECK(answered_by.size() == 1);
  CHECK(answered_by.count(*busy_pid) == 0);
  CHECK(answered_by.count("no answer") == 0);

  char byte;
  CHECK(::recv(slow.get(), &byte, 1, MSG_DONTWAIT | MSG_PEEK) == -1);  // the slow response is still pending
}
// Integration tests against the real binary:2 ends here

// [[file:../notes/cluster.org::*Integration tests against the real binary][Integration tests against the real binary:3]]
// A graceful stop lets the request in flight finish, then the port is closed.
TEST_CASE("SIGTERM lets an in-flight request finish, then refuses connections and exits like Puma", "[integration]") {
  // One worker, so that /stats is answered by the worker that runs the slow request.
  Server server({"-w", "1"});
  // A connection the worker has already accepted and answered, so the slow request cannot
  // be left behind in the accept queue when the stop begins.
  auto connection = connect_to(server.port);
  REQUIRE(connection);
  REQUIRE(request_on(connection.get(), "/hello"));
  std::optional<std::string> slow;
  std::thread client([&] { slow = request_on(connection.get(), "/sleep?ms=2000", true); });
  // In flight: the slow request and the /stats request asking are both on pool threads.
  const bool in_flight = busy_threads_reach(server.port, 2);
  int status = server.stop(SIGTERM);
  client.join();
  CHECK(in_flight);
  CHECK(slow == std::optional<std::string>("slept 2000 ms\n"));
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  CHECK_FALSE(connect_to(server.port));
}

// TTIN grows a running cluster: a third worker appears and serves.
TEST_CASE("SIGTTIN adds a worker that serves requests", "[integration]") {
  Server server({"-w", "2"});
  REQUIRE(distinct_pids(server.port, 2).size() == 2);
  ::kill(server.pid, SIGTTIN);
  CHECK(distinct_pids(server.port, 3, 30s).size() == 3);
}

// Single mode has no master/worker split: the started process answers itself.
TEST_CASE("in single mode the started process serves requests itself", "[integration]") {
  Server server({"-w", "0"});
  CHECK(http_get(server.port, "/pid") == std::to_string(server.pid));
}

// A supervisor reads the same exit status whether workers is 0 or not, as with Puma.
TEST_CASE("in single mode SIGTERM ends the process by SIGTERM and SIGHUP with status 0", "[integration]") {
  Server by_term({"-w", "0"});
  int status = by_term.stop(SIGTERM);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGTERM);
  Server by_hangup({"-w", "0"});
  status = by_hangup.stop(SIGHUP);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// Supervisors find the master through the pidfile.
TEST_CASE("the pidfile holds the master's pid", "[integration]") {
  std::string path = "/tmp/caracal-pid-" + std::to_string(::getpid());
  Server server({"-w", "1", "--pidfile", path});
  std::ifstream pidfile(path);
  std::string pid;
  pidfile >> pid;
  CHECK(pid == std::to_string(server.pid));
}

// A bind failure is fatal and names the URI, with status 1 (not a usage error).
TEST_CASE("a port that is taken makes the binary exit 1 naming the URI", "[integration]") {
  caracal::UniqueFd taken(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(taken.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(taken.get(), 1) == 0);
  socklen_t length = sizeof address;
  ::getsockname(taken.get(), reinterpret_cast<sockaddr*>(&address), &length);
  std::string uri = "tcp://127.0.0.1:" + std::to_string(ntohs(address.sin_port));
  std::string log = "/tmp/caracal-bindfail-" + std::to_string(::getpid()) + ".log";
  REQUIRE(std::getenv("CARACAL_BIN") != nullptr);
  std::string command = std::string(std::getenv("CARACAL_BIN")) + " -b " + uri + " 2>" + log;
  int status = std::system(command.c_str());
  std::ifstream err(log);
  std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  ::unlink(log.c_str());
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(text == "caracal: " + uri + ": Address already in use\n");
}
// Integration tests against the real binary:3 ends here

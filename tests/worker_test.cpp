// tests/worker_test.cpp: tangled from notes/worker.org; edit the note, not this file.

// [[file:../notes/worker.org::*Tests][Tests:2]]
#include <catch2/catch.hpp>

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "http_test_client.hpp"
#include "worker.hpp"

using namespace std::chrono_literals;
using test_client::Reader;
using test_client::send_all;

namespace {
constexpr auto kPatience = 10s;  // upper bound for anything that should happen

// A listening socket on 127.0.0.1 and a free port.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
  Listener() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(fd, 4096) == 0);
    socklen_t length = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
  }
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  ~Listener() { close(); }
};
// Tests:2 ends here

// [[file:../notes/worker.org::*Tests][Tests:3]]
// One forked worker; SIGKILLed and reaped on destruction unless already reaped.
class WorkerProcess {
 public:
  WorkerProcess(caracal::WorkerSettings settings, const std::vector<int>& listen_fds,
                caracal::App app) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    settings.heartbeat_fd = fds[1];
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) run_child(settings, listen_fds, std::move(app));
    ::close(fds[1]);
    heartbeats_ = fds[0];
  }
  ~WorkerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(heartbeats_);
  }
// Tests:3 ends here

// [[file:../notes/worker.org::*Tests][Tests:4]]
// The next heartbeat line, or "" after kPatience.
  std::string read_heartbeat() {
    std::string line;
    char c;
    while (true) {
      pollfd ready{heartbeats_, POLLIN, 0};
      if (::poll(&ready, 1, static_cast<int>(std::chrono::milliseconds(kPatience).count())) <= 0)
        return "";
      if (::read(heartbeats_, &c, 1) != 1) return "";
      if (c == '\n') return line;
      line += c;
    }
  }

  // Discards every heartbeat line already written.
  void drain_heartbeats() {
    char bytes[4096];
    pollfd ready{heartbeats_, POLLIN, 0};
    while (::poll(&ready, 1, 0) == 1 && ::read(heartbeats_, bytes, sizeof bytes) > 0) {}
  }

  // SIGTERM, then the exit status once it exits (-1 if it had to be killed).
  int terminate_and_wait() {
    ::kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) return -1;  // the destructor kills it
      std::this_thread::sleep_for(10ms);
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  [[noreturn]] static void run_child(const caracal::WorkerSettings& settings,
                                     const std::vector<int>& listen_fds, caracal::App app) {
    int status = 3;
    try {
      status = caracal::run_worker(settings, listen_fds, std::move(app));
    } catch (...) {
    }
    ::_exit(status);
  }

  pid_t pid_ = -1;
  int heartbeats_ = -1;
};
// Tests:4 ends here

// [[file:../notes/worker.org::*Tests][Tests:5]]
std::string get(const std::string& target) {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n\r\n";
}

// One request on a fresh connection; nullopt if anything went wrong.
std::optional<test_client::Reply> fetch(std::uint16_t port, const std::string& target) {
  const int fd = test_client::connect_to(port);
  if (fd < 0) return std::nullopt;
  Reader reader(fd);
  auto reply = send_all(fd, get(target)) ? reader.read_reply() : std::nullopt;
  ::close(fd);
  return reply;
}

caracal::Response hello(caracal::Request&) { return caracal::text_response(200, "Hello, world!"); }

caracal::WorkerSettings test_settings(int max_threads) {
  caracal::WorkerSettings settings;
  settings.max_threads = max_threads;
  settings.heartbeat_interval = 100ms;
  settings.shutdown_timeout = 10s;
  return settings;
}
}  // namespace
// Tests:5 ends here

// [[file:../notes/worker.org::*Concurrency][Concurrency:1]]
// A worker with N threads must serve N slow clients at once, not one after another.
TEST_CASE("several concurrent clients are served by several threads at once") {
  Listener listener;
  std::atomic<int> inside{0};
  auto meet = [&inside](caracal::Request&) {
    ++inside;
    const auto deadline = std::chrono::steady_clock::now() + kPatience;
    while (inside.load() < 4 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    return caracal::text_response(200, inside.load() >= 4 ? "together" : "alone");
  };
  WorkerProcess worker(test_settings(4), {listener.fd}, meet);
  listener.close();
  REQUIRE(worker.read_heartbeat().rfind("b 0 ", 0) == 0);
  std::vector<std::string> bodies(4);
  std::vector<std::thread> clients;
  for (auto& body : bodies)
    clients.emplace_back([&body, port = listener.port] {
      if (auto reply = fetch(port, "/")) body = reply->body;
    });
  for (auto& client : clients) client.join();
  for (const auto& body : bodies) CHECK(body == "together");
}

// The heartbeat is the master's only view of a worker; its counters must add up.
TEST_CASE("heartbeat lines carry the worker's counters") {
  Listener listener;
  WorkerProcess worker(test_settings(2), {listener.fd}, hello);
  const std::uint16_t port = listener.port;
  listener.close();
  REQUIRE(worker.read_heartbeat().rfind("b 0 ", 0) == 0);
  for (int i = 0; i < 3; ++i) REQUIRE(fetch(port, "/"));
  std::string line;
  for (int i = 0; i < 100 && line.find("\"requests\":3,") == std::string::npos; ++i)
    line = worker.read_heartbeat();
  CHECK(line.rfind("p 0 ", 0) == 0);
  CHECK(line.find("\"accepts\":3,") != std::string::npos);
  CHECK(line.find("\"empty_wakeups\":0,") != std::string::npos);
  CHECK(line.find("\"pool_capacity\":2,") != std::string::npos);
}
// Concurrency:1 ends here

// [[file:../notes/worker.org::*Idle connections cost no thread][Idle connections cost no thread:1]]
// Puma's reactor exists so idle keep-alive clients cannot starve new ones of threads.
TEST_CASE("a thousand idle keep-alive connections do not stop a new client being served") {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;  // 1,000 sockets on each side need more than 1,024 fds
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &limit) == 0);
  REQUIRE(limit.rlim_cur > 2200);
  Listener listener;
  WorkerProcess worker(test_settings(2), {listener.fd}, hello);
  const std::uint16_t port = listener.port;
  listener.close();
  REQUIRE(worker.read_heartbeat().rfind("b 0 ", 0) == 0);
  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    const int fd = test_client::connect_to(port);
    if (fd < 0) break;
    idle.push_back(fd);
    Reader reader(fd);
    if (!send_all(fd, get("/")) || !reader.read_reply()) break;  // now idle, kept alive
  }
  CHECK(idle.size() == 1000);
  auto reply = fetch(port, "/");
  for (int fd : idle) ::close(fd);
  REQUIRE(reply);
  CHECK(reply->body == "Hello, world!");
}
// Idle connections cost no thread:1 ends here

// [[file:../notes/worker.org::*Graceful stop][Graceful stop:1]]
// A deploy must not cut off requests that are already being served.
TEST_CASE("SIGTERM lets an in-flight request finish, then the worker exits 0") {
  int started[2];
  REQUIRE(::pipe(started) == 0);
  auto slow = [started](caracal::Request&) {
    [[maybe_unused]] auto written = ::write(started[1], "x", 1);
    std::this_thread::sleep_for(2s);
    return caracal::text_response(200, "slept 2000 ms\n");
  };
  Listener listener;
  WorkerProcess worker(test_settings(2), {listener.fd}, slow);
  const std::uint16_t port = listener.port;
  listener.close();
  ::close(started[1]);
  REQUIRE(worker.read_heartbeat().rfind("b 0 ", 0) == 0);
  const int idle = test_client::connect_to(port);
  const int busy = test_client::connect_to(port);
  REQUIRE(idle >= 0);
  REQUIRE(busy >= 0);
  REQUIRE(send_all(busy, get("/slow")));
  char byte;
  pollfd ready{started[0], POLLIN, 0};
  REQUIRE(::poll(&ready, 1, 10000) == 1);
  REQUIRE(::read(started[0], &byte, 1) == 1);
  CHECK(worker.terminate_and_wait() == 0);
  Reader busy_reader(busy);
  auto reply = busy_reader.read_reply();
  ::close(busy);
  REQUIRE(reply);
  CHECK(reply->body == "slept 2000 ms\n");
  CHECK(reply->headers["connection"] == "close");
  Reader idle_reader(idle);
  CHECK(idle_reader.at_eof());
  ::close(idle);
  CHECK(test_client::connect_to(port) < 0);
  ::close(started[0]);
}
// Graceful stop:1 ends here

// [[file:../notes/worker.org::*Parked connections][Parked connections:1]]
namespace {
// Reads heartbeats until one says exactly `parked` connections are parked.
bool heartbeat_says_parked(WorkerProcess& worker, int parked) {
  const std::string wanted = "\"parked\":" + std::to_string(parked) + "}";
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (std::chrono::steady_clock::now() < deadline) {
    const auto line = worker.read_heartbeat();
    if (line.empty()) return false;
    if (line.find(wanted) != std::string::npos) return true;
  }
  return false;
}

// A worker on a listener of its own, past its boot heartbeat.
struct BootedWorker {
  explicit BootedWorker(const caracal::WorkerSettings& settings)
      : process(settings, {listener.fd}, hello), port(listener.port) {
    listener.close();
    REQUIRE(process.read_heartbeat().rfind("b 0 ", 0) == 0);
  }
  Listener listener;
  WorkerProcess process;
  std::uint16_t port;
};

// A client connection that has had one answer and is now idle.
struct IdleClient {
  explicit IdleClient(std::uint16_t port) : fd(test_client::connect_to(port)), reader(fd) {
    REQUIRE(fd >= 0);
    REQUIRE(send_all(fd, get("/")));
    REQUIRE(reader.read_reply());
  }
  ~IdleClient() { ::close(fd); }
  int fd;
  Reader reader;
};
}  // namespace

TEST_CASE("a parked connection answers its next request and max_keep_alive counts across parks") {
  auto settings = test_settings(2);
  settings.max_keep_alive = 3;
  BootedWorker worker(settings);
  IdleClient client(worker.port);  // request 1
  CHECK(heartbeat_says_parked(worker.process, 1));
  for (int request = 2; request <= 3; ++request) {
    REQUIRE(send_all(client.fd, get("/")));
    auto reply = client.reader.read_reply();
    REQUIRE(reply);
    CHECK(reply->body == "Hello, world!");
    CHECK(reply->has("connection") == (request == 3));  // the third is the last: close
    if (request < 3) CHECK(heartbeat_says_parked(worker.process, 1));
  }
  CHECK(client.reader.at_eof());
}
// Parked connections:1 ends here

// [[file:../notes/worker.org::*Parked connections][Parked connections:2]]
TEST_CASE("a parked connection is closed at the persistent timeout") {
  auto settings = test_settings(2);
  settings.persistent_timeout = 400ms;
  BootedWorker worker(settings);
  IdleClient client(worker.port);
  CHECK(heartbeat_says_parked(worker.process, 1));
  CHECK(client.reader.at_eof());
  CHECK(heartbeat_says_parked(worker.process, 0));
}

TEST_CASE("SIGTERM closes parked connections and the worker exits at once") {
  auto settings = test_settings(2);
  settings.shutdown_timeout = 600s;  // a worker that waited for the parked one would not exit
  BootedWorker worker(settings);
  IdleClient client(worker.port);
  REQUIRE(heartbeat_says_parked(worker.process, 1));
  CHECK(worker.process.terminate_and_wait() == 0);  // within kPatience, far below shutdown_timeout
  CHECK(client.reader.at_eof());
}
// Parked connections:2 ends here

// [[file:../notes/worker.org::*Wake-one between processes][Wake-one between processes:1]]
// Several idle workers on one socket must not all wake for each connection.
TEST_CASE("each connection to several idle worker processes wakes one of them, not all") {
  Listener listener;
  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (int i = 0; i < 3; ++i) {
    auto settings = test_settings(2);
    settings.index = i;
    workers.push_back(std::make_unique<WorkerProcess>(settings, std::vector<int>{listener.fd}, hello));
  }
  const std::uint16_t port = listener.port;
  listener.close();
  for (auto& worker : workers) REQUIRE(worker->read_heartbeat().rfind("b ", 0) == 0);
  constexpr int kConnections = 30;
  for (int i = 0; i < kConnections; ++i) REQUIRE(fetch(port, "/"));
  std::uint64_t accepts = 0, empty = 0;
  auto number = [](const std::string& line, const std::string& name) {
    const auto at = line.find("\"" + name + "\":");
    return at == std::string::npos ? 0ull : std::stoull(line.substr(at + name.size() + 3));
  };
  for (auto& worker : workers) {
    worker->drain_heartbeats();
    const std::string line = worker->read_heartbeat();
    accepts += number(line, "accepts");
    empty += number(line, "empty_wakeups");
  }
  INFO("empty wakeups: " << empty);
  CHECK(accepts == kConnections);
  // A herd would cost two empty wakeups per connection here (three workers).
  CHECK(empty < kConnections / 3);
}
// Wake-one between processes:1 ends here

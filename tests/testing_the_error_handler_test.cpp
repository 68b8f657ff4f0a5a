// tests/testing_the_error_handler_test.cpp: tangled from notes/testing-the-error-handler.org; edit the note, not this file.

// [[file:../notes/testing-the-error-handler.org::*Two kinds of server][Two kinds of server:2]]
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "app.hpp"
#include "http_session.hpp"
#include "http_test_client.hpp"
#include "worker.hpp"

using namespace std::chrono_literals;

namespace {
constexpr int kPatienceMs = 10000;  // upper bound for anything that should happen

// A fresh temporary directory holding cert.pem and key.pem, made once per run.
// Removed, with the server logs in it, when the test program exits.
struct TemporaryDirectory {
  std::string path;
  ~TemporaryDirectory() { std::filesystem::remove_all(path); }
};

const std::string& certificate_dir() {
  static const TemporaryDirectory dir = [] {
    char pattern[] = "/tmp/caracal-tls-XXXXXX";
    REQUIRE(::mkdtemp(pattern) != nullptr);
    const std::string made = pattern;
    const std::string command = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
                                " -keyout " + made + "/key.pem -out " + made + "/cert.pem -days 2"
                                " -subj /CN=localhost > /dev/null 2>&1";
    REQUIRE(std::system(command.c_str()) == 0);
    return TemporaryDirectory{made};
  }();
  return dir.path;
}
}  // namespace
// Two kinds of server:2 ends here

// [[file:../notes/testing-the-error-handler.org::*A client that speaks TCP or TLS][A client that speaks TCP or TLS:1]]
namespace {
enum class Transport { tcp, tls };
const char* name_of(Transport transport) { return transport == Transport::tls ? "over TLS" : "over TCP"; }

class Wire {
 public:
  Wire(std::uint16_t port, Transport transport) : fd_(test_client::connect_to(port)) {
    ::signal(SIGPIPE, SIG_IGN);  // SSL_write to a closed socket must fail, not kill the tests
    REQUIRE(fd_ >= 0);
    if (transport == Transport::tls) start_tls();
  }
  ~Wire() {
    if (ssl_) SSL_free(ssl_);
    if (context_) SSL_CTX_free(context_);
    ::close(fd_);
  }
  Wire(const Wire&) = delete;
  Wire& operator=(const Wire&) = delete;

  bool send(std::string_view bytes) {
    if (!ssl_) return test_client::send_all(fd_, bytes);
    return bytes.empty() || SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) > 0;
  }
// A client that speaks TCP or TLS:1 ends here

// [[file:../notes/testing-the-error-handler.org::*A client that speaks TCP or TLS][A client that speaks TCP or TLS:2]]
// Everything until the server closes or the receive timeout passes; `closed` says which.
std::string read_to_end(bool& closed) {
  char bytes[16384];
  int got;
  while ((got = receive(bytes, sizeof bytes)) > 0) buffer_.append(bytes, static_cast<std::size_t>(got));
  closed = got == 0;
  return std::exchange(buffer_, {});
}

// One reply whose body has a Content-Length (or none), for keep-alive checks.
std::optional<std::string> read_reply() {
  std::size_t end;
  while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  const std::size_t whole = end + 4 + content_length(buffer_.substr(0, end));
  while (buffer_.size() < whole)
    if (!fill()) return std::nullopt;
  std::string reply = buffer_.substr(0, whole);
  buffer_.erase(0, whole);
  return reply;
}
// A client that speaks TCP or TLS:2 ends here

// [[file:../notes/testing-the-error-handler.org::*A client that speaks TCP or TLS][A client that speaks TCP or TLS:3]]
private:
  void start_tls() {
    context_ = SSL_CTX_new(TLS_client_method());
    ssl_ = SSL_new(context_);
    SSL_set_fd(ssl_, fd_);
    REQUIRE(SSL_connect(ssl_) == 1);
  }

  // > 0: bytes; 0: the server closed (FIN, reset, close_notify); -1: the timeout passed.
  int receive(char* out, int size) {
    if (!ssl_) {
      const ssize_t got = ::recv(fd_, out, static_cast<std::size_t>(size), 0);
      if (got > 0) return static_cast<int>(got);
      return got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -1 : 0;
    }
    const int got = SSL_read(ssl_, out, size);
    if (got > 0) return got;
    const int error = SSL_get_error(ssl_, got);
    const bool timed_out = error == SSL_ERROR_WANT_READ ||
                           (error == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK));
    return timed_out ? -1 : 0;
  }

  bool fill() {
    char bytes[16384];
    const int got = receive(bytes, sizeof bytes);
    if (got > 0) buffer_.append(bytes, static_cast<std::size_t>(got));
    return got > 0;
  }

  static std::size_t content_length(std::string head) {
    for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto at = head.find("\r\ncontent-length: ");
    return at == std::string::npos ? 0 : std::stoul(head.substr(at + 18));
  }

  int fd_;
  SSL_CTX* context_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string buffer_;
};
// A client that speaks TCP or TLS:3 ends here

// [[file:../notes/testing-the-error-handler.org::*A client that speaks TCP or TLS][A client that speaks TCP or TLS:4]]
struct Answer {
  std::string text;
  bool closed = false;
  std::string status_line() const { return text.substr(0, text.find("\r\n")); }
  std::string body() const {
    const auto end = text.find("\r\n\r\n");
    return end == std::string::npos ? "" : text.substr(end + 4);
  }
};

// Sends `request` on a new connection and reads until the server closes it.
Answer exchange(std::uint16_t port, Transport transport, std::string_view request) {
  Wire wire(port, transport);
  REQUIRE(wire.send(request));
  Answer answer;
  answer.text = wire.read_to_end(answer.closed);
  return answer;
}

// A port that was free a moment ago. The server binds it itself, so it cannot be handed
// over and another process may take it first: whoever starts a server on it retries.
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return ntohs(address.sin_port);
}
}  // namespace
// A client that speaks TCP or TLS:4 ends here

// [[file:../notes/testing-the-error-handler.org::*The real binary, with small limits][The real binary, with small limits:1]]
namespace {
constexpr std::string_view kStrictConfig = R"(workers 1
threads 1, 4
environment "production"
first_data_timeout 1
max_request_line_length 1024
max_header_size 4096
max_header_fields 20
http_content_length_limit 1000
)";

// The pid of the worker that answers GET /pid on `port` (the demo app's route).
std::string worker_pid(std::uint16_t port) {
  Wire wire(port, Transport::tcp);
  REQUIRE(wire.send("GET /pid HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"));
  auto reply = wire.read_reply();
  REQUIRE(reply);
  REQUIRE(reply->rfind("HTTP/1.1 200 ", 0) == 0);
  return reply->substr(reply->find("\r\n\r\n") + 4);
}
// The real binary, with small limits:1 ends here

// [[file:../notes/testing-the-error-handler.org::*The real binary, with small limits][The real binary, with small limits:2]]
// Stops and reaps the child it holds when it goes away, whatever the owner was doing.
struct ChildGuard {
  pid_t pid = -1;
  int first_signal = SIGKILL;  // SIGTERM for a master, which then stops its workers
  ChildGuard() = default;
  explicit ChildGuard(int signal) : first_signal(signal) {}
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;
  ~ChildGuard() { stop(); }

  void stop() {
    if (pid <= 0) return;
    ::kill(pid, first_signal);
    bool reaped = false;
    for (int i = 0; i < kPatienceMs / 10 && !reaped; ++i) {
      reaped = ::waitpid(pid, nullptr, WNOHANG) == pid;
      if (!reaped) std::this_thread::sleep_for(10ms);
    }
    if (!reaped && ::kill(pid, SIGKILL) == 0) ::waitpid(pid, nullptr, 0);
    pid = -1;
  }
};

// Starts the binary (args[0]) with its standard output and error in `log_path`.
pid_t spawn_binary(const std::vector<std::string>& args, const std::string& log_path) {
  std::fflush(nullptr);  // the child must not flush the parent's buffered output again
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid > 0) return pid;
  const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::dup2(log, 1);
  ::dup2(log, 2);
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(127);
}

class StrictServer {
 public:
  std::uint16_t tcp_port = 0, tls_port = 0;
  std::string first_worker_pid;

  StrictServer() {
    // Another process may take a free_port() before the binary binds it; the binary then exits.
    for (int attempt = 0; attempt < 5 && child_.pid < 0; ++attempt) try_start();
    REQUIRE(child_.pid > 0);
    first_worker_pid = worker_pid(tcp_port);  // waits in the backlog until the worker is up
  }

 private:
  ChildGuard child_{SIGTERM};

  void try_start() {
    const char* binary = std::getenv("CARACAL_BIN");
    REQUIRE(binary != nullptr);
    const std::string dir = certificate_dir();
    std::ofstream(dir + "/strict.rb") << kStrictConfig;
    tcp_port = free_port();
    tls_port = free_port();
    const std::vector<std::string> args = {
        binary, "-C", dir + "/strict.rb", "-b", "tcp://127.0.0.1:" + std::to_string(tcp_port),
        "-b", "ssl://127.0.0.1:" + std::to_string(tls_port) + "?cert=" + dir + "/cert.pem&key=" + dir + "/key.pem"};
    child_.pid = spawn_binary(args, dir + "/strict.log");
    auto accepts = [](std::uint16_t port) {
      const int probe = test_client::connect_to(port);
      if (probe >= 0) ::close(probe);
      return probe >= 0;
    };
    for (int i = 0; i < kPatienceMs / 10; ++i) {
      if (::waitpid(child_.pid, nullptr, WNOHANG) == child_.pid) {
        child_.pid = -1;  // exited: a port was taken
        return;
      }
      if (accepts(tcp_port) && accepts(tls_port)) return;
      std::this_thread::sleep_for(10ms);
    }
  }
};
// The real binary, with small limits:2 ends here

// [[file:../notes/testing-the-error-handler.org::*The real binary, with small limits][The real binary, with small limits:4]]
StrictServer& strict_server() {
  certificate_dir();  // made first, so the directory outlives the server at exit
  static bool tried = false;
  static std::unique_ptr<StrictServer> server;
  if (!server) {
    if (tried) FAIL("the strict server did not start; see the first test that used it");
    tried = true;
    server = std::make_unique<StrictServer>();
  }
  return *server;
}

void expect_refusal(std::string_view request, std::string_view status_line) {
  auto& server = strict_server();
  for (auto transport : {Transport::tcp, Transport::tls}) {
    INFO(name_of(transport));
    const auto answer = exchange(transport == Transport::tls ? server.tls_port : server.tcp_port,
                                 transport, request);
    CHECK(answer.status_line() == status_line);
    CHECK(answer.closed);
  }
  CHECK(worker_pid(server.tcp_port) == server.first_worker_pid);
}

// How many times `line` appears in the server's log (the worker writes it before it answers).
int lines_in_log(const std::string& line) {
  std::ifstream log(certificate_dir() + "/strict.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  int count = 0;
  for (auto at = text.find(line); at != std::string::npos; at = text.find(line, at + 1)) ++count;
  return count;
}

std::string get_with(const std::string& fields) { return "GET / HTTP/1.1\r\nHost: t\r\n" + fields + "\r\n"; }
}  // namespace
// The real binary, with small limits:4 ends here

// [[file:../notes/testing-the-error-handler.org::*The strict rules, one test each][The strict rules, one test each:1]]
// The root note's nc / openssl s_client experiment: garbage gets a 400, not a dropped connection.
TEST_CASE("a request line that is not HTTP gets 400 and the connection closed", "[error_handler][strict]") {
  expect_refusal("GARBAGE\r\n\r\n", "HTTP/1.1 400 Bad Request");
}

// The request-smuggling classic: a proxy and the server could each pick a different length.
TEST_CASE("Content-Length together with Transfer-Encoding gets 400 and the connection closed", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                 "HTTP/1.1 400 Bad Request");
}

// Two lengths that disagree mean nobody knows where the body ends.
TEST_CASE("two different Content-Length values get 400", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
                 "HTTP/1.1 400 Bad Request");
}

// A chunk size that is not hexadecimal cannot be framed; Beast finds it while reading the body.
TEST_CASE("an invalid chunk size gets 400", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
                 "HTTP/1.1 400 Bad Request");
}
// The strict rules, one test each:1 ends here

// [[file:../notes/testing-the-error-handler.org::*The strict rules, one test each][The strict rules, one test each:2]]
// "Transfer-Encoding : chunked" is ignored by some proxies and honoured by others.
TEST_CASE("whitespace between a field name and its colon gets 400", "[error_handler][strict]") {
  expect_refusal("GET / HTTP/1.1\r\nHost : t\r\n\r\n", "HTTP/1.1 400 Bad Request");
}

// Line folding is obsolete, and proxies disagree on how to unfold it.
TEST_CASE("an obs-fold continuation line gets 400", "[error_handler][strict]") {
  expect_refusal(get_with("X-Note: first\r\n  folded\r\n"), "HTTP/1.1 400 Bad Request");
}

// A NUL or a bare CR in a value is how header injection starts.
TEST_CASE("control characters in a field value get 400", "[error_handler][strict]") {
  expect_refusal(get_with(std::string("X-Note: a\0b\r\n", 13)), "HTTP/1.1 400 Bad Request");
  expect_refusal(get_with("X-Note: a\rb\r\n"), "HTTP/1.1 400 Bad Request");
}

// RFC 9112 section 6.3: without chunked last the body's end cannot be found, so 400 and close.
TEST_CASE("a Transfer-Encoding whose last coding is not chunked gets 400", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                 "HTTP/1.1 400 Bad Request");
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
                 "HTTP/1.1 400 Bad Request");
}

// RFC 9112 section 6.1: a coding the server does not implement, with chunked still last, is 501.
TEST_CASE("a Transfer-Encoding with a coding caracal does not implement before chunked gets 501", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
                 "HTTP/1.1 501 Not Implemented");
}

// Unknown methods are 501 by RFC 9110, and case matters in a method.
TEST_CASE("an unknown method gets 501", "[error_handler][strict]") {
  expect_refusal("BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 501 Not Implemented");
}
// The strict rules, one test each:2 ends here

// [[file:../notes/testing-the-error-handler.org::*The strict rules, one test each][The strict rules, one test each:3]]
// RFC 9112 section 3.2: a 1.1 request without Host must be refused.
TEST_CASE("an HTTP/1.1 request without Host gets 400", "[error_handler][strict]") {
  expect_refusal("GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request");
}

// HTTP/2.0 is another protocol and 505 says so (a versionless HTTP/0.9 line is a 400); one log line each.
TEST_CASE("an unsupported HTTP version gets 505 and one log line per refusal", "[error_handler][strict]") {
  const std::string line = "caracal: 505 unsupported_version: HTTP/2.0 [GET / from 127.0.0.1]\n";
  const auto before = lines_in_log(line);
  expect_refusal("GET / HTTP/2.0\r\nHost: t\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported");
  CHECK(lines_in_log(line) == before + 2);  // one over TCP, one over TLS
}

// max_request_line_length is 1024 here.
TEST_CASE("a request line longer than its limit gets 414", "[error_handler][strict]") {
  expect_refusal("GET /" + std::string(2000, 'a') + " HTTP/1.1\r\nHost: t\r\n\r\n", "HTTP/1.1 414 URI Too Long");
}

// max_header_size is 4096 bytes and max_header_fields 20 here.
TEST_CASE("a header section too large or with too many fields gets 431", "[error_handler][strict]") {
  expect_refusal(get_with("X-Fill: " + std::string(5000, 'a') + "\r\n"),
                 "HTTP/1.1 431 Request Header Fields Too Large");
  std::string fields;
  for (int i = 0; i < 25; ++i) fields += "X-" + std::to_string(i) + ": x\r\n";
  expect_refusal(get_with(fields), "HTTP/1.1 431 Request Header Fields Too Large");
}
// The strict rules, one test each:3 ends here

// [[file:../notes/testing-the-error-handler.org::*The strict rules, one test each][The strict rules, one test each:4]]
// http_content_length_limit is 1000 bytes here.
TEST_CASE("a body over the limit gets 413 before it is read", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413 Content Too Large");
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n" +
                     std::string(2000, 'a') + "\r\n0\r\n\r\n",
                 "HTTP/1.1 413 Content Too Large");
}
// The strict rules, one test each:4 ends here

// [[file:../notes/testing-the-error-handler.org::*The strict rules, one test each][The strict rules, one test each:5]]
// A stalled upload deserves an answer; a half-sent head does not (a scanner would get one per probe).
TEST_CASE("a stalled body gets 408 and an unfinished head a silent close", "[error_handler][strict]") {
  expect_refusal("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc", "HTTP/1.1 408 Request Timeout");
  auto& server = strict_server();
  for (auto transport : {Transport::tcp, Transport::tls}) {
    INFO(name_of(transport));
    const auto answer = exchange(transport == Transport::tls ? server.tls_port : server.tcp_port, transport,
                                 "GET / HTTP/1.1\r\nHost: t\r\n");
    CHECK(answer.text.empty());
    CHECK(answer.closed);
  }
}

// The whole point: after every refusal above, the worker that answered is still the same process.
TEST_CASE("the worker that refused every malformed request is still the same process", "[error_handler][strict]") {
  auto& server = strict_server();
  CHECK(worker_pid(server.tcp_port) == server.first_worker_pid);
  Wire wire(server.tls_port, Transport::tls);
  REQUIRE(wire.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto reply = wire.read_reply();
  REQUIRE(reply);
  CHECK(reply->rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
}
// The strict rules, one test each:5 ends here

// [[file:../notes/testing-the-error-handler.org::*A certificate that cannot be loaded][A certificate that cannot be loaded:1]]
// Exit status 1 and one line naming the bind, as for every other start-up failure.
TEST_CASE("an ssl bind whose key cannot be loaded stops the start with status 1", "[error_handler][tls]") {
  const char* binary = std::getenv("CARACAL_BIN");
  REQUIRE(binary != nullptr);
  const std::string dir = certificate_dir();
  const std::string bind = "ssl://127.0.0.1:" + std::to_string(free_port()) + "?cert=" + dir +
                           "/cert.pem&key=" + dir + "/missing.pem";
  const pid_t pid = spawn_binary({binary, "-b", bind}, dir + "/missing-key.log");
  int status = 0;
  for (int i = 0; i < kPatienceMs / 10 && ::waitpid(pid, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(10ms);
  if (::kill(pid, SIGKILL) == 0) ::waitpid(pid, &status, 0);  // still serving: the check failed
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  std::ifstream log(dir + "/missing-key.log");
  std::string line;
  std::getline(log, line);
  CHECK(line.rfind("caracal: " + bind + ": cannot load key '" + dir + "/missing.pem'", 0) == 0);
}
// A certificate that cannot be loaded:1 ends here

// [[file:../notes/testing-the-error-handler.org::*A worker with a handler under test][A worker with a handler under test:1]]
namespace {
// A listening socket on 127.0.0.1 and the port it got.
std::pair<int, std::uint16_t> listen_on_loopback() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(fd, 64) == 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return {fd, ntohs(address.sin_port)};
}
// A worker with a handler under test:1 ends here

// [[file:../notes/testing-the-error-handler.org::*A worker with a handler under test][A worker with a handler under test:2]]
class HandlerWorker {
 public:
  HandlerWorker(caracal::WorkerSettings settings, caracal::App app) {
    auto [tcp_fd, tcp] = listen_on_loopback();
    auto [tls_fd, tls] = listen_on_loopback();
    tcp_port_ = tcp;
    tls_port_ = tls;
    settings.tls = {nullptr, caracal::load_tls_context(certificate_dir() + "/cert.pem",
                                                       certificate_dir() + "/key.pem")};
    int heartbeat[2];
    REQUIRE(::pipe(heartbeat) == 0);
    settings.heartbeat_fd = heartbeat[1];
    settings.heartbeat_interval = 60s;
    std::fflush(nullptr);  // the child must not flush the parent's buffered output again
    child_.pid = ::fork();  // guarded from here: the REQUIRE below may throw
    REQUIRE(child_.pid >= 0);
    if (child_.pid == 0) {
      const int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, 2);  // the log lines are the unit tests' business
      const int fds[] = {tcp_fd, tls_fd};
      ::_exit(caracal::run_worker(settings, fds, std::move(app)));
    }
    ::close(heartbeat[1]);
    pollfd ready{heartbeat[0], POLLIN, 0};
    REQUIRE(::poll(&ready, 1, kPatienceMs) == 1);
    ::close(heartbeat[0]);
    ::close(tcp_fd);
    ::close(tls_fd);
  }
  std::uint16_t port(Transport transport) const { return transport == Transport::tls ? tls_port_ : tcp_port_; }
  pid_t pid() const { return child_.pid; }
  void terminate() const { ::kill(child_.pid, SIGTERM); }

 private:
  ChildGuard child_;  // SIGKILL: a lone worker has nothing to hand over
  std::uint16_t tcp_port_ = 0, tls_port_ = 0;
};
// A worker with a handler under test:2 ends here

// [[file:../notes/testing-the-error-handler.org::*A worker with a handler under test][A worker with a handler under test:4]]
caracal::Response test_app(caracal::Request& request) {
  if (request.path == "/boom") throw std::runtime_error("secret detail from the app");
  if (request.path == "/pid") return caracal::text_response(200, std::to_string(::getpid()));
  return caracal::text_response(200, "ok");
}

caracal::Response reporting_handler(const caracal::Failure& error, const caracal::Request& env, int status) {
  return caracal::text_response(status, "handled " + std::to_string(status) + " " +
                                            std::string(caracal::rule_for(error.kind).name) + " " +
                                            env.method + " " + env.path + " from " + env.remote_addr + "\n");
}

caracal::WorkerSettings settings_for(std::string environment, caracal::LowlevelErrorHandler handler = {}) {
  caracal::WorkerSettings settings;
  settings.max_threads = 2;
  settings.environment = std::move(environment);
  settings.lowlevel_error_handler = std::move(handler);
  return settings;
}

std::string get(const std::string& path) { return "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n"; }
}  // namespace
// A worker with a handler under test:4 ends here

// [[file:../notes/testing-the-error-handler.org::*The handler's contract][The handler's contract:1]]
// Puma's contract: an app exception reaches the handler with env and 500, and its answer is sent.
TEST_CASE("an exception from the app gets the handler's 500 and the connection stays open", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  HandlerWorker worker(settings_for("production", reporting_handler), test_app);
  Wire wire(worker.port(transport), transport);
  REQUIRE(wire.send(get("/boom") + get("/after")));
  auto failed = wire.read_reply();
  REQUIRE(failed);
  CHECK(failed->rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
  CHECK(failed->find("\r\n\r\nhandled 500 app_exception GET /boom from 127.0.0.1\n") != std::string::npos);
  auto after = wire.read_reply();
  REQUIRE(after);
  CHECK(after->rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
}

// The root note's LowlevelErrorTest: a middleware that raises before the app; development names it.
TEST_CASE("the crashing middleware gets a 500 that names the exception in development", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  HandlerWorker worker(settings_for("development"),
                       caracal::AppBuilder().use<caracal::CrashBeforeApp>().run(test_app));
  Wire wire(worker.port(transport), transport);
  REQUIRE(wire.send(get("/")));
  auto reply = wire.read_reply();
  REQUIRE(reply);
  CHECK(reply->rfind("HTTP/1.1 500 Internal Server Error\r\n", 0) == 0);
  CHECK(reply->find("\r\n\r\n500 Internal Server Error\ncaracal caught this error: "
                    "Simulated crash before app (std::runtime_error)\n") != std::string::npos);
}
// The handler's contract:1 ends here

// [[file:../notes/testing-the-error-handler.org::*The handler's contract][The handler's contract:2]]
// Production must not leak what the exception said; Content-Length must frame the short body.
TEST_CASE("in production the default 500 says nothing about the exception", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  HandlerWorker worker(settings_for("production"), test_app);
  Wire wire(worker.port(transport), transport);
  REQUIRE(wire.send(get("/boom")));
  auto reply = wire.read_reply();
  REQUIRE(reply);
  CHECK(reply->find("Content-Length: 26\r\n") != std::string::npos);
  CHECK(reply->substr(reply->find("\r\n\r\n") + 4) == "500 Internal Server Error\n");
  CHECK(reply->find("secret") == std::string::npos);
}

// Puma 5.6 ignored the handler for parse errors; caracal sends its answer, with the env it knows.
TEST_CASE("a malformed request gets the handler's 400 and the connection closed", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  HandlerWorker worker(settings_for("production", reporting_handler), test_app);
  const auto answer = exchange(worker.port(transport), transport, "GET /x HTTP/1.1\r\nHost : t\r\n\r\n");
  CHECK(answer.status_line() == "HTTP/1.1 400 Bad Request");
  CHECK(answer.body() == "handled 400 bad_request GET /x from 127.0.0.1\n");
  CHECK(answer.closed);
}

// 501 goes through the handler as well, with the method it could not serve.
TEST_CASE("an unknown method gets the handler's 501", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  HandlerWorker worker(settings_for("production", reporting_handler), test_app);
  const auto answer = exchange(worker.port(transport), transport, "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n");
  CHECK(answer.status_line() == "HTTP/1.1 501 Not Implemented");
  CHECK(answer.body() == "handled 501 unknown_method BREW /pot from 127.0.0.1\n");
  CHECK(answer.closed);
}
// The handler's contract:2 ends here

// [[file:../notes/testing-the-error-handler.org::*The handler's contract][The handler's contract:3]]
// The last line of defence must not take the worker down with it.
TEST_CASE("a handler that throws gets a canned 500 and the worker lives on", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  HandlerWorker worker(settings_for("production", [](const caracal::Failure&, const caracal::Request&, int)
                                                      -> caracal::Response { throw std::logic_error("handler bug"); }),
                       test_app);
  const auto from_app = exchange(worker.port(transport), transport, get("/boom"));
  CHECK(from_app.status_line() == "HTTP/1.1 500 Internal Server Error");
  CHECK(from_app.body().rfind("An error has occurred.\n", 0) == 0);
  const auto from_parser = exchange(worker.port(transport), transport, "GARBAGE\r\n\r\n");
  CHECK(from_parser.status_line() == "HTTP/1.1 500 Internal Server Error");
  CHECK(from_parser.closed);
  Wire wire(worker.port(transport), transport);
  REQUIRE(wire.send(get("/pid")));
  auto reply = wire.read_reply();
  REQUIRE(reply);
  CHECK(reply->substr(reply->find("\r\n\r\n") + 4) == std::to_string(worker.pid()));
}
// The handler's contract:3 ends here

// [[file:../notes/testing-the-error-handler.org::*The handler's contract][The handler's contract:4]]
// A forced shutdown must tell the client to retry, not drop it without a word.
TEST_CASE("a request cut off by a forced shutdown gets 503 and the connection closed", "[error_handler]") {
  const auto transport = GENERATE(Transport::tcp, Transport::tls);
  INFO(name_of(transport));
  int started[2];
  REQUIRE(::pipe(started) == 0);
  auto settings = settings_for("production");
  settings.shutdown_timeout = 300ms;
  HandlerWorker worker(settings, [started](caracal::Request&) {
    [[maybe_unused]] auto written = ::write(started[1], "x", 1);
    std::this_thread::sleep_for(3s);
    return caracal::text_response(200, "too late");
  });
  Wire wire(worker.port(transport), transport);
  REQUIRE(wire.send(get("/slow")));
  pollfd in_app{started[0], POLLIN, 0};
  REQUIRE(::poll(&in_app, 1, kPatienceMs) == 1);
  worker.terminate();
  bool closed = false;
  const std::string text = wire.read_to_end(closed);
  CHECK(text.substr(0, text.find("\r\n")) == "HTTP/1.1 503 Service Unavailable");
  CHECK(text.find("\r\n\r\n503 Service Unavailable\n") != std::string::npos);
  CHECK(closed);
  ::close(started[0]);
  ::close(started[1]);
}
// The handler's contract:4 ends here

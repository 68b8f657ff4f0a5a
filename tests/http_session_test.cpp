// tests/http_session_test.cpp: tangled from notes/http-session.org; edit the note, not this file.

// [[file:../notes/http-session.org::*Tests][Tests:2]]
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "http_session.hpp"
#include "http_test_client.hpp"
#include "thread_pool.hpp"

using namespace std::chrono_literals;
using test_client::Reader;
using test_client::send_all;

namespace {
// The tiny app: each route exercises one body kind or failure.
caracal::Response test_app(caracal::Request& request) {
  if (request.path == "/boom") throw std::runtime_error("secret internal detail");
  if (request.path == "/echo") return caracal::text_response(200, request.body);
  if (request.path == "/slow") std::this_thread::sleep_for(100ms);
  if (request.path == "/big") return caracal::text_response(200, std::string(16384, 'x'));
  if (request.path == "/file") {
    caracal::Response response;
    response.body = caracal::FileBody{request.query, 2, 5};
    return response;
  }
  if (request.path == "/whole-file") {  // ?PATH&LENGTH
    const auto amp = request.query.find('&');
    caracal::Response response;
    response.body = caracal::FileBody{request.query.substr(0, amp), 0,
                                      std::stoull(request.query.substr(amp + 1))};
    return response;
  }
  if (request.path == "/stream") {
    caracal::Response response;
    response.body = caracal::StreamBody{[n = 0]() mutable -> std::optional<std::string> {
      if (++n > 3) return std::nullopt;
      return "part" + std::to_string(n) + ";";
    }};
    return response;
  }
  return caracal::text_response(200, request.path + "|" + request.query + "|" + request.remote_addr);
}
// Tests:2 ends here

// [[file:../notes/http-session.org::*Tests][Tests:3]]
// A reactor thread, a pool and an accept thread around one listening socket.
class TestServer {
 public:
  explicit TestServer(caracal::SessionSettings settings = {})
      : settings_(std::make_shared<const caracal::SessionSettings>(settings)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listen_fd_, 64) == 0);
    socklen_t length = sizeof address;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port = ntohs(address.sin_port);
    reactor_thread_ = std::thread([this] { reactor_.run(); });
    accept_thread_ = std::thread([this] { accept_connections(); });
  }

  ~TestServer() {
    ::shutdown(listen_fd_, SHUT_RDWR);  // wakes the blocked accept()
    accept_thread_.join();
    ::close(listen_fd_);
    pool_.stop();
    guard_.reset();
    reactor_.stop();
    reactor_thread_.join();
  }

  int connect() const { return test_client::connect_to(port); }
  std::uint16_t port = 0;
// Tests:3 ends here

// [[file:../notes/http-session.org::*Tests][Tests:4]]
private:
  void accept_connections() {
    for (;;) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;
      boost::asio::post(reactor_, [this, fd] {
        auto hooks = std::make_shared<caracal::SessionHooks>();
        hooks->run_on_pool = [this](std::function<void()> job) { pool_.submit(std::move(job)); };
        caracal::start_http_session(reactor_, fd, app_, nullptr, settings_, hooks);
      });
    }
  }

  boost::asio::io_context reactor_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_ =
      boost::asio::make_work_guard(reactor_);
  caracal::ThreadPool pool_{{.min_threads = 0, .max_threads = 4, .reap_interval = 60s}};
  std::shared_ptr<const caracal::App> app_ = std::make_shared<const caracal::App>(test_app);
  std::shared_ptr<const caracal::SessionSettings> settings_;
  int listen_fd_ = -1;
  std::thread reactor_thread_, accept_thread_;
};

// Closes a client socket at the end of a test, whatever happens.
struct Client {
  int fd;
  explicit Client(int fd) : fd(fd) { REQUIRE(fd >= 0); }
  ~Client() { ::close(fd); }
};

std::string get(const std::string& target, const std::string& extra = "") {
  return "GET " + target + " HTTP/1.1\r\nHost: t\r\n" + extra + "\r\n";
}
}  // namespace
// Tests:4 ends here

// [[file:../notes/http-session.org::*Tests][Tests:5]]
// Keep-alive is the point of HTTP/1.1: reconnecting per request costs a handshake.
TEST_CASE("two requests on one keep-alive connection are both answered") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, get("/a?x=1")));
  auto first = reader.read_reply();
  REQUIRE(first);
  CHECK(first->status == 200);
  CHECK(first->body == "/a|x=1|127.0.0.1");
  CHECK_FALSE(first->has("connection"));
  REQUIRE(send_all(client.fd, get("/b")));
  auto second = reader.read_reply();
  REQUIRE(second);
  CHECK(second->body == "/b||127.0.0.1");
}

// Pipelining clients send before reading; answers must come back in request order.
TEST_CASE("pipelined requests are answered in order") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, get("/slow") + get("/two") + get("/three")));
  for (const char* expected : {"/slow||127.0.0.1", "/two||127.0.0.1", "/three||127.0.0.1"}) {
    auto reply = reader.read_reply();
    REQUIRE(reply);
    CHECK(reply->body == expected);
  }
}

// Clients that do not know a body's length upfront send it chunked.
TEST_CASE("a chunked request body reaches the app decoded") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK(reply->body == "hello world");
}
// Tests:5 ends here

// [[file:../notes/http-session.org::*Tests][Tests:6]]
// A HEAD answer must announce the GET's length but send no body, or the next reply is corrupt.
TEST_CASE("a HEAD response has Content-Length but no body") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "HEAD /abc HTTP/1.1\r\nHost: t\r\n\r\n" + get("/next")));
  auto head = reader.read_reply(true);
  REQUIRE(head);
  CHECK(head->headers["content-length"] == std::to_string(std::string("/abc||127.0.0.1").size()));
  auto next = reader.read_reply();
  REQUIRE(next);
  CHECK(next->body == "/next||127.0.0.1");
}

// Sent alone, a HEAD is answered by the pool thread; it must leave the body out there too.
TEST_CASE("a HEAD request on its own gets headers only and the connection stays usable") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "HEAD /abc HTTP/1.1\r\nHost: t\r\n\r\n"));
  auto head = reader.read_reply(true);
  REQUIRE(head);
  CHECK(head->headers["content-length"] == std::to_string(std::string("/abc||127.0.0.1").size()));
  REQUIRE(send_all(client.fd, get("/next")));
  auto next = reader.read_reply();
  REQUIRE(next);
  CHECK(next->body == "/next||127.0.0.1");
}

// curl sends Expect: 100-continue for large bodies and waits for permission first.
TEST_CASE("Expect 100-continue gets an interim response before the body is read") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                              "Expect: 100-continue\r\n\r\n"));
  auto interim = reader.read_reply();
  REQUIRE(interim);
  CHECK(interim->status == 100);
  REQUIRE(send_all(client.fd, "hello"));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK(reply->status == 200);
  CHECK(reply->body == "hello");
}
// Tests:6 ends here

// [[file:../notes/http-session.org::*Tests][Tests:7]]
// HTTP/1.0 closes by default; keeping it open would leave the client waiting.
TEST_CASE("an HTTP/1.0 request is answered and the connection closed") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "GET /old HTTP/1.0\r\n\r\n"));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK(reply->body == "/old||127.0.0.1");
  CHECK(reader.at_eof());
}

// HTTP/1.0 clients that ask for keep-alive explicitly must get it.
TEST_CASE("an HTTP/1.0 request with Connection keep-alive keeps the connection") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  const std::string request = "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  REQUIRE(send_all(client.fd, request + request));
  for (int i = 0; i < 2; ++i) {
    auto reply = reader.read_reply();
    REQUIRE(reply);
    CHECK(reply->headers["connection"] == "keep-alive");
  }
}

// max_keep_alive bounds how long one client can hold a connection (and a worker).
TEST_CASE("the max_keep_alive-th request is answered with Connection close") {
  caracal::SessionSettings settings;
  settings.max_keep_alive = 3;
  TestServer server(settings);
  Client client(server.connect());
  Reader reader(client.fd);
  for (int i = 1; i <= 3; ++i) {
    REQUIRE(send_all(client.fd, get("/n")));
    auto reply = reader.read_reply();
    REQUIRE(reply);
    CHECK(reply->has("connection") == (i == 3));
  }
  CHECK(reader.at_eof());
}
// Tests:7 ends here

// [[file:../notes/http-session.org::*Tests][Tests:8]]
// A crashing app must cost one request, never the worker, and never leak its message.
TEST_CASE("an exception from the app gives a generic 500 and the server keeps serving") {
  TestServer server;
  {
    Client client(server.connect());
    Reader reader(client.fd);
    REQUIRE(send_all(client.fd, get("/boom")));
    auto reply = reader.read_reply();
    REQUIRE(reply);
    CHECK(reply->status == 500);
    CHECK(reply->body.find("secret") == std::string::npos);
  }
  Client next(server.connect());
  Reader reader(next.fd);
  REQUIRE(send_all(next.fd, get("/fine")));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK(reply->status == 200);
}

// After a parse error nobody knows where the next request starts, so the connection ends.
TEST_CASE("a malformed request gets 400 and the connection closed") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "GARBAGE\r\n\r\n"));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK(reply->status == 400);
  CHECK(reader.at_eof());
}

// A client that connects and says nothing must not hold a connection forever.
TEST_CASE("a silent connection is closed after the first data timeout") {
  caracal::SessionSettings settings;
  settings.first_data_timeout = 200ms;
  TestServer server(settings);
  Client client(server.connect());
  Reader reader(client.fd);
  CHECK(reader.at_eof());
}
// Tests:8 ends here

// [[file:../notes/http-session.org::*Tests][Tests:9]]
// Static files go through sendfile; the app's offset and length must be honoured.
TEST_CASE("a file body sends the requested byte range") {
  char path[] = "/tmp/caracal-session-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "0123456789", 10) == 10);
  ::close(fd);
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, get(std::string("/file?") + path)));
  auto reply = reader.read_reply();
  ::unlink(path);
  REQUIRE(reply);
  CHECK(reply->headers["content-length"] == "5");
  CHECK(reply->body == "23456");
}

// The socket is corked for a file's head and body; it must be uncorked for the next reply.
TEST_CASE("a file response leaves the keep-alive connection ready for the next request") {
  char path[] = "/tmp/caracal-session-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, "0123456789", 10) == 10);
  ::close(fd);
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, get(std::string("/file?") + path)));
  auto file = reader.read_reply();
  REQUIRE(send_all(client.fd, get("/after")));
  auto after = reader.read_reply();
  ::unlink(path);
  REQUIRE(file);
  CHECK(file->body == "23456");
  REQUIRE(after);
  CHECK(after->body == "/after||127.0.0.1");
}

// The pool thread sends what the socket takes of a file; the reactor must finish it.
TEST_CASE("a file larger than the socket takes at once arrives whole, and the connection goes on") {
  char path[] = "/tmp/caracal-session-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::string content(8 << 20, '\0');  // 8 MiB: more than a loopback send buffer holds
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 23);
  REQUIRE(::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  ::close(fd);
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  const std::string query = std::string(path) + "&" + std::to_string(content.size());
  REQUIRE(send_all(client.fd, get("/whole-file?" + query) + get("/after")));
  std::this_thread::sleep_for(200ms);  // the send buffer fills; the rest waits for the reactor
  auto file = reader.read_reply();
  auto after = reader.read_reply();
  ::unlink(path);
  REQUIRE(file);
  CHECK(file->headers["content-length"] == std::to_string(content.size()));
  CHECK(file->body == content);
  REQUIRE(after);
  CHECK(after->body == "/after||127.0.0.1");
}

// A pool thread that cannot write a whole response must leave the rest to the reactor.
TEST_CASE("replies that outgrow what the client reads arrive whole and in order") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  constexpr int kRequests = 320;  // 5 MiB unread: more than a loopback send buffer grows to
  for (int i = 0; i < kRequests; ++i) {
    REQUIRE(send_all(client.fd, get("/big")));
    std::this_thread::sleep_for(1ms);  // so that most requests are not pipelined
  }
  for (int i = 0; i < kRequests; ++i) {
    auto reply = reader.read_reply();
    REQUIRE(reply);
    CHECK(reply->body == std::string(16384, 'x'));
  }
}

// A stream of unknown length must be chunked on HTTP/1.1 and still allow keep-alive.
TEST_CASE("a stream body is sent chunked and the connection stays usable") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, get("/stream") + get("/after")));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK(reply->headers["transfer-encoding"] == "chunked");
  CHECK(reply->body == "part1;part2;part3;");
  auto after = reader.read_reply();
  REQUIRE(after);
  CHECK(after->body == "/after||127.0.0.1");
}

// HTTP/1.0 has no chunked encoding: the end of the connection is the end of the body.
TEST_CASE("a stream body to an HTTP/1.0 client is sent raw and ended by closing") {
  TestServer server;
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  auto reply = reader.read_reply();
  REQUIRE(reply);
  CHECK_FALSE(reply->has("transfer-encoding"));
  CHECK(reply->body == "part1;part2;part3;");
}

// An idle keep-alive connection is cheap but not free; it must end after persistent_timeout.
TEST_CASE("an idle keep-alive connection is closed after the persistent timeout") {
  caracal::SessionSettings settings;
  settings.persistent_timeout = 200ms;
  TestServer server(settings);
  Client client(server.connect());
  Reader reader(client.fd);
  REQUIRE(send_all(client.fd, get("/once")));
  REQUIRE(reader.read_reply());
  CHECK(reader.at_eof());
}
// Tests:9 ends here

// [[file:../notes/http-session.org::*The pool thread's bytes, against Beast's][The pool thread's bytes, against Beast's:1]]
#include <boost/beast/http.hpp>
#include <sstream>

namespace {
std::string serialized_by_beast(const caracal::Response& response, int version, bool head_request) {
  namespace http = boost::beast::http;
  http::response<http::string_body> message;
  message.version(version);
  message.result(static_cast<unsigned>(response.status));
  const auto phrase = caracal::reason_phrase(response.status);
  if (phrase != "Unknown") message.reason(phrase);  // else Beast's own phrase, set by result()
  for (const auto& [name, value] : response.headers.fields)
    if (!boost::beast::iequals(name, "Content-Length") && !boost::beast::iequals(name, "Transfer-Encoding") &&
        !boost::beast::iequals(name, "Connection"))
      message.insert(name, value);
  message.keep_alive(true);
  const auto& body = std::get<std::string>(response.body);
  const bool allows_body = response.status >= 200 && response.status != 204 && response.status != 304;
  if (allows_body) message.content_length(body.size());
  if (allows_body && !head_request) message.body() = body;
  std::ostringstream bytes;
  bytes << message;
  return bytes.str();
}
}  // namespace

TEST_CASE("the pool thread's response bytes are the ones Beast would write") {
  for (int status : {200, 201, 204, 304, 404, 413, 599}) {
    caracal::Response response = caracal::text_response(status, "Hello, world!");
    response.headers.add("X-Trace", "abc");
    response.headers.add("Content-Length", "999");  // the app's framing is overridden
    response.headers.add("Connection", "keep-alive");
    for (int version : {10, 11})
      for (bool head_request : {false, true}) {
        INFO("status " << status << ", HTTP/" << version / 10 << "." << version % 10
                       << (head_request ? ", HEAD" : ", GET"));
        CHECK(caracal::detail::kept_alive_response_bytes(response, version, head_request) ==
              serialized_by_beast(response, version, head_request));
      }
  }
}
// The pool thread's bytes, against Beast's:1 ends here

// [[file:../notes/http-session.org::*The strict head check, without a socket][The strict head check, without a socket:1]]
namespace {
// The kind the strict check gives a head of a GET with these field lines, or nullopt.
std::optional<caracal::FailureKind> verdict_on(const std::string& request_line, const std::string& fields,
                                               caracal::RequestLimits limits = {}) {
  auto verdict = caracal::detail::check_request_head(request_line + "\r\n" + fields + "\r\n", limits);
  if (!verdict.failure) return std::nullopt;
  return verdict.failure->kind;
}
constexpr auto kBad = caracal::FailureKind::bad_request;
}  // namespace

// Each line is one smuggling or injection trick that a lenient parser would let through.
TEST_CASE("the strict head check refuses ambiguous framing and malformed fields", "[http_session][strict]") {
  const std::string get = "GET / HTTP/1.1";
  CHECK(verdict_on(get, "Host: t\r\n") == std::nullopt);
  CHECK(verdict_on(get, "Host: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n") == kBad);
  CHECK(verdict_on(get, "Host: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n") == kBad);
  CHECK(verdict_on(get, "Host: t\r\nContent-Length: 5, 5\r\n") == std::nullopt);
  CHECK(verdict_on(get, "Host: t\r\nContent-Length: -1\r\n") == kBad);
  CHECK(verdict_on(get, "Host : t\r\n") == kBad);
  CHECK(verdict_on(get, "Host: t\r\nX-A: 1\r\n  folded\r\n") == kBad);
  CHECK(verdict_on(get, std::string("Host: t\r\nX-A: a\0b\r\n", 19)) == kBad);
  CHECK(verdict_on(get, "Host: t\r\nX-A: a\rb\r\n") == kBad);
  CHECK(verdict_on(get, "") == kBad);
  CHECK(verdict_on(get, "Host: a\r\nHost: b\r\n") == kBad);
  CHECK(verdict_on("GET / HTTP/1.0", "") == std::nullopt);
  CHECK(verdict_on("GET / HTTP/1.0", "Transfer-Encoding: chunked\r\n") == kBad);
  CHECK(verdict_on(get, "Host: t\r\nTransfer-Encoding: chunked, chunked\r\n") == kBad);
}

// 501 and 505 tell the client that retrying the same bytes will never work here.
TEST_CASE("the strict head check names unknown methods, codings and versions", "[http_session][strict]") {
  using K = caracal::FailureKind;
  CHECK(verdict_on("BREW /pot HTTP/1.1", "Host: t\r\n") == K::unknown_method);
  CHECK(verdict_on("get / HTTP/1.1", "Host: t\r\n") == K::unknown_method);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nTransfer-Encoding: gzip, chunked\r\n") == K::unknown_transfer_coding);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nTransfer-Encoding: gzip\r\n") == kBad);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nTransfer-Encoding: chunked, gzip\r\n") == kBad);
  CHECK(verdict_on("GET / HTTP/2.0", "Host: t\r\n") == K::unsupported_version);
  CHECK(verdict_on("GET / HTTP/1.x", "Host: t\r\n") == kBad);
  CHECK(verdict_on("GET /a b HTTP/1.1", "Host: t\r\n") == kBad);
  CHECK(verdict_on("GARBAGE", "") == kBad);
}

// Every limit has its own status, so a client (or its operator) knows which one it hit.
TEST_CASE("the strict head check gives each overrun limit its own status", "[http_session][strict]") {
  using K = caracal::FailureKind;
  caracal::RequestLimits limits;
  limits.max_request_line = 20;
  limits.max_header_bytes = 40;
  limits.max_header_fields = 3;
  limits.max_body_bytes = 100;
  CHECK(verdict_on("GET /" + std::string(20, 'a') + " HTTP/1.1", "Host: t\r\n", limits) == K::request_line_too_long);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nX-A: " + std::string(40, 'a') + "\r\n", limits) == K::header_too_large);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n", limits) == K::header_too_large);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nContent-Length: 101\r\n", limits) == K::body_too_large);
  CHECK(verdict_on("GET / HTTP/1.1", "Host: t\r\nContent-Length: 100\r\n", limits) == std::nullopt);
  CHECK(caracal::detail::check_partial_head(std::string(21, 'a'), limits) == K::request_line_too_long);
  CHECK(caracal::detail::check_partial_head("GET / HTTP/1.1\r\n" + std::string(43, 'a'), limits) == K::header_too_large);
  CHECK(caracal::detail::check_partial_head("GET / HTTP/1.1\r\nHost", limits) == std::nullopt);
}
// The strict head check, without a socket:1 ends here

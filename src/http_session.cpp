// src/http_session.cpp: tangled from notes/http-session.org; edit the note, not this file.

// [[file:../notes/http-session.org::*The session's state][The session's state:2]]
#include "http_session.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/ssl.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <iostream>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace caracal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {
constexpr std::size_t kSendfileSliceBytes = 1 << 20;
constexpr std::size_t kHeadReadBytes = 4096;
// What an idle keep-alive connection reads into while it waits: most request
// heads fit, and an idle session should stay small (see "Waiting for the next
// request"). A longer head is read on in kHeadReadBytes steps.
constexpr std::size_t kIdleReadBytes = 1024;
constexpr std::chrono::seconds kLingerTime{2};
// The largest string body a pool thread writes itself (see "Answering from the
// pool thread"): a copy this small costs less than a trip through the reactor.
constexpr std::size_t kPoolWriteBytes = 16384;
// The most of a file the pool thread sends before the reactor takes over (see
// "A file from the pool thread"): the other connections get a turn in between.
constexpr std::uint64_t kPoolFileBytes = 65536;
// The interim response a client that sent Expect: 100-continue waits for.
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace
// The session's state:2 ends here

// [[file:../notes/http-session.org::*The session's state][The session's state:3]]
class BeastSession final : public HttpSession, public std::enable_shared_from_this<BeastSession> {
 public:
  BeastSession(net::io_context& reactor, int fd, std::shared_ptr<const App> app,
               const ServerInfo* server, std::shared_ptr<const SessionSettings> settings,
               std::shared_ptr<const SessionHooks> hooks,
               std::string remote_addr, int requests_served, sa_family_t family);
  void start() { do_read_header(); }
  void shut_down() override;
  void cut_off() override;

 private:
  enum class State { reading, in_app, writing, closed };

  void wait_for_the_next_request();
  void forget_the_last_request();
  void do_read_header();
  void read_more_of_the_head();
  void on_head_bytes(beast::error_code ec, std::size_t bytes);
  void check_the_head(std::string_view head);
  void on_read_header(beast::error_code ec);
  bool client_expects_continue() const;
  void do_send_continue();
  void on_continue_sent(beast::error_code ec, std::size_t);
  void do_read_body();
  void on_read_body(beast::error_code ec, std::size_t);
  void fail_read(beast::error_code ec);
  void fail(Failure failure);
  Request& env();

  void do_call_app();
  Request make_request(http::request<http::string_body>&& message) const;
  Response call_app(Request& request) const;
  void on_app_done(std::shared_ptr<Response> response);
  bool answer_from_the_pool(Response& response);
  bool send_file_from_the_pool(Response& response, const FileBody& file);
  bool may_answer_from_this_thread(const Response& response) const;  // handover_ held
  std::string serialized(Response& response) const;
  void hand_the_rest_to_the_reactor(const std::string& bytes, ssize_t sent);
  void write_the_rest();

  void do_write(Response& response);
  template <class Body>
  void fill_header(http::response<Body>& message, const Response& response) const;
  void do_write_string(Response& response, std::string& body);
  void do_write_file(Response& response, const FileBody& file);
  void on_file_header_written(beast::error_code ec, std::size_t);
  void do_send_file();
  void wait_until_writable();
  void do_write_stream(Response& response, StreamBody& stream);
  void on_stream_header_written(beast::error_code ec, std::size_t);
  void do_produce_chunk();
  void on_chunk_produced(std::optional<std::string> chunk, bool failed);
  void on_chunk_written(beast::error_code ec, std::size_t);
  void do_write_header_only();
  void on_write(beast::error_code ec, std::size_t);
  void finish_response();
  void linger_then_close();
  void drain_until_the_client_closes();
  void close();
  void on_first_bytes(beast::error_code ec, std::size_t bytes);
  bool may_park() const;
  void check_on_the_idle_connection();
  void check_again_at(std::chrono::steady_clock::time_point when);
  void park();
  void hand_over_to_the_parking_lot();
  void close_file();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  net::steady_timer wait_deadline_;  // tcp_stream's timeouts do not cover async_wait
  net::steady_timer idle_check_;     // looks at an idle connection now and then (see below)
  std::chrono::steady_clock::time_point idle_since_{};
  bool idle_check_armed_ = false;
  bool parking_ = false;  // the idle read was cancelled to park the socket
  bool reading_body_ = false;  // the body's deadline still has something to cut off
  net::steady_timer body_deadline_;  // cancels a stalled body read without closing
  std::unique_ptr<http::request_parser<http::string_body>> parser_;  // only while reading
  // The response being written; on the heap, and only while it is written.
  std::unique_ptr<http::response<http::string_body>> string_message_;
  std::unique_ptr<http::response<http::empty_body>> header_message_;
  std::unique_ptr<http::response_serializer<http::empty_body>> header_serializer_;
  std::shared_ptr<const App> app_;
  const ServerInfo* server_;
  // Shared by every session of a worker: an idle connection should not carry copies.
  const std::shared_ptr<const SessionSettings> settings_;
  const std::shared_ptr<const SessionHooks> hooks_;
  const std::string remote_addr_;
  const bool tcp_;  // TCP (Nagle and corking apply), not a Unix socket
  State state_ = State::reading;
  int requests_served_;
  int request_version_ = 11;
  bool head_request_ = false, keep_alive_ = false, shutting_down_ = false;
  bool body_timed_out_ = false, cut_off_ = false, linger_ = false;
  bool idle_ = false;  // waiting for the next request's first byte
  // Held by a pool thread answering a request, and by the reactor's entries that
  // may run meanwhile (shut_down, cut_off, the idle deadline).
  std::mutex handover_;
  std::string unsent_;  // what a pool thread could not write without blocking
  // What is known of the current request, for the error handler; made by env()
  // once something is known, and dropped while the connection is idle.
  std::unique_ptr<Request> env_;
  // The request in the app: the session's own, so the job needs to carry only the session.
  std::optional<Request> request_;
  std::unique_ptr<std::array<char, 4096>> discarded_;  // what a lingering close reads and drops
  StreamBody stream_body_;
  bool chunked_ = false;
  std::string chunk_;
  int file_fd_ = -1;
  std::uint64_t file_offset_ = 0, file_remaining_ = 0;
};
// The session's state:3 ends here

// [[file:../notes/http-session.org::*The session's state][The session's state:4]]
namespace {
sa_family_t family_of(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return address.ss_family;
}

tcp protocol_of(sa_family_t family) { return family == AF_INET6 ? tcp::v6() : tcp::v4(); }

bool is_tcp(sa_family_t family) { return family == AF_INET || family == AF_INET6; }
// The session's state:4 ends here

// [[file:../notes/http-session.org::*The session's state][The session's state:5]]
void send_small_writes_at_once(int fd) {
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);  // best effort: only latency
}

// While corked, the kernel sends only full segments; uncorking flushes the rest.
void set_cork(int fd, bool on) {
  const int value = on ? 1 : 0;
  ::setsockopt(fd, IPPROTO_TCP, TCP_CORK, &value, sizeof value);
}
}  // namespace

BeastSession::BeastSession(net::io_context& reactor, int fd, std::shared_ptr<const App> app,
                           const ServerInfo* server,
                           std::shared_ptr<const SessionSettings> settings,
                           std::shared_ptr<const SessionHooks> hooks, std::string remote_addr,
                           int requests_served, sa_family_t family)
    : stream_(tcp::socket(reactor, protocol_of(family), fd)),
      wait_deadline_(reactor),
      idle_check_(reactor),
      body_deadline_(reactor),
      app_(std::move(app)),
      server_(server),
      settings_(std::move(settings)),
      hooks_(std::move(hooks)),
      remote_addr_(remote_addr.empty() ? detail::peer_address(fd) : std::move(remote_addr)),
      tcp_(is_tcp(family)),
      requests_served_(requests_served) {
  if (tcp_) send_small_writes_at_once(fd);
}
// The session's state:5 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:1]]
void BeastSession::do_read_header() {
  state_ = State::reading;
  parser_ = std::make_unique<http::request_parser<http::string_body>>();
  const RequestLimits& limits = settings_->limits;
  parser_->header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(limits.max_request_line + limits.max_header_bytes + 1024, UINT32_MAX)));
  parser_->body_limit(limits.max_body_bytes);
  body_timed_out_ = false;
  env_.reset();
  stream_.expires_after(settings_->first_data_timeout);
  read_more_of_the_head();
}
// Reading a request:1 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:3]]
void BeastSession::read_more_of_the_head() {
  while (buffer_.size() >= 2 && std::memcmp(buffer_.data().data(), "\r\n", 2) == 0)
    buffer_.consume(2);
  const std::string_view buffered(static_cast<const char*>(buffer_.data().data()), buffer_.size());
  const auto end = buffered.find("\r\n\r\n");
  if (end != std::string_view::npos) return check_the_head(buffered.substr(0, end + 4));
  if (auto overrun = detail::check_partial_head(buffered, settings_->limits))
    return fail({*overrun, "the head outgrew its limit before it ended"});
  stream_.async_read_some(buffer_.prepare(kHeadReadBytes),
                          beast::bind_front_handler(&BeastSession::on_head_bytes,
                                                    shared_from_this()));
}

void BeastSession::on_head_bytes(beast::error_code ec, std::size_t bytes) {
  if (ec == beast::error::timeout) return fail({FailureKind::head_timeout, ec.message()});
  if (ec) return fail({FailureKind::client_gone, ec.message()});
  buffer_.commit(bytes);
  read_more_of_the_head();
}
// Reading a request:3 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:4]]
namespace {
void set_target(Request& request, std::string target) {
  const auto question = target.find('?');
  request.path = target.substr(0, question);
  request.query = question == std::string::npos ? "" : target.substr(question + 1);
  request.target = std::move(target);
}
}  // namespace

void BeastSession::check_the_head(std::string_view head) {
  auto verdict = detail::check_request_head(head, settings_->limits);
  env().method = verdict.method;
  set_target(env(), verdict.target);
  if (verdict.failure) return fail(std::move(*verdict.failure));
  beast::error_code ec;
  buffer_.consume(parser_->put(buffer_.data(), ec));
  if (!ec && !parser_->is_header_done()) ec = http::error::partial_message;  // cannot happen
  on_read_header(ec);
}
// Reading a request:4 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:5]]
void BeastSession::on_read_header(beast::error_code ec) {
  if (ec) return fail_read(ec);
  if (client_expects_continue()) return do_send_continue();
  do_read_body();
}

bool BeastSession::client_expects_continue() const {
  const auto& message = parser_->get();
  return message.version() >= 11 && !parser_->is_done() &&
         beast::iequals(message[http::field::expect], "100-continue");
}

void BeastSession::do_send_continue() {
  stream_.expires_after(settings_->write_timeout);
  net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                   beast::bind_front_handler(&BeastSession::on_continue_sent,
                                             shared_from_this()));
}

void BeastSession::on_continue_sent(beast::error_code ec, std::size_t) {
  if (ec) return close();
  do_read_body();
}

void BeastSession::do_read_body() {
  if (parser_->is_done()) return do_call_app();  // no body, or it came with the head
  stream_.expires_never();
  reading_body_ = true;
  body_deadline_.expires_after(settings_->first_data_timeout);
  body_deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    // Cancelled, or it expired in the same instant the body arrived and its
    // handler was already queued: the read is over, and cancelling now would
    // cut off whatever the socket is doing next (the idle read, say).
    if (ec || !self->reading_body_) return;
    self->body_timed_out_ = true;
    self->stream_.cancel();
  });
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&BeastSession::on_read_body, shared_from_this()));
}

void BeastSession::on_read_body(beast::error_code ec, std::size_t) {
  reading_body_ = false;
  body_deadline_.cancel();
  if (ec) return fail_read(ec);
  do_call_app();
}
// Reading a request:5 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:7]]
void BeastSession::fail_read(beast::error_code ec) {
  if (body_timed_out_) return fail({FailureKind::body_timeout, "the body stalled"});
  if (ec == http::error::body_limit) return fail({FailureKind::body_too_large, ec.message()});
  const bool client_gone = ec == http::error::end_of_stream ||
                           ec == http::error::partial_message;
  const bool parse_error = ec.category() == http::make_error_code(http::error::bad_method).category();
  if (client_gone || !parse_error) return fail({FailureKind::client_gone, ec.message()});
  fail({FailureKind::bad_request, ec.message()});
}
// Reading a request:7 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:8]]
void BeastSession::fail(Failure failure) {
  const FailureRule& rule = rule_for(failure.kind);
  Response response = answer_failure(failure, env(), settings_->lowlevel_error_handler, std::cerr);
  if (rule.status == 0) return close();
  if (state_ == State::reading) {
    linger_ = true;
    request_version_ = 11;
    head_request_ = false;
  }
  if (rule.closes_connection) keep_alive_ = false;
  do_write(response);
}

Request& BeastSession::env() {
  if (!env_) {
    env_ = std::make_unique<Request>();
    env_->remote_addr = remote_addr_;
    env_->server = server_;
  }
  return *env_;
}
// Reading a request:8 ends here

// [[file:../notes/http-session.org::*Running the app][Running the app:1]]
void BeastSession::do_call_app() {
  state_ = State::in_app;
  stream_.expires_never();  // the app's time is bounded by the worker, not by the client
  auto& message = parser_->get();
  request_version_ = std::min(message.version(), 11u);  // HTTP/1.2 is answered as 1.1
  head_request_ = message.method() == http::verb::head;
  keep_alive_ = message.keep_alive() && ++requests_served_ < settings_->max_keep_alive;
  request_.emplace(make_request(parser_->release()));
  parser_.reset();
  if (hooks_->request_received) hooks_->request_received();
  hooks_->run_on_pool([self = shared_from_this()] {  // small enough to need no allocation
    Response response = self->call_app(*self->request_);
    if (self->answer_from_the_pool(response)) return;
    auto shared = std::make_shared<Response>(std::move(response));
    net::post(self->stream_.get_executor(), [self, shared] { self->on_app_done(shared); });
  });
}
// Running the app:1 ends here

// [[file:../notes/http-session.org::*Running the app][Running the app:3]]
Request BeastSession::make_request(http::request<http::string_body>&& message) const {
  Request request;
  request.method = std::string(message.method_string());
  set_target(request, std::string(message.target()));
  request.version = message.version();
  for (const auto& field : message)
    request.headers.add(std::string(field.name_string()), std::string(field.value()));
  request.body = std::move(message.body());
  request.remote_addr = remote_addr_;
  request.server = server_;
  return request;
}

Response BeastSession::call_app(Request& request) const {
  try {
    return (*app_)(request);
  } catch (...) {
    // The env is the request as the app (and any middleware) left it.
    return answer_failure(failure_from_current_exception(FailureKind::app_exception), request,
                          settings_->lowlevel_error_handler, std::cerr);
  }
}

void BeastSession::on_app_done(std::shared_ptr<Response> response) {
  if (state_ == State::closed || cut_off_) return;  // cut off: the 503 went instead
  const auto connection = response->headers.find("Connection");
  if (shutting_down_ || (connection && beast::iequals(*connection, "close")))
    keep_alive_ = false;
  do_write(*response);
}
// Running the app:3 ends here

// [[file:../notes/http-session.org::*Writing the response][Writing the response:1]]
namespace {
bool is_framing_header(std::string_view name) {
  return beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding") ||
         beast::iequals(name, "Connection");
}

// 1xx, 204 and 304 responses never have a body, and so no Content-Length either.
bool status_allows_body(int status) { return status >= 200 && status != 204 && status != 304; }

// RFC 9110's phrases ("Content Too Large"), not Beast's older ones; Beast's for the rest.
std::string_view status_text(int status) {
  const auto phrase = reason_phrase(status);
  if (phrase != "Unknown") return phrase;
  return http::obsolete_reason(static_cast<http::status>(status));
}

template <class... F>
struct overloaded : F... { using F::operator()...; };
}  // namespace

void BeastSession::do_write(Response& response) {
  state_ = State::writing;
  std::visit(overloaded{
                 [&](std::string& body) { do_write_string(response, body); },
                 [&](FileBody& file) { do_write_file(response, file); },
                 [&](StreamBody& stream) { do_write_stream(response, stream); },
             },
             response.body);
}

template <class Body>
void BeastSession::fill_header(http::response<Body>& message, const Response& response) const {
  message.version(request_version_);
  message.result(static_cast<unsigned>(response.status));
  message.reason(status_text(response.status));
  for (const auto& [name, value] : response.headers.fields)
    if (!is_framing_header(name)) message.insert(name, value);
  message.keep_alive(keep_alive_);
}
// Writing the response:1 ends here

// [[file:../notes/http-session.org::*Writing the response][Writing the response:2]]
void BeastSession::do_write_string(Response& response, std::string& body) {
  header_message_ = std::make_unique<http::response<http::empty_body>>();
  fill_header(*header_message_, response);
  if (status_allows_body(response.status)) header_message_->content_length(body.size());
  if (head_request_ || !status_allows_body(response.status)) return do_write_header_only();
  string_message_ = std::make_unique<http::response<http::string_body>>(std::move(*header_message_));
  string_message_->body() = std::move(body);
  stream_.expires_after(settings_->write_timeout);
  http::async_write(stream_, *string_message_,
                    beast::bind_front_handler(&BeastSession::on_write, shared_from_this()));
}

void BeastSession::do_write_header_only() {
  stream_.expires_after(settings_->write_timeout);
  http::async_write(stream_, *header_message_,
                    beast::bind_front_handler(&BeastSession::on_write, shared_from_this()));
}
// Writing the response:2 ends here

// [[file:../notes/http-session.org::*Answering from the pool thread][Answering from the pool thread:1]]
bool BeastSession::answer_from_the_pool(Response& response) {
  if (const auto* file = std::get_if<FileBody>(&response.body)) return send_file_from_the_pool(response, *file);
  const auto* body = std::get_if<std::string>(&response.body);
  if (!body || body->size() > kPoolWriteBytes) return false;
  std::lock_guard lock(handover_);
  if (!may_answer_from_this_thread(response)) return false;
  const std::string bytes = serialized(response);
  const int fd = stream_.socket().native_handle();
  const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent != static_cast<ssize_t>(bytes.size())) {
    hand_the_rest_to_the_reactor(bytes, sent);
    return true;
  }
  wait_for_the_next_request();  // its async_wait is the pool thread's last touch
  return true;
}
// Answering from the pool thread:1 ends here

// [[file:../notes/http-session.org::*Answering from the pool thread][Answering from the pool thread:2]]
bool BeastSession::may_answer_from_this_thread(const Response& response) const {
  const auto connection = response.headers.find("Connection");
  const bool app_closes = connection && beast::iequals(*connection, "close");
  return state_ == State::in_app && !cut_off_ && !shutting_down_ && !app_closes && keep_alive_ &&
         buffer_.size() == 0;
}
// Answering from the pool thread:2 ends here

// [[file:../notes/http-session.org::*Answering from the pool thread][Answering from the pool thread:3]]
std::string BeastSession::serialized(Response& response) const {
  return detail::kept_alive_response_bytes(response, request_version_, head_request_);
}

std::string detail::kept_alive_response_bytes(const Response& response, int version,
                                              bool head_request) {
  const auto& body = std::get<std::string>(response.body);
  const bool allows_body = status_allows_body(response.status);
  std::string bytes =
      kept_alive_head(response, version, allows_body ? std::optional<std::uint64_t>(body.size()) : std::nullopt);
  if (allows_body && !head_request) bytes += body;
  return bytes;
}

std::string detail::kept_alive_head(const Response& response, int version,
                                    std::optional<std::uint64_t> content_length) {
  std::string bytes;
  bytes.reserve(160);
  bytes += version >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ";
  bytes += std::to_string(response.status);
  bytes += ' ';
  bytes += status_text(response.status);
  bytes += "\r\n";
  for (const auto& [name, value] : response.headers.fields) {
    if (is_framing_header(name)) continue;
    bytes.append(name).append(": ").append(value).append("\r\n");
  }
  if (version < 11) bytes += "Connection: keep-alive\r\n";
  if (content_length) bytes.append("Content-Length: ").append(std::to_string(*content_length)).append("\r\n");
  bytes += "\r\n";
  return bytes;
}
// Answering from the pool thread:3 ends here

// [[file:../notes/http-session.org::*Answering from the pool thread][Answering from the pool thread:4]]
void BeastSession::hand_the_rest_to_the_reactor(const std::string& bytes, ssize_t sent) {
  const bool broken = sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK;
  unsent_ = bytes.substr(sent > 0 ? static_cast<std::size_t>(sent) : 0);
  state_ = State::writing;
  net::post(stream_.get_executor(), [self = shared_from_this(), broken] {
    if (broken || self->state_ == State::closed) return self->close();
    self->write_the_rest();
  });
}

void BeastSession::write_the_rest() {
  stream_.expires_after(settings_->write_timeout);
  net::async_write(stream_, net::buffer(unsent_),
                   beast::bind_front_handler(&BeastSession::on_write, shared_from_this()));
}
// Answering from the pool thread:4 ends here

// [[file:../notes/http-session.org::*Files with sendfile][Files with sendfile:1]]
void BeastSession::do_write_file(Response& response, const FileBody& file) {
  header_message_ = std::make_unique<http::response<http::empty_body>>();
  fill_header(*header_message_, response);
  header_message_->content_length(file.length);
  if (head_request_) return do_write_header_only();
  file_fd_ = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file_fd_ < 0) {
    // Nothing is written yet, so the failure can still be answered properly.
    Response failure = answer_failure({FailureKind::unsendable_body, "cannot open " + file.path},
                                      env(), settings_->lowlevel_error_handler, std::cerr);
    if (std::holds_alternative<FileBody>(failure.body)) failure.body = std::string();  // no loop
    return do_write(failure);
  }
  file_offset_ = file.offset;
  file_remaining_ = file.length;
  if (tcp_) set_cork(stream_.socket().native_handle(), true);
  stream_.expires_after(settings_->write_timeout);
  http::async_write(stream_, *header_message_,
                    beast::bind_front_handler(&BeastSession::on_file_header_written,
                                              shared_from_this()));
}

void BeastSession::on_file_header_written(beast::error_code ec, std::size_t) {
  if (ec) return close();
  do_send_file();
}
// Files with sendfile:1 ends here

// [[file:../notes/http-session.org::*Files with sendfile][Files with sendfile:2]]
void BeastSession::do_send_file() {
  const int socket_fd = stream_.socket().native_handle();
  while (file_remaining_ > 0) {
    off_t offset = static_cast<off_t>(file_offset_);
    const auto slice = std::min<std::uint64_t>(file_remaining_, kSendfileSliceBytes);
    const ssize_t sent = ::sendfile(socket_fd, file_fd_, &offset, slice);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return wait_until_writable();
    if (sent <= 0) return close();
    file_offset_ += static_cast<std::uint64_t>(sent);
    file_remaining_ -= static_cast<std::uint64_t>(sent);
  }
  if (tcp_) set_cork(socket_fd, false);  // the last, partial segment goes now
  close_file();
  finish_response();
}

void BeastSession::wait_until_writable() {
  wait_deadline_.expires_after(settings_->write_timeout);
  wait_deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->close();  // operation_aborted means the socket became writable
  });
  stream_.socket().async_wait(tcp::socket::wait_write,
                              [self = shared_from_this()](beast::error_code ec) {
                                self->wait_deadline_.cancel();
                                if (ec) return self->close();
                                self->do_send_file();
                              });
}
// Files with sendfile:2 ends here

// [[file:../notes/http-session.org::*A file from the pool thread][A file from the pool thread:1]]
bool BeastSession::send_file_from_the_pool(Response& response, const FileBody& file) {
  std::lock_guard lock(handover_);
  if (!tcp_ || !may_answer_from_this_thread(response)) return false;
  const int file_fd = head_request_ ? -1 : ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (!head_request_ && file_fd < 0) return false;  // the reactor answers the failure
  file_fd_ = file_fd;
  file_offset_ = file.offset;
  file_remaining_ = head_request_ ? 0 : file.length;
  const int socket_fd = stream_.socket().native_handle();
  if (file_fd_ >= 0) set_cork(socket_fd, true);
  const std::string head = detail::kept_alive_head(response, request_version_, file.length);
  const ssize_t sent = ::send(socket_fd, head.data(), head.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (sent != static_cast<ssize_t>(head.size())) {
    hand_the_rest_to_the_reactor(head, sent);  // on_write then sends the file
    return true;
  }
  for (std::uint64_t budget = kPoolFileBytes; file_remaining_ > 0 && budget > 0;) {
    off_t offset = static_cast<off_t>(file_offset_);
    const auto slice = std::min(file_remaining_, budget);
    const ssize_t written = ::sendfile(socket_fd, file_fd_, &offset, slice);
    if (written <= 0) break;  // full, failed, or the file shrank: the reactor decides
    file_offset_ += static_cast<std::uint64_t>(written);
    file_remaining_ -= static_cast<std::uint64_t>(written);
    budget -= static_cast<std::uint64_t>(written);
  }
  if (file_remaining_ > 0) {
    state_ = State::writing;
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ != State::closed) self->do_send_file();
    });
    return true;
  }
  if (file_fd_ >= 0) set_cork(socket_fd, false);
  close_file();
  wait_for_the_next_request();
  return true;
}
// A file from the pool thread:1 ends here

// [[file:../notes/http-session.org::*Streams, chunked][Streams, chunked:1]]
void BeastSession::do_write_stream(Response& response, StreamBody& stream) {
  header_message_ = std::make_unique<http::response<http::empty_body>>();
  fill_header(*header_message_, response);
  if (head_request_) return do_write_header_only();
  stream_body_ = std::move(stream);
  chunked_ = request_version_ >= 11;
  if (chunked_) {
    header_message_->chunked(true);
  } else {
    keep_alive_ = false;  // HTTP/1.0 has no chunks: the close ends the body
    header_message_->keep_alive(false);
  }
  header_serializer_ = std::make_unique<http::response_serializer<http::empty_body>>(*header_message_);
  stream_.expires_after(settings_->write_timeout);
  http::async_write_header(stream_, *header_serializer_,
                           beast::bind_front_handler(&BeastSession::on_stream_header_written,
                                                     shared_from_this()));
}

void BeastSession::on_stream_header_written(beast::error_code ec, std::size_t) {
  if (ec) return close();
  do_produce_chunk();
}
// Streams, chunked:1 ends here

// [[file:../notes/http-session.org::*Streams, chunked][Streams, chunked:2]]
void BeastSession::do_produce_chunk() {
  hooks_->run_on_pool([self = shared_from_this()] {
    std::optional<std::string> chunk;
    bool failed = false;
    try {
      chunk = self->stream_body_.next();
    } catch (...) {
      failed = true;  // logged here, on the pool thread; the reactor only closes
      answer_failure(failure_from_current_exception(FailureKind::stream_failed), self->env(),
                     self->settings_->lowlevel_error_handler, std::cerr);
    }
    net::post(self->stream_.get_executor(), [self, chunk, failed]() mutable {
      self->on_chunk_produced(std::move(chunk), failed);
    });
  });
}
// Streams, chunked:2 ends here

// [[file:../notes/http-session.org::*Streams, chunked][Streams, chunked:3]]
void BeastSession::on_chunk_produced(std::optional<std::string> chunk, bool failed) {
  if (state_ == State::closed) return;
  if (failed) return close();  // the header is out; a truncated body is the only signal left
  if (!chunk && !chunked_) return finish_response();
  stream_.expires_after(settings_->write_timeout);
  if (!chunk)
    return net::async_write(stream_, http::make_chunk_last(),
                            beast::bind_front_handler(&BeastSession::on_write, shared_from_this()));
  if (chunk->empty()) return do_produce_chunk();
  chunk_ = std::move(*chunk);
  auto on_written = beast::bind_front_handler(&BeastSession::on_chunk_written, shared_from_this());
  if (chunked_)
    net::async_write(stream_, http::make_chunk(net::buffer(chunk_)), std::move(on_written));
  else
    net::async_write(stream_, net::buffer(chunk_), std::move(on_written));
}

void BeastSession::on_chunk_written(beast::error_code ec, std::size_t) {
  if (ec) return close();
  do_produce_chunk();
}
// Streams, chunked:3 ends here

// [[file:../notes/http-session.org::*Keep-alive or close][Keep-alive or close:1]]
void BeastSession::on_write(beast::error_code ec, std::size_t) {
  if (ec) return close();
  if (file_fd_ >= 0) return do_send_file();  // the pool thread's head went out late (below)
  finish_response();
}

void BeastSession::finish_response() {
  string_message_.reset();
  header_serializer_.reset();
  header_message_.reset();
  unsent_ = std::string();
  stream_body_ = {};
  if (!keep_alive_ || shutting_down_) return linger_ ? linger_then_close() : close();
  wait_for_the_next_request();
}
// Keep-alive or close:1 ends here

// [[file:../notes/http-session.org::*Waiting for the next request][Waiting for the next request:1]]
void BeastSession::forget_the_last_request() {
  env_.reset();
  request_.reset();
}

void BeastSession::wait_for_the_next_request() {
  state_ = State::reading;
  forget_the_last_request();
  if (buffer_.size() > 0) return do_read_header();  // pipelined: the client is talking
  idle_ = true;
  idle_since_ = std::chrono::steady_clock::now();
  if (!idle_check_armed_) check_on_the_idle_connection();
  stream_.socket().async_read_some(buffer_.prepare(kIdleReadBytes),
                                   [self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
                                     self->on_first_bytes(ec, bytes);
                                   });
}

void BeastSession::on_first_bytes(beast::error_code ec, std::size_t bytes) {
  idle_ = false;
  if (state_ == State::closed) return;
  buffer_.commit(bytes);
  const bool parked = std::exchange(parking_, false);
  if (bytes > 0) return do_read_header();  // the client spoke first: no parking
  if (parked && ec == net::error::operation_aborted) return hand_over_to_the_parking_lot();
  close();  // the client closed, or the socket failed
}
// Waiting for the next request:1 ends here

// [[file:../notes/http-session.org::*The idle check, and parking][The idle check, and parking:1]]
bool BeastSession::may_park() const {
  return hooks_->park && settings_->park_after < settings_->persistent_timeout;
}

void BeastSession::check_on_the_idle_connection() {
  const auto patience = may_park() ? settings_->park_after : settings_->persistent_timeout;
  check_again_at(idle_since_ + patience);
}

void BeastSession::check_again_at(std::chrono::steady_clock::time_point when) {
  idle_check_armed_ = true;
  idle_check_.expires_at(when);
  idle_check_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (ec) return;  // cancelled: the session closed
    std::lock_guard lock(self->handover_);
    self->idle_check_armed_ = false;
    if (!self->idle_ || self->state_ == State::closed) return;  // busy: its next idle arms it
    const auto idle_for = std::chrono::steady_clock::now() - self->idle_since_;
    if (idle_for >= self->settings_->persistent_timeout)
      return self->fail({FailureKind::head_timeout, "idle longer than persistent_timeout"});
    if (self->may_park() && idle_for >= self->settings_->park_after) return self->park();
    self->check_on_the_idle_connection();  // idle again since the timer was armed: not yet
  });
}
// The idle check, and parking:1 ends here

// [[file:../notes/http-session.org::*The idle check, and parking][The idle check, and parking:3]]
void BeastSession::park() {
  parking_ = true;
  beast::error_code ignored;
  stream_.socket().cancel(ignored);  // on_first_bytes takes it from here
}

void BeastSession::hand_over_to_the_parking_lot() {
  state_ = State::closed;
  beast::error_code ec;
  const int fd = stream_.socket().release(ec);
  wait_deadline_.cancel();
  body_deadline_.cancel();
  if (!ec && fd >= 0)
    hooks_->park(fd, requests_served_, idle_since_ + settings_->persistent_timeout);
  if (hooks_->closed) hooks_->closed(this);
}
// The idle check, and parking:3 ends here

// [[file:../notes/http-session.org::*The idle check, and parking][The idle check, and parking:4]]
void BeastSession::shut_down() {
  std::lock_guard lock(handover_);  // a pool thread may be answering (see above)
  shutting_down_ = true;
  if (state_ == State::reading) close();  // idle or half-received: nobody is owed an answer
}

void BeastSession::cut_off() {
  std::lock_guard lock(handover_);
  if (state_ != State::in_app) return close();
  cut_off_ = true;
  fail({FailureKind::forced_shutdown, "shutdown_timeout passed with the request in the app"});
}
// The idle check, and parking:4 ends here

// [[file:../notes/http-session.org::*The idle check, and parking][The idle check, and parking:5]]
void BeastSession::linger_then_close() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(kLingerTime);
  drain_until_the_client_closes();
}

void BeastSession::drain_until_the_client_closes() {
  if (!discarded_) discarded_ = std::make_unique<std::array<char, 4096>>();
  stream_.async_read_some(net::buffer(*discarded_),
                          [self = shared_from_this()](beast::error_code ec, std::size_t) {
                            if (ec) return self->close();
                            self->drain_until_the_client_closes();
                          });
}
// The idle check, and parking:5 ends here

// [[file:../notes/http-session.org::*The idle check, and parking][The idle check, and parking:6]]
void BeastSession::close() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.close();
  wait_deadline_.cancel();
  idle_check_.cancel();
  body_deadline_.cancel();
  close_file();
  if (hooks_->closed) hooks_->closed(this);
}

void BeastSession::close_file() {
  if (file_fd_ >= 0) ::close(file_fd_);
  file_fd_ = -1;
}
// The idle check, and parking:6 ends here

// [[file:../notes/http-session.org::*Reading the head strictly][Reading the head strictly:1]]
namespace {
using detail::HeadVerdict;

// RFC 9110's tchar: the characters of methods and field names.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != '\0' && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}
bool is_token(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar);
}
// HTAB, SP, visible ASCII and obs-text; never NUL, CR, LF, DEL or another control.
bool is_value_byte(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte == '\t' || (byte >= 0x20 && byte != 0x7f);
}
std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}
Failure refuse(FailureKind kind, std::string why) { return {kind, std::move(why), "", nullptr}; }
Failure bad(std::string why) { return refuse(FailureKind::bad_request, std::move(why)); }
// Reading the head strictly:1 ends here

// [[file:../notes/http-session.org::*Reading the head strictly][Reading the head strictly:2]]
bool is_implemented_method(std::string_view method) {
  for (std::string_view known : {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                                 "TRACE", "PATCH"})
    if (method == known) return true;
  return false;
}

std::optional<Failure> check_request_line(std::string_view line, const RequestLimits& limits,
                                          HeadVerdict& verdict, int& version) {
  if (line.size() > limits.max_request_line)
    return refuse(FailureKind::request_line_too_long, std::to_string(line.size()) + "-byte request line");
  const auto first = line.find(' '), last = line.rfind(' ');
  if (first == std::string_view::npos || first == last) return bad("request line without three parts");
  const auto method = line.substr(0, first), target = line.substr(first + 1, last - first - 1);
  const auto http = line.substr(last + 1);
  if (!is_token(method)) return bad("method is not a token");
  verdict.method = method;
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && c != 0x7f; }))
    return bad("whitespace or control character in the target");
  verdict.target = target;
  const bool well_formed = http.size() == 8 && http.substr(0, 5) == "HTTP/" &&
                           std::isdigit(static_cast<unsigned char>(http[5])) && http[6] == '.' &&
                           std::isdigit(static_cast<unsigned char>(http[7]));
  if (!well_formed) return bad("malformed HTTP version");
  if (http[5] != '1') return refuse(FailureKind::unsupported_version, std::string(http));
  version = 10 + (http[7] - '0');
  if (!is_implemented_method(method)) return refuse(FailureKind::unknown_method, "method " + std::string(method));
  return std::nullopt;
}
// Reading the head strictly:2 ends here

// [[file:../notes/http-session.org::*Reading the head strictly][Reading the head strictly:4]]
struct FramingFields {
  std::vector<std::string_view> content_lengths, transfer_codings;
  int hosts = 0;
};

std::optional<Failure> check_field_line(std::string_view line, FramingFields& fields) {
  if (line.front() == ' ' || line.front() == '\t') return bad("obs-fold (a line starting with whitespace)");
  const auto colon = line.find(':');
  if (colon == std::string_view::npos) return bad("field line without a colon");
  const auto name = line.substr(0, colon);
  if (!is_token(name)) return bad("whitespace or invalid character in field name '" + std::string(name) + "'");
  const auto value = trimmed(line.substr(colon + 1));
  if (!std::all_of(value.begin(), value.end(), is_value_byte))
    return bad("control character in field '" + std::string(name) + "'");
  if (beast::iequals(name, "Host")) ++fields.hosts;
  auto& list = beast::iequals(name, "Content-Length") ? fields.content_lengths : fields.transfer_codings;
  if (beast::iequals(name, "Content-Length") || beast::iequals(name, "Transfer-Encoding"))
    for (std::size_t at = 0; at <= value.size();) {  // both may be comma-separated lists
      const auto comma = std::min(value.find(',', at), value.size());
      list.push_back(trimmed(value.substr(at, comma - at)));
      at = comma + 1;
    }
  return std::nullopt;
}
// Reading the head strictly:4 ends here

// [[file:../notes/http-session.org::*Reading the head strictly][Reading the head strictly:5]]
std::optional<Failure> check_framing(const FramingFields& fields, int version,
                                     const RequestLimits& limits) {
  const auto& lengths = fields.content_lengths;
  const auto& codings = fields.transfer_codings;
  if (!lengths.empty() && !codings.empty()) return bad("both Content-Length and Transfer-Encoding");
  for (auto length : lengths) {
    if (length.empty() || !std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return bad("Content-Length is not a number");
    if (length != lengths.front()) return bad("Content-Length values differ");
  }
  if (!lengths.empty() && (lengths.front().size() > 19 ||
                           std::stoull(std::string(lengths.front())) > limits.max_body_bytes))
    return refuse(FailureKind::body_too_large, "Content-Length " + std::string(lengths.front()));
  if (!codings.empty() && version < 11) return bad("Transfer-Encoding in an HTTP/1.0 request");
  // Without chunked last, where the body ends cannot be known: 400, not 501.
  if (!codings.empty() && !beast::iequals(codings.back(), "chunked"))
    return bad("Transfer-Encoding does not end with chunked");
  for (auto coding : codings)
    if (!beast::iequals(coding, "chunked"))
      return refuse(FailureKind::unknown_transfer_coding, "Transfer-Encoding " + std::string(coding));
  if (codings.size() > 1) return bad("chunked applied more than once");
  if (version >= 11 && fields.hosts != 1) return bad(fields.hosts ? "more than one Host" : "HTTP/1.1 without Host");
  return std::nullopt;
}
// Reading the head strictly:5 ends here

// [[file:../notes/http-session.org::*Reading the head strictly][Reading the head strictly:8]]
}  // namespace

detail::HeadVerdict detail::check_request_head(std::string_view head, const RequestLimits& limits) {
  HeadVerdict verdict;
  const auto line_end = head.find("\r\n");
  int version = 11;
  if ((verdict.failure = check_request_line(head.substr(0, line_end), limits, verdict, version)))
    return verdict;
  const auto fields_text = head.substr(line_end + 2, head.size() - line_end - 4);  // without the empty line
  if (fields_text.size() > limits.max_header_bytes) {
    verdict.failure = refuse(FailureKind::header_too_large, std::to_string(fields_text.size()) + " bytes of fields");
    return verdict;
  }
  FramingFields fields;
  std::size_t count = 0;
  for (std::size_t at = 0; at < fields_text.size();) {
    const auto end = std::min(fields_text.find("\r\n", at), fields_text.size());
    if (++count > limits.max_header_fields) {
      verdict.failure = refuse(FailureKind::header_too_large, "more than " + std::to_string(limits.max_header_fields) + " fields");
      return verdict;
    }
    if ((verdict.failure = check_field_line(fields_text.substr(at, end - at), fields))) return verdict;
    at = end + 2;
  }
  verdict.failure = check_framing(fields, version, limits);
  return verdict;
}
// Reading the head strictly:8 ends here

// [[file:../notes/http-session.org::*Reading the head strictly][Reading the head strictly:10]]
std::optional<FailureKind> detail::check_partial_head(std::string_view buffered,
                                                      const RequestLimits& limits) {
  const auto line_end = buffered.find("\r\n");
  if (line_end == std::string_view::npos)
    return buffered.size() > limits.max_request_line ? std::optional(FailureKind::request_line_too_long) : std::nullopt;
  if (line_end > limits.max_request_line) return FailureKind::request_line_too_long;
  const std::size_t field_bytes = buffered.size() - line_end - 2;
  return field_bytes > limits.max_header_bytes + 2 ? std::optional(FailureKind::header_too_large) : std::nullopt;
}
// Reading the head strictly:10 ends here

// [[file:../notes/http-session.org::*A TLS tunnel in front of the session][A TLS tunnel in front of the session:2]]
struct TlsContext {
  net::ssl::context context{net::ssl::context::tls_server};
};

std::shared_ptr<TlsContext> load_tls_context(const std::string& cert, const std::string& key) {
  auto tls = std::make_shared<TlsContext>();
  tls->context.set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                           net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                           net::ssl::context::no_tlsv1_1);
  try {
    tls->context.use_certificate_chain_file(cert);
  } catch (const std::exception& error) {
    throw std::runtime_error("cannot load certificate '" + cert + "': " + error.what());
  }
  try {
    tls->context.use_private_key_file(key, net::ssl::context::pem);
  } catch (const std::exception& error) {
    throw std::runtime_error("cannot load key '" + key + "': " + error.what());
  }
  return tls;
}
// A TLS tunnel in front of the session:2 ends here

// [[file:../notes/http-session.org::*A TLS tunnel in front of the session][A TLS tunnel in front of the session:3]]
namespace {
class TlsTunnel : public std::enable_shared_from_this<TlsTunnel> {
 public:
  TlsTunnel(net::io_context& reactor, int fd, std::shared_ptr<TlsContext> tls, int session_end,
            std::function<void(HttpSession*)> closed)
      : closed_(std::move(closed)),
        tls_context_(std::move(tls)),
        tls_(tcp::socket(reactor, protocol_of(family_of(fd)), fd), tls_context_->context),
        session_(reactor, net::local::stream_protocol(), session_end),
        deadline_(reactor) {}
  void start(std::chrono::milliseconds handshake_timeout);
  // The session's own `closed` hook: the worker hears of it once both are done.
  void session_closed(HttpSession* session);
  // Keeps the session (and so its address, the worker's key for it) until then.
  void hold(std::shared_ptr<HttpSession> session) { session_alive_ = std::move(session); }

 private:
  void pump_from_client();
  void pump_from_session();
  void finish();
  void send_close_notify();
  void close_both();
  void tell_the_worker_once_both_are_closed();

  std::function<void(HttpSession*)> closed_;  // the worker's hook
  HttpSession* closed_session_ = nullptr;     // set once the session has closed
  std::shared_ptr<HttpSession> session_alive_;
  bool done_ = false;                         // both sockets closed
  std::shared_ptr<TlsContext> tls_context_;
  net::ssl::stream<tcp::socket> tls_;
  net::local::stream_protocol::socket session_;
  net::steady_timer deadline_;
  std::array<char, 16384> from_client_, from_session_;
  bool reading_client_ = false, finishing_ = false, notified_ = false;
};
// A TLS tunnel in front of the session:3 ends here

// [[file:../notes/http-session.org::*A TLS tunnel in front of the session][A TLS tunnel in front of the session:4]]
void TlsTunnel::start(std::chrono::milliseconds handshake_timeout) {
  deadline_.expires_after(handshake_timeout);
  deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->close_both();
  });
  tls_.async_handshake(net::ssl::stream_base::server, [self = shared_from_this()](beast::error_code ec) {
    self->deadline_.cancel();
    if (ec) return self->close_both();
    self->pump_from_client();
    self->pump_from_session();
  });
}

void TlsTunnel::pump_from_client() {
  if (finishing_) return send_close_notify();
  reading_client_ = true;
  tls_.async_read_some(net::buffer(from_client_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
    self->reading_client_ = false;
    if (self->finishing_) return self->send_close_notify();
    if (ec) {
      beast::error_code ignored;
      self->session_.shutdown(net::socket_base::shutdown_send, ignored);  // the session sees end of stream
      return;
    }
    net::async_write(self->session_, net::buffer(self->from_client_.data(), n),
                     [self](beast::error_code ec, std::size_t) {
                       if (!ec || self->finishing_) self->pump_from_client();
                     });
  });
}
// A TLS tunnel in front of the session:4 ends here

// [[file:../notes/http-session.org::*A TLS tunnel in front of the session][A TLS tunnel in front of the session:5]]
void TlsTunnel::pump_from_session() {
  session_.async_read_some(net::buffer(from_session_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
    if (ec) return self->finish();  // the session closed: its response is complete
    net::async_write(self->tls_, net::buffer(self->from_session_.data(), n),
                     [self](beast::error_code ec, std::size_t) {
                       if (ec) return self->close_both();
                       self->pump_from_session();
                     });
  });
}

void TlsTunnel::finish() {
  finishing_ = true;
  beast::error_code ignored;
  if (reading_client_) tls_.next_layer().cancel(ignored);  // its completion sends close_notify
  else send_close_notify();
}
// A TLS tunnel in front of the session:5 ends here

// [[file:../notes/http-session.org::*A TLS tunnel in front of the session][A TLS tunnel in front of the session:6]]
void TlsTunnel::send_close_notify() {
  if (notified_) return;
  notified_ = true;
  deadline_.expires_after(kLingerTime);
  deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->close_both();
  });
  tls_.async_shutdown([self = shared_from_this()](beast::error_code) { self->close_both(); });
}

void TlsTunnel::close_both() {
  if (done_) return;
  done_ = true;
  beast::error_code ignored;
  deadline_.cancel();
  tls_.next_layer().shutdown(tcp::socket::shutdown_both, ignored);
  tls_.next_layer().close(ignored);
  session_.close(ignored);
  tell_the_worker_once_both_are_closed();
}

void TlsTunnel::session_closed(HttpSession* session) {
  closed_session_ = session;
  tell_the_worker_once_both_are_closed();
}

void TlsTunnel::tell_the_worker_once_both_are_closed() {
  if (!done_ || !closed_session_) return;
  if (closed_) closed_(std::exchange(closed_session_, nullptr));
  session_alive_.reset();
}
}  // namespace
// A TLS tunnel in front of the session:6 ends here

// [[file:../notes/http-session.org::*A TLS tunnel in front of the session][A TLS tunnel in front of the session:7]]
std::shared_ptr<HttpSession> start_tls_session(net::io_context& reactor, int fd,
                                               std::shared_ptr<TlsContext> tls,
                                               std::shared_ptr<const App> app,
                                               const ServerInfo* server,
                                               std::shared_ptr<const SessionSettings> settings,
                                               std::shared_ptr<const SessionHooks> hooks) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
    ::close(fd);
    return nullptr;
  }
  std::string remote_addr = detail::peer_address(fd);
  send_small_writes_at_once(fd);  // each TLS record the tunnel writes is a whole message
  std::shared_ptr<TlsTunnel> tunnel;
  try {
    tunnel = std::make_shared<TlsTunnel>(reactor, fd, std::move(tls), pair[1], hooks->closed);
  } catch (const std::exception& error) {
    // Rare (Asio could not register a descriptor); the session's end is not adopted yet.
    std::cerr << "caracal: cannot adopt a TLS connection: " << error.what() << '\n';
    ::close(pair[0]);
    return nullptr;
  }
  tunnel->start(settings->first_data_timeout);
  auto own_hooks = std::make_shared<SessionHooks>(*hooks);  // its closed hook is the tunnel's
  own_hooks->closed = [tunnel](HttpSession* session) { tunnel->session_closed(session); };
  own_hooks->park = nullptr;  // the connection's state is in the tunnel, not in the socket
  auto session = start_http_session(reactor, pair[0], std::move(app), server, std::move(settings),
                                    std::move(own_hooks), std::move(remote_addr));
  tunnel->hold(session);
  return session;
}
// A TLS tunnel in front of the session:7 ends here

// [[file:../notes/http-session.org::*The factory][The factory:1]]
std::shared_ptr<HttpSession> start_http_session(net::io_context& reactor, int fd,
                                                std::shared_ptr<const App> app,
                                                const ServerInfo* server,
                                                std::shared_ptr<const SessionSettings> settings,
                                                std::shared_ptr<const SessionHooks> hooks,
                                                std::string remote_addr,
                                                int requests_served) {
  std::shared_ptr<BeastSession> session;
  try {
    session = std::make_shared<BeastSession>(reactor, fd, std::move(app), server,
                                             std::move(settings), std::move(hooks),
                                             std::move(remote_addr), requests_served, family_of(fd));
  } catch (const std::exception& error) {
    std::cerr << "caracal: cannot adopt a connection: " << error.what() << '\n';
    ::close(fd);
    return nullptr;
  }
  session->start();
  return session;
}
// The factory:1 ends here

// [[file:../notes/http-session.org::*The factory][The factory:2]]
namespace detail {
std::string peer_address(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) < 0) return "";
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET)
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&address)->sin_addr, text, sizeof text);
  else if (address.ss_family == AF_INET6)
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&address)->sin6_addr, text, sizeof text);
  else
    return "unix";
  return text;
}
}  // namespace detail

}  // namespace caracal
// The factory:2 ends here

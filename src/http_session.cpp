// src/http_session.cpp: tangled from notes/http-session.org; edit the note, not this file.

// [[file:../notes/http-session.org::*The session's state][The session's state:2]]
#include "http_session.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <iostream>
#include <optional>

namespace caracal {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {
constexpr std::uint64_t kMaxRequestBodyBytes = 64ull * 1024 * 1024;
constexpr std::size_t kSendfileSliceBytes = 1 << 20;
// The interim response a client that sent Expect: 100-continue waits for.
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
}  // namespace
// The session's state:2 ends here

// [[file:../notes/http-session.org::*The session's state][The session's state:3]]
class BeastSession final : public HttpSession, public std::enable_shared_from_this<BeastSession> {
 public:
  BeastSession(net::io_context& reactor, int fd, std::shared_ptr<const App> app,
               const ServerInfo* server, SessionSettings settings, SessionHooks hooks);
  void start() { do_read_header(); }
  void shut_down() override;

 private:
  enum class State { reading, in_app, writing, closed };

  void do_read_header();
  void on_read_header(beast::error_code ec, std::size_t);
  bool client_expects_continue() const;
  void do_send_continue();
  void on_continue_sent(beast::error_code ec, std::size_t);
  void do_read_body();
  void on_read_body(beast::error_code ec, std::size_t);
  void fail_read(beast::error_code ec);

  void do_call_app();
  Request make_request(http::request<http::string_body>&& message) const;
  Response call_app(Request& request) const;
  void on_app_done(std::shared_ptr<Response> response);

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
  void close();
  void close_file();

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  net::steady_timer sendfile_deadline_;  // tcp_stream's timeouts do not cover async_wait
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> string_message_;
  std::optional<http::response<http::empty_body>> header_message_;
  std::optional<http::response_serializer<http::empty_body>> header_serializer_;
  std::shared_ptr<const App> app_;
  const ServerInfo* server_;
  const SessionSettings settings_;
  const SessionHooks hooks_;
  const std::string remote_addr_;
  State state_ = State::reading;
  int requests_served_ = 0;
  int request_version_ = 11;
  bool head_request_ = false, keep_alive_ = false, shutting_down_ = false;
  StreamBody stream_body_;
  bool chunked_ = false;
  std::string chunk_;
  int file_fd_ = -1;
  std::uint64_t file_offset_ = 0, file_remaining_ = 0;
};
// The session's state:3 ends here

// [[file:../notes/http-session.org::*The session's state][The session's state:4]]
namespace {
tcp protocol_of(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  return address.ss_family == AF_INET6 ? tcp::v6() : tcp::v4();
}
}  // namespace

BeastSession::BeastSession(net::io_context& reactor, int fd, std::shared_ptr<const App> app,
                           const ServerInfo* server, SessionSettings settings,
                           SessionHooks hooks)
    : stream_(tcp::socket(reactor, protocol_of(fd), fd)),
      sendfile_deadline_(reactor),
      app_(std::move(app)),
      server_(server),
      settings_(settings),
      hooks_(std::move(hooks)),
      remote_addr_(detail::peer_address(fd)) {}
// The session's state:4 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:1]]
void BeastSession::do_read_header() {
  state_ = State::reading;
  parser_.emplace();
  parser_->body_limit(kMaxRequestBodyBytes);
  const bool idle_between_requests = requests_served_ > 0 && buffer_.size() == 0;
  stream_.expires_after(idle_between_requests ? settings_.persistent_timeout
                                              : settings_.first_data_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&BeastSession::on_read_header,
                                                    shared_from_this()));
}
// Reading a request:1 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:3]]
void BeastSession::on_read_header(beast::error_code ec, std::size_t) {
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
  stream_.expires_after(settings_.write_timeout);
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
  stream_.expires_after(settings_.first_data_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&BeastSession::on_read_body, shared_from_this()));
}

void BeastSession::on_read_body(beast::error_code ec, std::size_t) {
  if (ec) return fail_read(ec);
  do_call_app();
}
// Reading a request:3 ends here

// [[file:../notes/http-session.org::*Reading a request][Reading a request:4]]
void BeastSession::fail_read(beast::error_code ec) {
  const bool client_gone = ec == http::error::end_of_stream ||
                           ec == http::error::partial_message;
  const bool parse_error = ec.category() == http::make_error_code(http::error::bad_method).category();
  if (client_gone || !parse_error) return close();
  keep_alive_ = false;
  request_version_ = 11;
  head_request_ = false;
  Response response = respond_to_error({FailureKind::bad_request, ec.message()});
  do_write(response);
}
// Reading a request:4 ends here

// [[file:../notes/http-session.org::*Running the app][Running the app:1]]
void BeastSession::do_call_app() {
  state_ = State::in_app;
  stream_.expires_never();  // the app's time is bounded by the worker, not by the client
  auto& message = parser_->get();
  request_version_ = message.version();
  head_request_ = message.method() == http::verb::head;
  keep_alive_ = message.keep_alive() && ++requests_served_ < settings_.max_keep_alive;
  auto request = std::make_shared<Request>(make_request(parser_->release()));
  if (hooks_.request_received) hooks_.request_received();
  hooks_.run_on_pool([self = shared_from_this(), request] {
    auto response = std::make_shared<Response>(self->call_app(*request));
    net::post(self->stream_.get_executor(),
              [self, response] { self->on_app_done(response); });
  });
}
// Running the app:1 ends here

// [[file:../notes/http-session.org::*Running the app][Running the app:3]]
Request BeastSession::make_request(http::request<http::string_body>&& message) const {
  Request request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  const auto question = request.target.find('?');
  request.path = request.target.substr(0, question);
  if (question != std::string::npos) request.query = request.target.substr(question + 1);
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
  } catch (const std::exception& error) {
    return respond_to_error({FailureKind::app_exception, error.what()});
  } catch (...) {
    return respond_to_error({FailureKind::app_exception, "a non-standard exception"});
  }
}

void BeastSession::on_app_done(std::shared_ptr<Response> response) {
  if (state_ == State::closed) return;
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
  for (const auto& [name, value] : response.headers.fields)
    if (!is_framing_header(name)) message.insert(name, value);
  message.keep_alive(keep_alive_);
}
// Writing the response:1 ends here

// [[file:../notes/http-session.org::*Writing the response][Writing the response:2]]
void BeastSession::do_write_string(Response& response, std::string& body) {
  header_message_.emplace();
  fill_header(*header_message_, response);
  if (status_allows_body(response.status)) header_message_->content_length(body.size());
  if (head_request_ || !status_allows_body(response.status)) return do_write_header_only();
  string_message_.emplace(std::move(*header_message_));
  string_message_->body() = std::move(body);
  stream_.expires_after(settings_.write_timeout);
  http::async_write(stream_, *string_message_,
                    beast::bind_front_handler(&BeastSession::on_write, shared_from_this()));
}

void BeastSession::do_write_header_only() {
  stream_.expires_after(settings_.write_timeout);
  http::async_write(stream_, *header_message_,
                    beast::bind_front_handler(&BeastSession::on_write, shared_from_this()));
}
// Writing the response:2 ends here

// [[file:../notes/http-session.org::*Files with sendfile][Files with sendfile:1]]
void BeastSession::do_write_file(Response& response, const FileBody& file) {
  header_message_.emplace();
  fill_header(*header_message_, response);
  header_message_->content_length(file.length);
  if (head_request_) return do_write_header_only();
  file_fd_ = ::open(file.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (file_fd_ < 0) {
    // Nothing is written yet, so the failure can still be answered properly.
    Response failure = respond_to_error({FailureKind::app_exception, "cannot open " + file.path});
    return do_write(failure);
  }
  file_offset_ = file.offset;
  file_remaining_ = file.length;
  stream_.expires_after(settings_.write_timeout);
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
  close_file();
  finish_response();
}

void BeastSession::wait_until_writable() {
  sendfile_deadline_.expires_after(settings_.write_timeout);
  sendfile_deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec) self->close();  // operation_aborted means the socket became writable
  });
  stream_.socket().async_wait(tcp::socket::wait_write,
                              [self = shared_from_this()](beast::error_code ec) {
                                self->sendfile_deadline_.cancel();
                                if (ec) return self->close();
                                self->do_send_file();
                              });
}
// Files with sendfile:2 ends here

// [[file:../notes/http-session.org::*Streams, chunked][Streams, chunked:1]]
void BeastSession::do_write_stream(Response& response, StreamBody& stream) {
  header_message_.emplace();
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
  header_serializer_.emplace(*header_message_);
  stream_.expires_after(settings_.write_timeout);
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
  hooks_.run_on_pool([self = shared_from_this()] {
    std::optional<std::string> chunk;
    bool failed = false;
    try {
      chunk = self->stream_body_.next();
    } catch (const std::exception& error) {
      failed = true;
      std::cerr << "caracal: stream body threw: " << error.what() << '\n';
    } catch (...) {
      failed = true;
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
  stream_.expires_after(settings_.write_timeout);
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
  finish_response();
}

void BeastSession::finish_response() {
  string_message_.reset();
  header_serializer_.reset();
  header_message_.reset();
  stream_body_ = {};
  if (!keep_alive_ || shutting_down_) return close();
  do_read_header();
}

void BeastSession::shut_down() {
  shutting_down_ = true;
  if (state_ == State::reading) close();  // idle or half-received: nobody is owed an answer
}
// Keep-alive or close:1 ends here

// [[file:../notes/http-session.org::*Keep-alive or close][Keep-alive or close:2]]
void BeastSession::close() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.close();
  sendfile_deadline_.cancel();
  close_file();
  if (hooks_.closed) hooks_.closed(this);
}

void BeastSession::close_file() {
  if (file_fd_ >= 0) ::close(file_fd_);
  file_fd_ = -1;
}
// Keep-alive or close:2 ends here

// [[file:../notes/http-session.org::*The factory and the error responses][The factory and the error responses:1]]
std::shared_ptr<HttpSession> start_http_session(net::io_context& reactor, int fd,
                                                std::shared_ptr<const App> app,
                                                const ServerInfo* server,
                                                SessionSettings settings, SessionHooks hooks) {
  std::shared_ptr<BeastSession> session;
  try {
    session = std::make_shared<BeastSession>(reactor, fd, std::move(app), server, settings,
                                             std::move(hooks));
  } catch (const std::exception& error) {
    std::cerr << "caracal: cannot adopt a connection: " << error.what() << '\n';
    ::close(fd);
    return nullptr;
  }
  session->start();
  return session;
}
// The factory and the error responses:1 ends here

// [[file:../notes/http-session.org::*The factory and the error responses][The factory and the error responses:2]]
Response respond_to_error(const Failure& failure) {
  switch (failure.kind) {
    case FailureKind::bad_request:
      return text_response(400, "Bad Request\n");
    case FailureKind::app_exception:
      std::cerr << "caracal: app error: " << failure.detail << '\n';
      return text_response(500, "An error has occurred.\n");
  }
  return text_response(500, "An error has occurred.\n");
}

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
// The factory and the error responses:2 ends here

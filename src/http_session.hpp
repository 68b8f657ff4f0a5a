// src/http_session.hpp: tangled from notes/http-session.org; edit the note, not this file.

// [[file:../notes/http-session.org::*Errors][Errors:2]]
#pragma once
// Beast stays in http_session.cpp; only Asio's io_context is needed here.
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "app.hpp"
#include "lowlevel_error_handler.hpp"

namespace caracal {

// The timeouts and limits one session obeys (the worker copies them from WorkerSettings).
struct SessionSettings {
  std::chrono::milliseconds first_data_timeout{30000};
  std::chrono::milliseconds persistent_timeout{65000};
  std::chrono::milliseconds write_timeout{30000};
  int max_keep_alive = 999;  // requests per connection; the last one says Connection: close
  RequestLimits limits;      // what a request may weigh (see the low-level error handler)
  LowlevelErrorHandler lowlevel_error_handler;  // empty: the default answers
  // An idle keep-alive connection is handed to the parking lot (if the hooks
  // offer one) after this long; until then it keeps its session.
  std::chrono::milliseconds park_after{5};
};

class HttpSession;

// The session's window onto its worker.
struct SessionHooks {
  // Runs a job on a pool thread (the app, or the next chunk of a stream). The job
  // may answer the client itself, so its end needs no trip back to the reactor.
  std::function<void(std::function<void()>)> run_on_pool;
  // A complete request was received (for the worker's counters); may be empty.
  std::function<void()> request_received;
  // The session closed its socket; called once. May be empty.
  std::function<void(HttpSession*)> closed;
  // Takes an idle connection's socket (its ownership too), the requests it has
  // served, and when it must be closed if the client stays silent. Called on the
  // reactor, just before `closed`. Empty: idle connections keep their session.
  std::function<void(int fd, int requests_served, std::chrono::steady_clock::time_point until)> park;
};

// One connection. The worker holds it weakly, to ask it to shut down.
class HttpSession {
 public:
  virtual ~HttpSession() = default;
  // Close now if waiting for a request; otherwise after the current response,
  // which is then sent with Connection: close.
  virtual void shut_down() = 0;
  // The worker's patience ran out: a request still in the app is answered 503
  // (forced_shutdown) and the connection closed; anything else closes now.
  virtual void cut_off() = 0;
};

// Takes ownership of a connected, non-blocking socket and starts reading.
// Call on the reactor's thread. Returns nullptr (socket closed) if the socket
// cannot be adopted. `remote_addr` empty: ask the socket for its peer.
// `requests_served`: by earlier sessions of this connection (it was parked).
std::shared_ptr<HttpSession> start_http_session(boost::asio::io_context& reactor, int fd,
                                                std::shared_ptr<const App> app,
                                                const ServerInfo* server,
                                                std::shared_ptr<const SessionSettings> settings,
                                                std::shared_ptr<const SessionHooks> hooks,
                                                std::string remote_addr = {},
                                                int requests_served = 0);

// A server certificate and key, loaded once (before any fork) for an ssl:// bind.
struct TlsContext;
// Throws std::exception naming the file when the certificate or the key cannot be loaded.
std::shared_ptr<TlsContext> load_tls_context(const std::string& cert, const std::string& key);
// As start_http_session, for a socket accepted on an ssl:// listener.
std::shared_ptr<HttpSession> start_tls_session(boost::asio::io_context& reactor, int fd,
                                               std::shared_ptr<TlsContext> tls,
                                               std::shared_ptr<const App> app,
                                               const ServerInfo* server,
                                               std::shared_ptr<const SessionSettings> settings,
                                               std::shared_ptr<const SessionHooks> hooks);

namespace detail {
// "127.0.0.1", "::1", or "unix" for the peer of a connected socket.
std::string peer_address(int fd);

// The bytes of a response with a string body on a connection that stays open:
// what the pool thread sends in one piece (see "Answering from the pool thread").
std::string kept_alive_response_bytes(const Response& response, int version, bool head_request);
// The head alone, with Content-Length when `content_length` is given.
std::string kept_alive_head(const Response& response, int version,
                            std::optional<std::uint64_t> content_length);

// What the strict reading of a complete request head found.
struct HeadVerdict {
  std::optional<Failure> failure;  // empty: the head may go to the parser
  std::string method, target;      // as far as the request line could be read
};
// `head` runs up to and including the empty line that ends it.
HeadVerdict check_request_head(std::string_view head, const RequestLimits& limits);
// For a head still arriving: the limit it has already overrun, if any.
std::optional<FailureKind> check_partial_head(std::string_view buffered, const RequestLimits& limits);
}  // namespace detail

}  // namespace caracal
// Errors:2 ends here

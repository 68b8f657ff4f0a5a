// src/http_session.hpp: tangled from notes/http-session.org; edit the note, not this file.

// [[file:../notes/http-session.org::*Errors][Errors:2]]
#pragma once
// Beast stays in http_session.cpp; only Asio's io_context is needed here.
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "app.hpp"

namespace caracal {

// The timeouts and limits one session obeys (the worker copies them from WorkerSettings).
struct SessionSettings {
  std::chrono::milliseconds first_data_timeout{30000};
  std::chrono::milliseconds persistent_timeout{65000};
  std::chrono::milliseconds write_timeout{30000};
  int max_keep_alive = 999;  // requests per connection; the last one says Connection: close
};

class HttpSession;

// The session's window onto its worker. All three are called on the reactor thread.
struct SessionHooks {
  // Runs a job on a pool thread (the app, or the next chunk of a stream).
  std::function<void(std::function<void()>)> run_on_pool;
  // A complete request was received (for the worker's counters); may be empty.
  std::function<void()> request_received;
  // The session closed its socket; called once. May be empty.
  std::function<void(HttpSession*)> closed;
};

// One connection. The worker holds it weakly, to ask it to shut down.
class HttpSession {
 public:
  virtual ~HttpSession() = default;
  // Close now if waiting for a request; otherwise after the current response,
  // which is then sent with Connection: close.
  virtual void shut_down() = 0;
};

// Takes ownership of a connected, non-blocking socket and starts reading.
// Call on the reactor's thread. Returns nullptr (socket closed) if the socket
// cannot be adopted.
std::shared_ptr<HttpSession> start_http_session(boost::asio::io_context& reactor, int fd,
                                                std::shared_ptr<const App> app,
                                                const ServerInfo* server,
                                                SessionSettings settings, SessionHooks hooks);

// The kinds of failure that turn into a response (see the table in the note).
enum class FailureKind { bad_request, app_exception };
struct Failure {
  FailureKind kind;
  std::string detail;  // for the log only, never sent
};
// The one place where a failure becomes a response.
Response respond_to_error(const Failure& failure);

namespace detail {
// "127.0.0.1", "::1", or "unix" for the peer of a connected socket.
std::string peer_address(int fd);
}  // namespace detail

}  // namespace caracal
// Errors:2 ends here

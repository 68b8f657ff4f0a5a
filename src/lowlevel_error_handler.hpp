// src/lowlevel_error_handler.hpp: tangled from notes/lowlevel-error-handler.org; edit the note, not this file.

// [[file:../notes/lowlevel-error-handler.org::*The interface][The interface:2]]
#pragma once
// Beast-free and Asio-free: configuration and the worker include it.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "app.hpp"

namespace caracal {

// Every way a request can end early; the taxonomy table gives each its row.
enum class FailureKind {
  app_exception, unsendable_body, bad_request, unknown_method, unknown_transfer_coding,
  unsupported_version, request_line_too_long, header_too_large, body_too_large,
  body_timeout, forced_shutdown, stream_failed, head_timeout, client_gone,
  count  // not a failure: how many kinds there are, for a test that visits each one
};

struct Failure {
  FailureKind kind;
  std::string detail;                 // for the log and development bodies, never production
  std::string exception_type = {};    // "std::runtime_error" when an exception caused it
  std::exception_ptr exception = {};  // that exception, for a handler that rethrows to inspect it
};

// One row of the taxonomy; status 0 means no response can be sent.
struct FailureRule {
  FailureKind kind;
  std::string_view name;
  int status;
  bool logged, handler_called, closes_connection;
};
const FailureRule& rule_for(FailureKind kind);

namespace detail {
// The row of `kind`, or nullptr when the table lacks one (rule_for then answers 500).
const FailureRule* find_rule(FailureKind kind);
// `text` on one line: control bytes and backslashes written as escapes (\n, \x1b, \\).
std::string escaped_for_log(std::string_view text);
}  // namespace detail
// The interface:2 ends here

// [[file:../notes/lowlevel-error-handler.org::*The interface][The interface:3]]
// Puma's lowlevel_error_handler: (error, env, status) -> the response to send.
using LowlevelErrorHandler =
    std::function<Response(const Failure& error, const Request& env, int status)>;

// The one place where a failure becomes a response: one log line, then the
// handler (or the default), and a canned 500 if the handler throws.
// An empty `handler` means default_error_response.
Response answer_failure(const Failure& failure, const Request& env,
                        const LowlevelErrorHandler& handler, std::ostream& log);

// The answer when no handler is set: the status and a generic body, or, in the
// development environment, a body that names the exception and its message.
Response default_error_response(const Failure& failure, const Request& env, int status);

// The exception currently being handled, as a Failure of `kind` (call inside catch).
Failure failure_from_current_exception(FailureKind kind);

}  // namespace caracal
// The interface:3 ends here

// [[file:../notes/lowlevel-error-handler.org::*Request limits][Request limits:1]]
namespace caracal {
// What a client may send before the session refuses it (see the table in the note).
struct RequestLimits {
  std::size_t max_request_line = 12 * 1024;      // bytes, request line without CRLF; 414
  std::size_t max_header_bytes = 112 * 1024;     // bytes of field lines; 431
  std::size_t max_header_fields = 100;           // 431
  std::uint64_t max_body_bytes = 64ull << 20;    // http_content_length_limit; 413
};
}  // namespace caracal
// Request limits:1 ends here

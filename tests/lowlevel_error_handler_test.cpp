// tests/lowlevel_error_handler_test.cpp: tangled from notes/lowlevel-error-handler.org; edit the note, not this file.

// [[file:../notes/lowlevel-error-handler.org::*Tests][Tests:2]]
#include <catch2/catch.hpp>

#include <sstream>
#include <stdexcept>

#include "lowlevel_error_handler.hpp"

using caracal::Failure;
using caracal::FailureKind;

namespace {
constexpr std::string_view kSecret = "password=hunter2";

// A Failure as the session builds it when the app throws.
Failure thrown(const std::string& message) {
  try {
    throw std::runtime_error(message);
  } catch (...) {
    return caracal::failure_from_current_exception(FailureKind::app_exception);
  }
}

// A request environment as far as a parse error knows it.
caracal::Request env_from(const caracal::ServerInfo* server) {
  caracal::Request env;
  env.method = "GET";
  env.path = "/boom";
  env.remote_addr = "127.0.0.1";
  env.server = server;
  return env;
}

std::string body_of(const caracal::Response& response) { return std::get<std::string>(response.body); }
}  // namespace

// The table in the note is the policy; a kind without a row would answer with row 0's status.
TEST_CASE("every failure kind has exactly its own row in the taxonomy", "[lowlevel_error_handler]") {
  for (int k = 0; k < static_cast<int>(FailureKind::count); ++k) {
    INFO("failure kind number " << k);
    const caracal::FailureRule* rule = caracal::detail::find_rule(static_cast<FailureKind>(k));
    REQUIRE(rule != nullptr);
    CHECK(static_cast<int>(rule->kind) == k);
  }
  CHECK(caracal::detail::find_rule(FailureKind::count) == nullptr);
  CHECK(caracal::rule_for(FailureKind::unknown_method).status == 501);
  CHECK(caracal::rule_for(FailureKind::client_gone).status == 0);
}
// Tests:2 ends here

// [[file:../notes/lowlevel-error-handler.org::*Tests][Tests:3]]
// Exception text can carry secrets; strangers must see only the status.
TEST_CASE("in production the default body is the status and nothing of the exception", "[lowlevel_error_handler]") {
  caracal::ServerInfo production;
  production.environment = "production";
  std::ostringstream log;
  auto response = caracal::answer_failure(thrown(std::string(kSecret)), env_from(&production), {}, log);
  CHECK(response.status == 500);
  CHECK(body_of(response) == "500 Internal Server Error\n");
  CHECK(log.str().find(kSecret) != std::string::npos);
}

// The developer who caused the crash should see it without opening the log.
TEST_CASE("in development the default body names the exception and its message", "[lowlevel_error_handler]") {
  caracal::ServerInfo development;
  development.environment = "development";
  std::ostringstream log;
  auto response = caracal::answer_failure(thrown("Simulated crash before app"), env_from(&development), {}, log);
  CHECK(body_of(response) ==
        "500 Internal Server Error\ncaracal caught this error: Simulated crash before app (std::runtime_error)\n");
}

// An operator reading the log needs the request, not just the error.
TEST_CASE("one log line names status, kind, method, path and client", "[lowlevel_error_handler]") {
  std::ostringstream log;
  caracal::answer_failure({FailureKind::bad_request, "obs-fold in a field", "", nullptr}, env_from(nullptr), {}, log);
  CHECK(log.str() == "caracal: 400 bad_request: obs-fold in a field [GET /boom from 127.0.0.1]\n");
}

// A newline in an exception message or a path would let a stranger forge a second log line.
TEST_CASE("control characters in the detail and the path are escaped in the one log line", "[lowlevel_error_handler]") {
  auto env = env_from(nullptr);
  env.path = "/a\r\ncaracal: 200 fake";
  std::ostringstream log;
  caracal::answer_failure(thrown("first\nsecond\x1b[31m\\"), env, {}, log);
  CHECK(log.str() == "caracal: 500 app_exception: first\\nsecond\\x1b[31m\\\\ (std::runtime_error) "
                     "[GET /a\\r\\ncaracal: 200 fake from 127.0.0.1]\n");
}
// Tests:3 ends here

// [[file:../notes/lowlevel-error-handler.org::*Tests][Tests:4]]
// Puma's contract: the handler sees the error, the env and the chosen status, and its answer wins.
TEST_CASE("a handler receives error, env and status and its response is used", "[lowlevel_error_handler]") {
  caracal::LowlevelErrorHandler handler = [](const Failure& error, const caracal::Request& env, int status) {
    return caracal::text_response(status, error.detail + "|" + env.path + "|" + env.remote_addr);
  };
  std::ostringstream log;
  auto response = caracal::answer_failure({FailureKind::unknown_method, "BREW", "", nullptr},
                                          env_from(nullptr), handler, log);
  CHECK(response.status == 501);
  CHECK(body_of(response) == "BREW|/boom|127.0.0.1");
}

// The last line of defence must not be the thing that takes a worker down.
TEST_CASE("a handler that throws is replaced by a canned 500 and logged", "[lowlevel_error_handler]") {
  caracal::LowlevelErrorHandler handler = [](const Failure&, const caracal::Request&, int) -> caracal::Response {
    throw std::logic_error("handler bug");
  };
  std::ostringstream log;
  auto response = caracal::answer_failure(thrown("first"), env_from(nullptr), handler, log);
  CHECK(response.status == 500);
  CHECK(body_of(response) == "An error has occurred.\n");
  CHECK(log.str().find("lowlevel_error_handler threw: handler bug") != std::string::npos);
}

// Scanners open connections and say nothing; that must cost no log line and no handler call.
TEST_CASE("silent failures are neither logged nor handed to the handler", "[lowlevel_error_handler]") {
  bool called = false;
  caracal::LowlevelErrorHandler handler = [&called](const Failure&, const caracal::Request&, int status) {
    called = true;
    return caracal::text_response(status, "");
  };
  std::ostringstream log;
  caracal::answer_failure({FailureKind::head_timeout, "no request", "", nullptr}, env_from(nullptr), handler, log);
  CHECK_FALSE(called);
  CHECK(log.str().empty());
}
// Tests:4 ends here

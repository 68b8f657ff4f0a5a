// src/lowlevel_error_handler.cpp: tangled from notes/lowlevel-error-handler.org; edit the note, not this file.

// [[file:../notes/lowlevel-error-handler.org::*The rows as data][The rows as data:2]]
#include "lowlevel_error_handler.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <memory>
#include <ostream>
#include <typeinfo>

namespace caracal {
namespace {

using K = FailureKind;
// kind, name, status, logged, handler called, closes the connection
constexpr FailureRule kRules[] = {
    {K::app_exception, "app_exception", 500, true, true, false},
    {K::unsendable_body, "unsendable_body", 500, true, true, false},
    {K::bad_request, "bad_request", 400, true, true, true},
    {K::unknown_method, "unknown_method", 501, true, true, true},
    {K::unknown_transfer_coding, "unknown_transfer_coding", 501, true, true, true},
    {K::unsupported_version, "unsupported_version", 505, true, true, true},
    {K::request_line_too_long, "request_line_too_long", 414, true, true, true},
    {K::header_too_large, "header_too_large", 431, true, true, true},
    {K::body_too_large, "body_too_large", 413, true, true, true},
    {K::body_timeout, "body_timeout", 408, true, true, true},
    {K::forced_shutdown, "forced_shutdown", 503, true, true, true},
    {K::stream_failed, "stream_failed", 0, true, false, true},
    {K::head_timeout, "head_timeout", 0, false, false, true},
    {K::client_gone, "client_gone", 0, false, false, true},
};

}  // namespace

const FailureRule* detail::find_rule(FailureKind kind) {
  for (const auto& rule : kRules)
    if (rule.kind == kind) return &rule;
  return nullptr;
}

const FailureRule& rule_for(FailureKind kind) {
  const FailureRule* rule = detail::find_rule(kind);
  return rule ? *rule : kRules[0];  // a 500 is the safe answer; the test proves every kind has its row
}
// The rows as data:2 ends here

// [[file:../notes/lowlevel-error-handler.org::*Answering a failure][Answering a failure:1]]
namespace {
void log_failure(const Failure& failure, const FailureRule& rule, const Request& env,
                 std::ostream& log) {
  auto shown = [](const std::string& text, const char* unknown) {
    return text.empty() ? std::string(unknown) : detail::escaped_for_log(text);
  };
  std::string line = "caracal: " + (rule.status ? std::to_string(rule.status) + " " : "") +
                     std::string(rule.name) + ": " + detail::escaped_for_log(failure.detail);
  if (!failure.exception_type.empty()) line += " (" + failure.exception_type + ")";
  line += " [" + shown(env.method, "-") + " " + shown(env.path, "-") + " from " +
          shown(env.remote_addr, "unknown") + "]\n";
  log << line << std::flush;
}

Response ask_handler(const Failure& failure, const Request& env, int status,
                     const LowlevelErrorHandler& handler, std::ostream& log) {
  if (!handler) return default_error_response(failure, env, status);
  try {
    return handler(failure, env, status);
  } catch (...) {
    const Failure broken = failure_from_current_exception(FailureKind::app_exception);
    log << "caracal: lowlevel_error_handler threw: " + detail::escaped_for_log(broken.detail) + "\n" << std::flush;
    return text_response(500, "An error has occurred.\n");
  }
}
}  // namespace

Response answer_failure(const Failure& failure, const Request& env,
                        const LowlevelErrorHandler& handler, std::ostream& log) {
  const FailureRule& rule = rule_for(failure.kind);
  if (rule.logged) log_failure(failure, rule, env, log);
  if (!rule.handler_called) return Response{rule.status, {}, std::string()};  // status 0: send nothing
  return ask_handler(failure, env, rule.status, handler, log);
}
// Answering a failure:1 ends here

// [[file:../notes/lowlevel-error-handler.org::*Answering a failure][Answering a failure:4]]
std::string detail::escaped_for_log(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (const unsigned char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += std::string("\\x") + hex[c >> 4] + hex[c & 15];
    else out += static_cast<char>(c);
  }
  return out;
}
// Answering a failure:4 ends here

// [[file:../notes/lowlevel-error-handler.org::*The default answer][The default answer:1]]
Response default_error_response(const Failure& failure, const Request& env, int status) {
  std::string body = std::to_string(status) + " " + std::string(reason_phrase(status)) + "\n";
  const bool development = env.server && env.server->environment == "development";
  if (development) {
    body += "caracal caught this error: " + failure.detail;
    body += " (" + (failure.exception_type.empty() ? std::string(rule_for(failure.kind).name)
                                                   : failure.exception_type) + ")\n";
  }
  return text_response(status, std::move(body));
}
// The default answer:1 ends here

// [[file:../notes/lowlevel-error-handler.org::*The default answer][The default answer:2]]
namespace {
std::string demangled(const char* name) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> text(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                              std::free);
  return status == 0 && text ? std::string(text.get()) : std::string(name);
}
}  // namespace

Failure failure_from_current_exception(FailureKind kind) {
  Failure failure{kind, "a thrown value that is not a std::exception", "", std::current_exception()};
  try {
    throw;
  } catch (const std::exception& error) {
    failure.detail = error.what();
    failure.exception_type = demangled(typeid(error).name());
  } catch (...) {
  }
  return failure;
}

}  // namespace caracal
// The default answer:2 ends here

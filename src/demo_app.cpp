// src/demo_app.cpp: tangled from notes/demo-app.org; edit the note, not this file.

// [[file:../notes/demo-app.org::*The routes][The routes:4]]
#include "demo_app.hpp"

#include <unistd.h>

#include <charconv>
#include <string>
#include <thread>

namespace caracal {
namespace {

constexpr const char* kPlainText = "text/plain";
// The routes:4 ends here

// [[file:../notes/demo-app.org::*Hello][Hello:1]]
Response say_hello(Request&) { return text_response(200, "Hello, world!", kPlainText); }
// Hello:1 ends here

// [[file:../notes/demo-app.org::*Sleep][Sleep:1]]
}  // namespace

std::optional<std::chrono::milliseconds> detail::demo_sleep_duration(std::string_view query) {
  std::optional<std::string> text = query_param(query, "ms");
  if (!text || text->empty()) return std::nullopt;
  long long ms = 0;
  auto [end, error] = std::from_chars(text->data(), text->data() + text->size(), ms);
  if (error != std::errc() || end != text->data() + text->size()) return std::nullopt;
  if (ms < 0 || ms > kLongestDemoSleep.count()) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

namespace {

Response sleep_then_answer(Request& request) {
  std::optional<std::chrono::milliseconds> duration = detail::demo_sleep_duration(request.query);
  if (!duration)
    return text_response(400, "ms must be a whole number from 0 to 60000\n", kPlainText);
  std::this_thread::sleep_for(*duration);
  return text_response(200, "slept " + std::to_string(duration->count()) + " ms\n", kPlainText);
}
// Sleep:1 ends here

// [[file:../notes/demo-app.org::*Pid, echo and stats][Pid, echo and stats:1]]
Response report_pid(Request&) { return text_response(200, std::to_string(::getpid()), kPlainText); }

Response echo_request(Request& request) {
  std::string type(request.headers.find("Content-Type").value_or("application/octet-stream"));
  Response response = text_response(200, request.body, std::move(type));
  response.headers.set("X-Request-Method", request.method);
  return response;
}

Response report_stats(Request& request) {
  bool has_stats = request.server != nullptr && request.server->stats_json;
  return text_response(200, has_stats ? request.server->stats_json() : "{}", "application/json");
}
// Pid, echo and stats:1 ends here

// [[file:../notes/demo-app.org::*The route table][The route table:1]]
struct Route {
  std::string_view path;
  Response (*answer)(Request&);
};

constexpr Route kRoutes[] = {
    {"/", say_hello},       {"/hello", say_hello}, {"/sleep", sleep_then_answer},
    {"/pid", report_pid},   {"/echo", echo_request}, {"/stats", report_stats},
};

Response route(Request& request) {
  for (const Route& candidate : kRoutes)
    if (request.path == candidate.path) return candidate.answer(request);
  return text_response(404, "Not Found\n", kPlainText);
}

}  // namespace

App demo_app() { return route; }

}  // namespace caracal
// The route table:1 ends here

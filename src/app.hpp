// src/app.hpp: tangled from notes/app.org; edit the note, not this file.

// [[file:../notes/app.org::*Headers][Headers:2]]
#pragma once
// Kept free of Asio and Beast: every app and every test includes this header.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

namespace caracal {

// A header list that keeps order and duplicates; lookups are case-insensitive.
struct Headers {
  std::vector<std::pair<std::string, std::string>> fields;
  // The first field of that name; the view dies at the next set() or add().
  std::optional<std::string_view> find(std::string_view name) const;
  void set(std::string name, std::string value);    // replace all of that name
  void add(std::string name, std::string value);
};

namespace detail {
// ASCII case-insensitive equality, for header names and tokens such as "bytes".
bool equals_ignoring_case(std::string_view a, std::string_view b);
}  // namespace detail
// Headers:2 ends here

// [[file:../notes/app.org::*The request environment][The request environment:1]]
// What a request knows about the process serving it (Puma's env["puma.*"]).
struct ServerInfo {
  int worker_index = 0;                        // 0 in single mode
  std::function<std::string()> stats_json;     // this worker's counters as a JSON object
  std::string environment = "development";
};

// The request environment handed to an app (Rack's env).
struct Request {
  std::string method;          // "GET"
  std::string target;          // "/a/b?x=1" as received
  std::string path;            // "/a/b" (percent-decoding is the app's business)
  std::string query;           // "x=1"
  int version = 11;            // 10 or 11
  Headers headers;
  std::string body;            // whole body, chunked already decoded
  std::string remote_addr;     // "127.0.0.1" or "::1" or "unix"
  const ServerInfo* server = nullptr;
};
// The request environment:1 ends here

// [[file:../notes/app.org::*The response][The response:1]]
// A byte range of a file on disk; the app sets Content-Length to `length`.
struct FileBody { std::string path; std::uint64_t offset = 0; std::uint64_t length = 0; };
// A stream yields chunks until it returns std::nullopt; sent chunked (HTTP/1.1) or until close (1.0).
struct StreamBody { std::function<std::optional<std::string>()> next; };
using Body = std::variant<std::string, FileBody, StreamBody>;

struct Response {
  int status = 200;
  Headers headers;
  Body body;
};

// An app answers a request; middleware is an App that holds another App.
using App = std::function<Response(Request&)>;
// The response:1 ends here

// [[file:../notes/app.org::*Building a stack of middleware][Building a stack of middleware:1]]
// Collects middleware in the order written, then wraps an app in all of them.
class AppBuilder {
 public:
  template <class M, class... Args>
  AppBuilder& use(Args&&... args);
  // Wraps `inner` in every layer, the first use() outermost.
  App run(App inner) const;

 private:
  // Each layer turns the app inside it into the app outside it.
  std::vector<std::function<App(App)>> layers_;
};

template <class M, class... Args>
AppBuilder& AppBuilder::use(Args&&... args) {
  layers_.push_back(
      [stored = std::tuple<Args...>(std::forward<Args>(args)...)](App next) -> App {
        return std::apply(
            [&next](auto&... arg) { return App(M(std::move(next), arg...)); }, stored);
      });
  return *this;
}
// Building a stack of middleware:1 ends here

// [[file:../notes/app.org::*The crashing middleware of the root note][The crashing middleware of the root note:1]]
// The C++ counterpart of the root note's LowlevelErrorTest middleware: it throws
// std::runtime_error("Simulated crash before app") and never calls `next`.
struct CrashBeforeApp {
  explicit CrashBeforeApp(App next) : next(std::move(next)) {}
  Response operator()(Request& request);
  App next;  // kept to honour the middleware shape; deliberately never called
};
// The crashing middleware of the root note:1 ends here

// [[file:../notes/app.org::*Helpers apps need][Helpers apps need:1]]
// The standard reason phrase for `status`, or "Unknown".
std::string_view reason_phrase(int status);
// The decoded value of the first `name` in `query` ("a=1&b=x%20y"), or nullopt.
std::optional<std::string> query_param(std::string_view query, std::string_view name);
// `path` with %XX decoded; nullopt for a bad escape or %00. '+' stays '+'.
std::optional<std::string> percent_decode_path(std::string_view path);
// A response with a string body and a Content-Type (by default UTF-8 plain text).
Response text_response(int status, std::string body,
                       std::string content_type = "text/plain; charset=utf-8");

}  // namespace caracal
// Helpers apps need:1 ends here

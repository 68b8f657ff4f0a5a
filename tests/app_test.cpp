// tests/app_test.cpp: tangled from notes/app.org; edit the note, not this file.

// [[file:../notes/app.org::*Headers][Headers:7]]
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "app.hpp"

using caracal::App;
using caracal::AppBuilder;
using caracal::Headers;
using caracal::Request;
using caracal::Response;

// Clients spell header names however they like; RFC 9110 says case does not matter.
TEST_CASE("a header is found whatever the case of its name", "[app][headers]") {
  Headers headers;
  headers.add("Content-Type", "text/html");
  REQUIRE(headers.find("content-type") == "text/html");
  REQUIRE(headers.find("CONTENT-TYPE") == "text/html");
  REQUIRE_FALSE(headers.find("Content-Length").has_value());
}

// Set-Cookie may legitimately repeat, so add() must never merge or reorder.
TEST_CASE("add keeps duplicates in the order they were added", "[app][headers]") {
  Headers headers;
  headers.add("Set-Cookie", "a=1");
  headers.add("Vary", "Accept");
  headers.add("set-cookie", "b=2");
  REQUIRE(headers.fields.size() == 3);
  REQUIRE(headers.fields[2].second == "b=2");
  REQUIRE(headers.find("Set-Cookie") == "a=1");
}

// An app that sets a header twice must send it once, where it was first placed.
TEST_CASE("set replaces every field of that name and keeps the first position", "[app][headers]") {
  Headers headers;
  headers.add("X-Id", "1");
  headers.add("Vary", "Accept");
  headers.add("x-id", "2");
  headers.set("X-ID", "3");
  REQUIRE(headers.fields.size() == 2);
  REQUIRE(headers.fields[0] == std::pair<std::string, std::string>("X-ID", "3"));
  REQUIRE(headers.fields[1].first == "Vary");
}

// Setting a header nobody set before is the common case and must just append it.
TEST_CASE("set appends a header that was absent", "[app][headers]") {
  Headers headers;
  headers.add("Vary", "Accept");
  headers.set("Content-Length", "13");
  REQUIRE(headers.fields.size() == 2);
  REQUIRE(headers.find("content-length") == "13");
}
// Headers:7 ends here

// [[file:../notes/app.org::*Building a stack of middleware][Building a stack of middleware:3]]
namespace {

// Logs its name on the way in and on the way out, to show how layers nest.
struct Trace {
  Trace(App next, std::vector<std::string>& log, std::string name)
      : next(std::move(next)), log(log), name(std::move(name)) {}
  Response operator()(Request& request) {
    log.push_back(name + " in");
    Response response = next(request);
    log.push_back(name + " out");
    return response;
  }
  App next;
  std::vector<std::string>& log;
  std::string name;
};

// Removes a path prefix before the app and tags the response after it.
struct StripPrefix {
  StripPrefix(App next, std::string prefix) : next(std::move(next)), prefix(std::move(prefix)) {}
  Response operator()(Request& request) {
    if (request.path.rfind(prefix, 0) == 0) request.path.erase(0, prefix.size());
    Response response = next(request);
    response.headers.add("X-Stripped", prefix);
    return response;
  }
  App next;
  std::string prefix;
};

// The innermost app of these tests: answers with the path it was given.
Response echo_path(Request& request) { return caracal::text_response(200, request.path); }

}  // namespace

// Rack's rule, which readers of config.ru rely on: the first `use` sees the request first.
TEST_CASE("the first middleware used is the outermost", "[app][builder]") {
  std::vector<std::string> log;
  AppBuilder builder;
  builder.use<Trace>(log, "outer").use<Trace>(log, "inner");
  App app = builder.run(echo_path);
  Request request;
  app(request);
  REQUIRE(log == std::vector<std::string>{"outer in", "inner in", "inner out", "outer out"});
}

// Middleware earns its keep by changing the request on the way in and the response on the way out.
TEST_CASE("a middleware may rewrite the request and the response", "[app][builder]") {
  App app = AppBuilder().use<StripPrefix>(std::string("/api")).run(echo_path);
  Request request;
  request.path = "/api/users";
  Response response = app(request);
  REQUIRE(std::get<std::string>(response.body) == "/users");
  REQUIRE(response.headers.find("x-stripped") == "/api");
}

// A builder with no middleware must not get in the way of the app.
TEST_CASE("a builder without middleware runs the app unchanged", "[app][builder]") {
  App app = AppBuilder().run(echo_path);
  Request request;
  request.path = "/plain";
  REQUIRE(std::get<std::string>(app(request).body) == "/plain");
}
// Building a stack of middleware:3 ends here

// [[file:../notes/app.org::*The crashing middleware of the root note][The crashing middleware of the root note:3]]
// The low-level error handler can only catch what the builder lets escape, untouched.
TEST_CASE("the crashing middleware throws through the builder before the app runs", "[app][builder]") {
  bool app_ran = false;
  App app = AppBuilder().use<caracal::CrashBeforeApp>().run([&app_ran](Request&) {
    app_ran = true;
    return Response{};
  });
  Request request;
  REQUIRE_THROWS_MATCHES(app(request), std::runtime_error,
                         Catch::Matchers::Message("Simulated crash before app"));
  REQUIRE_FALSE(app_ran);
}
// The crashing middleware of the root note:3 ends here

// [[file:../notes/app.org::*Reason phrases][Reason phrases:6]]
// The session writes these into status lines; a typo would be visible to every client.
TEST_CASE("reason phrases name the common codes and admit unknown ones", "[app][helpers]") {
  REQUIRE(caracal::reason_phrase(200) == "OK");
  REQUIRE(caracal::reason_phrase(404) == "Not Found");
  REQUIRE(caracal::reason_phrase(416) == "Range Not Satisfiable");
  REQUIRE(caracal::reason_phrase(799) == "Unknown");
}
// Reason phrases:6 ends here

// [[file:../notes/app.org::*Percent-decoding][Percent-decoding:5]]
// File names with spaces or non-ASCII letters arrive escaped and must map to the real name.
TEST_CASE("a path's escapes are decoded and its plus signs kept", "[app][helpers]") {
  REQUIRE(caracal::percent_decode_path("/a%20b/c+d") == "/a b/c+d");
  REQUIRE(caracal::percent_decode_path("/caf%C3%a9") == "/caf\xC3\xA9");
  REQUIRE(caracal::percent_decode_path("/") == "/");
}

// A NUL would cut the file name short at open(); a broken escape has no honest meaning.
TEST_CASE("a path with %00 or a malformed escape is refused", "[app][helpers]") {
  REQUIRE_FALSE(caracal::percent_decode_path("/etc/passwd%00.html").has_value());
  REQUIRE_FALSE(caracal::percent_decode_path("/a%2").has_value());
  REQUIRE_FALSE(caracal::percent_decode_path("/a%").has_value());
  REQUIRE_FALSE(caracal::percent_decode_path("/a%zz").has_value());
}
// Percent-decoding:5 ends here

// [[file:../notes/app.org::*Query parameters][Query parameters:2]]
// The demo app's /sleep?ms=N and most apps read their parameters this way.
TEST_CASE("a query parameter is found and decoded", "[app][helpers]") {
  REQUIRE(caracal::query_param("ms=250", "ms") == "250");
  REQUIRE(caracal::query_param("a=1&q=hello+big%20world&b=2", "q") == "hello big world");
  REQUIRE(caracal::query_param("my%20name=x", "my name") == "x");
}

// Absent, empty and repeated parameters are distinct cases an app must be able to tell apart.
TEST_CASE("absent, valueless and repeated query parameters behave predictably", "[app][helpers]") {
  REQUIRE_FALSE(caracal::query_param("a=1&b=2", "c").has_value());
  REQUIRE_FALSE(caracal::query_param("", "a").has_value());
  REQUIRE(caracal::query_param("debug&a=1", "debug") == "");
  REQUIRE(caracal::query_param("a=&b=2", "a") == "");
  REQUIRE(caracal::query_param("a=1&a=2", "a") == "1");
}

// A malformed value must not be silently half-decoded into something the client never sent.
TEST_CASE("a query parameter with a malformed escape has no value", "[app][helpers]") {
  REQUIRE_FALSE(caracal::query_param("ms=1%zz", "ms").has_value());
  REQUIRE_FALSE(caracal::query_param("ms=%00", "ms").has_value());
}
// Query parameters:2 ends here

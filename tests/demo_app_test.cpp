// tests/demo_app_test.cpp: tangled from notes/demo-app.org; edit the note, not this file.

// [[file:../notes/demo-app.org::*The routes][The routes:6]]
#include <catch2/catch.hpp>

#include <unistd.h>

#include <stdexcept>
#include <string>
#include <variant>

#include "demo_app.hpp"

using caracal::Request;
using caracal::Response;

namespace {

Response call(std::string method, std::string path, std::string query = "", std::string body = "") {
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.query = std::move(query);
  request.target = request.path + (request.query.empty() ? "" : "?" + request.query);
  request.body = std::move(body);
  return caracal::demo_app()(request);
}

std::string body_of(const Response& response) { return std::get<std::string>(response.body); }

}  // namespace
// The routes:6 ends here

// [[file:../notes/demo-app.org::*Hello][Hello:2]]
// Benchmarks and integration tests compare these exact 13 bytes.
TEST_CASE("/ and /hello answer Hello, world! as plain text", "[demo]") {
  for (const char* path : {"/", "/hello"}) {
    Response response = call("GET", path);
    REQUIRE(response.status == 200);
    REQUIRE(body_of(response) == "Hello, world!");
    REQUIRE(body_of(response).size() == 13);
    REQUIRE(response.headers.find("Content-Type") == "text/plain");
  }
}
// Hello:2 ends here

// [[file:../notes/demo-app.org::*Sleep][Sleep:2]]
// Tests that fill the pool read this line back to know the sleep really ran.
TEST_CASE("/sleep sleeps the requested time and says so", "[demo][sleep]") {
  Response response = call("GET", "/sleep", "ms=5");
  REQUIRE(response.status == 200);
  REQUIRE(body_of(response) == "slept 5 ms\n");
  REQUIRE(body_of(call("GET", "/sleep", "ms=0")) == "slept 0 ms\n");
}

// A typo must not park a pool thread for hours or sleep a guessed duration.
TEST_CASE("/sleep with a missing, malformed or too long duration is 400", "[demo][sleep]") {
  for (const char* query : {"", "ms=", "ms=abc", "ms=-1", "ms=1.5", "ms=60001",
                            "ms=99999999999999999999", "seconds=1"})
    REQUIRE(call("GET", "/sleep", query).status == 400);
}

// The limit is inclusive: a one-minute sleep is a legitimate timeout test.
TEST_CASE("the sleep duration accepts exactly up to one minute", "[demo][sleep]") {
  using caracal::detail::demo_sleep_duration;
  REQUIRE(demo_sleep_duration("ms=60000") == std::chrono::milliseconds(60000));
  REQUIRE(demo_sleep_duration("a=1&ms=250") == std::chrono::milliseconds(250));
  REQUIRE_FALSE(demo_sleep_duration("ms=60001").has_value());
}
// Sleep:2 ends here

// [[file:../notes/demo-app.org::*Pid, echo and stats][Pid, echo and stats:2]]
// Cluster tests tell workers apart by this number.
TEST_CASE("/pid answers the serving process's pid", "[demo]") {
  REQUIRE(body_of(call("GET", "/pid")) == std::to_string(::getpid()));
}

// Session tests send bodies (chunked or not) and check they arrive unchanged.
TEST_CASE("/echo returns the body and reports the method", "[demo]") {
  Response response = call("POST", "/echo", "", std::string("a\0b\r\n", 5));
  REQUIRE(response.status == 200);
  REQUIRE(body_of(response) == std::string("a\0b\r\n", 5));
  REQUIRE(response.headers.find("X-Request-Method") == "POST");
}

// Monitoring reads the worker's own counters, verbatim.
TEST_CASE("/stats answers the server's stats JSON", "[demo]") {
  caracal::ServerInfo server;
  server.stats_json = [] { return std::string(R"({"requests":3})"); };
  Request request;
  request.method = "GET";
  request.path = "/stats";
  request.server = &server;
  Response response = caracal::demo_app()(request);
  REQUIRE(body_of(response) == R"({"requests":3})");
  REQUIRE(response.headers.find("Content-Type") == "application/json");
}

// Outside a server there are no counters, and that is not an error.
TEST_CASE("/stats without server information answers an empty object", "[demo]") {
  REQUIRE(body_of(call("GET", "/stats")) == "{}");
  caracal::ServerInfo server;  // stats_json left empty
  Request request;
  request.path = "/stats";
  request.server = &server;
  REQUIRE(body_of(caracal::demo_app()(request)) == "{}");
}
// Pid, echo and stats:2 ends here

// [[file:../notes/demo-app.org::*The route table][The route table:2]]
// Unknown paths must be an ordinary 404, and routes match exactly.
TEST_CASE("an unknown path is 404", "[demo]") {
  REQUIRE(call("GET", "/nothing").status == 404);
  REQUIRE(call("GET", "/hello/").status == 404);
  REQUIRE(call("GET", "/HELLO").status == 404);
}

// The builder from the app note wraps the demo app like any other.
TEST_CASE("the crashing middleware stops the demo app before it answers", "[demo]") {
  caracal::App app = caracal::AppBuilder().use<caracal::CrashBeforeApp>().run(caracal::demo_app());
  Request request;
  request.method = "GET";
  request.path = "/hello";
  REQUIRE_THROWS_AS(app(request), std::runtime_error);
}
// The route table:2 ends here

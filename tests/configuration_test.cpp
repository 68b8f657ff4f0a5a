// tests/configuration_test.cpp: tangled from notes/configuration.org; edit the note, not this file.

// [[file:../notes/configuration.org::*Bind URIs][Bind URIs:5]]
#include "configuration.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <map>

using caracal::BindUri;

// The tests bind loopback addresses; the parser must take them apart exactly.
TEST_CASE("a tcp bind yields host, port and the default backlog") {
  auto bind = caracal::parse_bind_uri("tcp://127.0.0.1:9292");
  REQUIRE(bind.ok());
  CHECK(bind->scheme == BindUri::Scheme::tcp);
  CHECK(bind->host == "127.0.0.1");
  CHECK(bind->port == 9292);
  CHECK(bind->backlog == 1024);
  CHECK(bind->text == "tcp://127.0.0.1:9292");
}

// IPv6 literals contain colons, so brackets delimit them and are not part of the host.
TEST_CASE("an IPv6 tcp bind is written in brackets and stored without them") {
  auto bind = caracal::parse_bind_uri("tcp://[::1]:8080?backlog=16");
  REQUIRE(bind.ok());
  CHECK(bind->host == "::1");
  CHECK(bind->port == 8080);
  CHECK(bind->backlog == 16);
}

// unix:///tmp/x has three slashes: two for the scheme, one starting the absolute path.
TEST_CASE("a unix bind keeps its path and accepts a backlog") {
  auto bind = caracal::parse_bind_uri("unix:///tmp/caracal.sock?backlog=5");
  REQUIRE(bind.ok());
  CHECK(bind->scheme == BindUri::Scheme::unix);
  CHECK(bind->path == "/tmp/caracal.sock");
  CHECK(bind->backlog == 5);
}

// TLS binds are parsed now so configurations written today keep working later.
TEST_CASE("an ssl bind carries its certificate and key files") {
  auto bind = caracal::parse_bind_uri("ssl://0.0.0.0:9443?cert=c.pem&key=k.pem");
  REQUIRE(bind.ok());
  CHECK(bind->scheme == BindUri::Scheme::ssl);
  CHECK(bind->cert == "c.pem");
  CHECK(bind->key == "k.pem");
}

// Each malformed bind names the URI and what is wrong with it.
TEST_CASE("malformed binds are rejected with a reason") {
  auto error = [](std::string_view uri) { return caracal::parse_bind_uri(uri).error(); };
  CHECK(error("http://x:1") == "'http://x:1': unsupported scheme 'http' (expected tcp://, unix:// or ssl://)");
  CHECK(error("localhost:80") == "'localhost:80': expected SCHEME://ADDRESS");
  CHECK(error("tcp://127.0.0.1") == "'tcp://127.0.0.1': missing :PORT");
  CHECK(error("tcp://:80") == "'tcp://:80': missing host");
  CHECK(error("tcp://h:99999") == "'tcp://h:99999': expected a port number (0-65535), got '99999'");
  CHECK(error("tcp://[::1:80") == "'tcp://[::1:80': expected [IPV6]:PORT");
  CHECK(error("unix://") == "'unix://': missing socket path");
  CHECK(error("tcp://h:1?backlog=0") == "'tcp://h:1?backlog=0': backlog: expected a positive whole number, got '0'");
  CHECK(error("tcp://h:1?backlgo=9") == "'tcp://h:1?backlgo=9': unknown query parameter 'backlgo'");
  CHECK(error("ssl://h:1?cert=c") == "'ssl://h:1?cert=c': ssl binds need ?cert=FILE&key=FILE");
}
// Bind URIs:5 ends here

// [[file:../notes/configuration.org::*Applying a file][Applying a file:3]]
namespace {
// The file name every test error message is checked against.
constexpr std::string_view conf = "caracal.conf";

caracal::ConfigLayer parse_ok(std::string_view text) {
  auto layer = caracal::parse_config_text(text, conf);
  INFO((layer.ok() ? std::string() : layer.error()));
  REQUIRE(layer.ok());
  return *layer;
}

std::string parse_error(std::string_view text) {
  auto layer = caracal::parse_config_text(text, conf);
  REQUIRE_FALSE(layer.ok());
  return layer.error();
}
}  // namespace

// A puma.rb written for Puma must mean the same here, directive by directive.
TEST_CASE("every directive of a puma.rb-style file is read into the layer") {
  auto layer = parse_ok(R"(# production settings
workers 2
threads 1, 4
bind "tcp://127.0.0.1:9292"
bind 'unix:///tmp/caracal.sock'
environment "production"
worker_timeout 61
worker_boot_timeout 62
worker_shutdown_timeout 31
worker_check_interval 6
persistent_timeout 66
first_data_timeout 32
max_keep_alive 100
pidfile "/tmp/caracal.pid"
root "public"
raise_exception_on_sigterm false
)");
  CHECK(layer.workers == 2);
  CHECK(layer.min_threads == 1);
  CHECK(layer.max_threads == 4);
  REQUIRE(layer.binds.size() == 2);
  CHECK(layer.binds[0].port == 9292);
  CHECK(layer.binds[1].path == "/tmp/caracal.sock");
  CHECK(layer.environment == "production");
  CHECK(layer.worker_timeout == std::chrono::seconds(61));
  CHECK(layer.worker_boot_timeout == std::chrono::seconds(62));
  CHECK(layer.worker_shutdown_timeout == std::chrono::seconds(31));
  CHECK(layer.worker_check_interval == std::chrono::seconds(6));
  CHECK(layer.persistent_timeout == std::chrono::seconds(66));
  CHECK(layer.first_data_timeout == std::chrono::seconds(32));
  CHECK(layer.max_keep_alive == 100);
  CHECK(layer.pidfile == "/tmp/caracal.pid");
  CHECK(layer.root == "public");
  CHECK(layer.raise_exception_on_sigterm == false);
}

// The request limits are tuned in the file like any other directive, and reach the worker's settings.
TEST_CASE("the request limit directives are read into the configuration's limits") {
  auto layer = parse_ok("max_request_line_length 100\nmax_header_size 2000\n"
                        "max_header_fields 10\nhttp_content_length_limit 5000\n");
  auto config = caracal::apply_layer(caracal::Configuration{}, layer);
  CHECK(config.limits.max_request_line == 100);
  CHECK(config.limits.max_header_bytes == 2000);
  CHECK(config.limits.max_header_fields == 10);
  CHECK(config.limits.max_body_bytes == 5000);
  CHECK(caracal::Configuration{}.limits.max_header_fields == 100);
}

// `port` is Puma's shorthand for a tcp bind on every address, or on a given host.
TEST_CASE("port adds a tcp bind on 0.0.0.0 or on the given host") {
  auto layer = parse_ok("port 8080\nport 8081, \"::1\"\n");
  REQUIRE(layer.binds.size() == 2);
  CHECK(layer.binds[0].text == "tcp://0.0.0.0:8080");
  CHECK(layer.binds[1].host == "::1");
  CHECK(layer.binds[1].port == 8081);
}

// Ruby allows parentheses and trailing comments; copied lines must keep working.
TEST_CASE("parentheses, comments and a # inside quotes are handled like Ruby") {
  auto layer = parse_ok("threads(2, 8)   # pool\n  workers 3 # procs\nbind \"unix:///tmp/a#1.sock\"\n\n");
  CHECK(layer.min_threads == 2);
  CHECK(layer.max_threads == 8);
  CHECK(layer.workers == 3);
  CHECK(layer.binds.at(0).path == "/tmp/a#1.sock");
}

// Double-quoted strings allow an escaped quote, as in Ruby.
TEST_CASE("a backslash escapes a quote inside a double-quoted string") {
  auto layer = parse_ok(R"(environment "say \"hi\"")");
  CHECK(layer.environment == "say \"hi\"");
}

// A copied line must mean what Ruby would make of it, or be refused: never a third reading.
TEST_CASE("strings read like Ruby's or are refused") {
  CHECK(parse_ok(R"(environment 'it\'s')").environment == "it's");
  CHECK(parse_ok(R"(pidfile 'C:\tmp\x.pid')").pidfile == R"(C:\tmp\x.pid)");
  CHECK(parse_ok(R"(pidfile "a\\b")").pidfile == R"(a\b)");
  CHECK(parse_error(R"(environment "a\nb")") == R"(caracal.conf:1: unsupported escape '\n' (only \" and \\))");
  CHECK(parse_error(R"(environment "#{ENV['X']}")") == "caracal.conf:1: string interpolation is Ruby, not caracal");
  CHECK(parse_ok(R"(bind "unix:///tmp/#1.sock")").binds.at(0).path == "/tmp/#1.sock");
}

// The most common mistake is a typo; the message must point at the line and the fix.
TEST_CASE("an unknown directive names the line and suggests the closest name") {
  CHECK(parse_error("workers 2\n\nwrokers 2\n") ==
        "caracal.conf:3: unknown directive 'wrokers' (did you mean 'workers'?)");
  CHECK(parse_error("preload_app!\n") == "caracal.conf:1: unknown directive 'preload_app!'");
}

// Each kind of bad argument has its own message, prefixed by the directive.
TEST_CASE("bad arguments are reported with the directive and line") {
  CHECK(parse_error("workers 2, 3") == "caracal.conf:1: workers: expected 1 argument, got 2");
  CHECK(parse_error("threads 4") == "caracal.conf:1: threads: expected 2 arguments, got 1");
  CHECK(parse_error("port 1, \"h\", 3") == "caracal.conf:1: port: expected 1 or 2 arguments, got 3");
  CHECK(parse_error("workers two") == "caracal.conf:1: workers: expected a whole number, got 'two'");
  CHECK(parse_error("worker_timeout -5") == "caracal.conf:1: worker_timeout: expected a positive whole number, got '-5'");
  CHECK(parse_error("threads 8, 4") == "caracal.conf:1: threads: minimum 8 is greater than maximum 4");
  CHECK(parse_error("threads 0, 0") == "caracal.conf:1: threads: maximum must be at least 1, got 0");
  CHECK(parse_error("pidfile x.pid") == "caracal.conf:1: pidfile: expected a quoted string, got 'x.pid'");
  CHECK(parse_error("bind tcp") == "caracal.conf:1: bind: expected a quoted string, got 'tcp'");
  CHECK(parse_error("bind \"http://h:1\"") ==
        "caracal.conf:1: bind: 'http://h:1': unsupported scheme 'http' (expected tcp://, unix:// or ssl://)");
  CHECK(parse_error("port 70000") == "caracal.conf:1: port: expected a port number (0-65535), got '70000'");
  CHECK(parse_error("raise_exception_on_sigterm yes") ==
        "caracal.conf:1: raise_exception_on_sigterm: expected true or false, got 'yes'");
}

// Syntax slips inside a line must not be silently half-applied.
TEST_CASE("malformed lines are rejected with what was expected") {
  CHECK(parse_error("environment \"prod") == "caracal.conf:1: unterminated string");
  CHECK(parse_error("threads 1 4") == "caracal.conf:1: expected ',' between arguments");
  CHECK(parse_error("threads 1,") == "caracal.conf:1: expected an argument after ','");
  CHECK(parse_error("threads(1, 4") == "caracal.conf:1: unbalanced parentheses");
  CHECK(parse_error("workers , 2") == "caracal.conf:1: expected an argument");
  CHECK(parse_error("\"workers\" 2") == "caracal.conf:1: expected a directive name");
}

// Ruby would reject what follows a closing parenthesis; half-reading the line would hide the slip.
TEST_CASE("only spaces or a comment may follow a closing parenthesis") {
  CHECK(parse_error("threads(1, 4) junk") == "caracal.conf:1: unexpected text after ')'");
  CHECK(parse_error("threads(1,4))") == "caracal.conf:1: unexpected text after ')'");
  CHECK(parse_error("workers 2)") == "caracal.conf:1: unbalanced parentheses");
  CHECK(parse_ok("threads(1, 4)  # pool\n").max_threads == 4);
}

// A zero here is a busy loop, a connection closed at once or every request refused.
TEST_CASE("zero is refused for the counts and timeouts that it would break") {
  for (std::string name : {"worker_timeout", "worker_boot_timeout", "worker_check_interval", "persistent_timeout",
                           "first_data_timeout", "max_keep_alive", "max_request_line_length", "max_header_size",
                           "max_header_fields", "http_content_length_limit"}) {
    INFO(name);
    CHECK(parse_error("workers 1\n" + name + " 0\n") ==
          "caracal.conf:2: " + name + ": expected a positive whole number, got '0'");
  }
  auto layer = parse_ok("workers 0\nthreads 0, 1\nworker_shutdown_timeout 0\nport 0\n");
  CHECK(layer.workers == 0);
  CHECK(layer.worker_shutdown_timeout == std::chrono::seconds(0));
}
// Applying a file:3 ends here

// [[file:../notes/configuration.org::*The environment layer][The environment layer:3]]
// Container platforms hand out the port and size through the environment.
TEST_CASE("PORT, WEB_CONCURRENCY and RACK_ENV fill the configuration") {
  auto config = caracal::apply_environment({}, caracal::fixed_environment({{"PORT", "5000"}, {"WEB_CONCURRENCY", "2"},
                                                                  {"RACK_ENV", "staging"}, {"RAILS_ENV", "x"}}));
  REQUIRE(config.ok());
  REQUIRE(config->binds.size() == 1);
  CHECK(config->binds[0].text == "tcp://0.0.0.0:5000");
  CHECK(config->concurrency.workers == 2);
  CHECK(config->environment == "staging");
}

// A bad PORT must stop the start, naming the variable.
TEST_CASE("an invalid PORT is an error naming the variable") {
  auto config = caracal::apply_environment({}, caracal::fixed_environment({{"PORT", "http"}}));
  REQUIRE_FALSE(config.ok());
  CHECK(config.error() == "caracal: PORT: expected a port number (0-65535), got 'http'");
}
// The environment layer:3 ends here

// [[file:../notes/configuration.org::*Command-line flags][Command-line flags:7]]
namespace {
caracal::CommandLine flags_ok(std::vector<std::string> args) {
  auto line = caracal::parse_command_line(args);
  INFO((line.ok() ? std::string() : line.error()));
  REQUIRE(line.ok());
  return *line;
}

std::string flags_error(std::vector<std::string> args) {
  auto line = caracal::parse_command_line(args);
  REQUIRE_FALSE(line.ok());
  return line.error();
}
}  // namespace

// Every flag must reach the same member its directive would.
TEST_CASE("every flag is read into the command-line layer") {
  auto line = flags_ok({"-C", "c.rb", "-w", "3", "-t", "2:6", "-b", "tcp://127.0.0.1:1", "--bind=unix:///tmp/s",
                        "-p", "2", "-e", "test", "--pidfile", "p.pid", "--root", "www"});
  CHECK(line.config_file == "c.rb");
  CHECK(line.layer.workers == 3);
  CHECK(line.layer.min_threads == 2);
  CHECK(line.layer.max_threads == 6);
  REQUIRE(line.layer.binds.size() == 3);
  CHECK(line.layer.binds[1].path == "/tmp/s");
  CHECK(line.layer.binds[2].text == "tcp://0.0.0.0:2");
  CHECK(line.layer.environment == "test");
  CHECK(line.layer.pidfile == "p.pid");
  CHECK(line.layer.root == "www");
}

// --help and --version must work even next to otherwise complete command lines.
TEST_CASE("help and version are flags without values") {
  CHECK(flags_ok({"--help"}).show_help);
  CHECK(flags_ok({"-V"}).show_version);
  CHECK(caracal::usage_text().find("--threads MIN:MAX") != std::string::npos);
}

// Every flag error has one fixed shape: "caracal: FLAG: message".
TEST_CASE("bad flags are reported as caracal: FLAG: message") {
  CHECK(flags_error({"-t", "4"}) == "caracal: -t: expected MIN:MAX, got '4'");
  CHECK(flags_error({"-t", "8:4"}) == "caracal: -t: minimum 8 is greater than maximum 4");
  CHECK(flags_error({"-w", "x"}) == "caracal: -w: expected a whole number, got 'x'");
  CHECK(flags_error({"-p", "0x50"}) == "caracal: -p: expected a port number (0-65535), got '0x50'");
  CHECK(flags_error({"-b", "http://h:1"}) ==
        "caracal: -b: 'http://h:1': unsupported scheme 'http' (expected tcp://, unix:// or ssl://)");
  CHECK(flags_error({"--workers"}) == "caracal: --workers: missing value");
  CHECK(flags_error({"--wat"}) == "caracal: unknown option '--wat' (see --help)");
  CHECK(flags_error({"config.ru"}) == "caracal: unexpected argument 'config.ru'");
}

// An empty or repeated -C would silently read no file, or only the last one.
TEST_CASE("an empty or repeated -C is an error instead of a dropped file") {
  CHECK(flags_error({"--config="}) == "caracal: --config: expected a file name, got an empty one");
  CHECK(flags_error({"-C", ""}) == "caracal: -C: expected a file name, got an empty one");
  CHECK(flags_error({"-C", "a.rb", "--config", "b.rb"}) ==
        "caracal: --config: given twice ('a.rb', then 'b.rb'); caracal reads one file");
}
// Command-line flags:7 ends here

// [[file:../notes/configuration.org::*Loading: all layers in order][Loading: all layers in order:4]]
namespace {
// A reader that serves one in-memory file and fails for any other name.
caracal::FileReader one_file(std::string name, std::string text) {
  return [=](const std::string& path) -> caracal::Outcome<std::string> {
    if (path == name) return text;
    return caracal::Outcome<std::string>::failure("cannot read '" + path + "': No such file or directory");
  };
}

caracal::Outcome<caracal::Configuration> load(std::vector<std::string> args,
                                              std::map<std::string, std::string> env = {},
                                              std::string file = "workers 2\nthreads 1, 4\nport 7000\n") {
  return caracal::load_configuration(args, caracal::fixed_environment(env), one_file("c.rb", file));
}
}  // namespace

// With nothing given, caracal must listen where Puma does.
TEST_CASE("without any input the defaults bind tcp://0.0.0.0:9292 in single mode") {
  auto config = load({});
  REQUIRE(config.ok());
  REQUIRE(config->binds.size() == 1);
  CHECK(config->binds[0].text == "tcp://0.0.0.0:9292");
  CHECK(config->concurrency.workers == 0);
  CHECK(config->worker_timeout == std::chrono::seconds(60));
  CHECK(config->persistent_timeout == std::chrono::seconds(65));
  CHECK(config->raise_exception_on_sigterm);
}

// The precedence rule: each later layer overrides the one before.
TEST_CASE("flags beat the file, which beats the environment, which beats the defaults") {
  auto config = load({"-C", "c.rb", "-w", "4"}, {{"WEB_CONCURRENCY", "9"}, {"RAILS_MAX_THREADS", "7"},
                                                 {"PORT", "5000"}, {"RACK_ENV", "staging"}});
  REQUIRE(config.ok());
  CHECK(config->concurrency.workers == 4);      // flag over file and environment
  CHECK(config->concurrency.max_threads == 4);  // file over environment
  CHECK(config->binds.at(0).port == 7000);      // file binds replace PORT's
  CHECK(config->environment == "staging");      // environment over default
  CHECK(config->config_file == "c.rb");
}

// A -b flag means "listen here", so the file's binds must not survive it.
TEST_CASE("bind flags replace the file's binds instead of adding to them") {
  auto config = load({"-C", "c.rb", "-b", "tcp://127.0.0.1:1"});
  REQUIRE(config.ok());
  REQUIRE(config->binds.size() == 1);
  CHECK(config->binds[0].port == 1);
}

// Errors from the file keep their FILE:LINE shape through the whole pipeline.
TEST_CASE("a bad file line, a missing file and cross-layer conflicts are errors") {
  CHECK(load({"-C", "c.rb"}, {}, "workers 1\nwrokers 2\n").error() ==
        "c.rb:2: unknown directive 'wrokers' (did you mean 'workers'?)");
  CHECK(load({"-C", "nope.rb"}).error() == "caracal: -C: cannot read 'nope.rb': No such file or directory");
  CHECK(load({"-t", "1:4"}, {{"PUMA_MIN_THREADS", "8"}}).ok());
  CHECK(load({}, {{"PUMA_MIN_THREADS", "8"}}).error() ==
        "caracal: threads: minimum 8 (PUMA_MIN_THREADS) is greater than maximum 5 (the default)");
  CHECK(load({"-C", "c.rb"}, {}, "worker_timeout 5\n").error() ==
        "caracal: worker_timeout 5 s (c.rb:1) must be greater than worker_check_interval 5 s (the default)");
  CHECK(load({}, {{"WEB_CONCURRENCY", "many"}}).error() ==
        "caracal: WEB_CONCURRENCY: expected a whole number, got 'many'");
}

// Two values that clash may come from different layers; the message must say where to look for each.
TEST_CASE("a conflict between layers names where each of its values came from") {
  CHECK(load({}, {{"PUMA_MIN_THREADS", "8"}, {"RAILS_MAX_THREADS", "3"}}).error() ==
        "caracal: threads: minimum 8 (PUMA_MIN_THREADS) is greater than maximum 3 (RAILS_MAX_THREADS)");
  CHECK(load({"-C", "c.rb"}, {}, "workers 2\nworker_check_interval 90\n").error() ==
        "caracal: worker_timeout 60 s (the default) must be greater than worker_check_interval 90 s (c.rb:2)");
  auto config = load({"-C", "c.rb", "-w", "3"}, {{"PUMA_MIN_THREADS", "0"}});
  REQUIRE(config.ok());
  CHECK(config->origins.at("workers") == "-w");
  CHECK(config->origins.at("max_threads") == "c.rb:2");
}

// --help must not fail because of a broken file or environment it never needs.
TEST_CASE("help short-circuits the file and environment") {
  auto config = load({"--help", "-C", "nope.rb"}, {{"PORT", "bad"}});
  REQUIRE(config.ok());
  CHECK(config->show_help);
}
// Loading: all layers in order:4 ends here

// [[file:../notes/configuration.org::*The binary's exit status for bad input][The binary's exit status for bad input:1]]
namespace {
struct Finished {
  int status = -1;
  std::string err;
};

// Runs CARACAL_BIN with `args`, returning its exit status and standard error.
Finished run_caracal(std::vector<std::string> args) {
  const char* bin = std::getenv("CARACAL_BIN");
  REQUIRE(bin != nullptr);  // set by the Makefile to build/caracal
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(pipe_fds[1], 2);
    ::close(pipe_fds[0]);
    std::vector<char*> argv{const_cast<char*>(bin)};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin, argv.data());
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  Finished result;
  std::array<char, 4096> buffer;
  for (ssize_t n; (n = ::read(pipe_fds[0], buffer.data(), buffer.size())) > 0;) result.err.append(buffer.data(), n);
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}
}  // namespace

// Scripts and supervisors rely on status 2 and one clear line for usage errors.
TEST_CASE("the binary exits 2 with the message for a bad flag", "[integration]") {
  auto run = run_caracal({"-t", "4"});
  CHECK(run.status == 2);
  CHECK(run.err == "caracal: -t: expected MIN:MAX, got '4'\n");
}

// A bad file line must point at the file and line, from the real binary too.
TEST_CASE("the binary exits 2 with FILE:LINE for a bad config line", "[integration]") {
  char path[] = "/tmp/caracal-conf-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  std::string text = "workers 2\n# comment\nwrokers 3\n";
  REQUIRE(::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  ::close(fd);
  auto run = run_caracal({"-C", path});
  ::unlink(path);
  CHECK(run.status == 2);
  CHECK(run.err == std::string(path) + ":3: unknown directive 'wrokers' (did you mean 'workers'?)\n");
}

// --version is how packagers check the binary runs at all.
TEST_CASE("the binary prints its version and exits 0", "[integration]") {
  auto run = run_caracal({"--version"});
  CHECK(run.status == 0);
}
// The binary's exit status for bad input:1 ends here

// src/configuration.cpp: tangled from notes/configuration.org; edit the note, not this file.

// [[file:../notes/configuration.org::*Bind URIs][Bind URIs:4]]
#include "configuration.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace caracal {

namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (!text.empty()) {
    auto at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return parts;
}

// check_concurrency names "threads: "; callers here add their own directive or flag.
std::optional<std::string> without_threads_prefix(std::optional<std::string> message) {
  constexpr std::string_view prefix = "threads: ";
  if (message && message->starts_with(prefix)) message->erase(0, prefix.size());
  return message;
}

std::optional<int> parse_port(std::string_view text) {
  auto n = parse_count(text);
  if (!n || *n > 65535) return std::nullopt;
  return n;
}

// Fills host and port of a tcp:// or ssl:// bind from "HOST:PORT" or "[V6]:PORT".
std::optional<std::string> parse_authority(std::string_view rest, BindUri& bind) {
  auto fail = [](std::string why) { return std::optional<std::string>(std::move(why)); };
  std::string_view host, port;
  if (rest.starts_with('[')) {
    auto close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':')
      return fail("expected [IPV6]:PORT");
    host = rest.substr(1, close - 1);
    port = rest.substr(close + 2);
  } else {
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos) return fail("missing :PORT");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return fail("missing host");
  auto number = parse_port(port);
  if (!number) return fail("expected a port number (0-65535), got '" + std::string(port) + "'");
  bind.host = std::string(host);
  bind.port = *number;
  return std::nullopt;
}

std::optional<std::string> parse_query(std::string_view query, BindUri& bind) {
  auto fail = [](std::string why) { return std::optional<std::string>(std::move(why)); };
  for (auto param : split(query, '&')) {
    auto eq = param.find('=');
    auto key = param.substr(0, eq);
    auto value = eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
    if (key == "backlog") {
      auto n = parse_count(value);
      if (!n || *n < 1) return fail("backlog: expected a positive whole number, got '" + std::string(value) + "'");
      bind.backlog = *n;
    } else if (bind.scheme == BindUri::Scheme::ssl && (key == "cert" || key == "key")) {
      (key == "cert" ? bind.cert : bind.key) = std::string(value);
    } else {
      return fail("unknown query parameter '" + std::string(key) + "'");
    }
  }
  return std::nullopt;
}

std::optional<std::string> parse_scheme(std::string_view scheme, BindUri& bind) {
  if (scheme == "tcp") bind.scheme = BindUri::Scheme::tcp;
  else if (scheme == "unix") bind.scheme = BindUri::Scheme::unix;
  else if (scheme == "ssl") bind.scheme = BindUri::Scheme::ssl;
  else return "unsupported scheme '" + std::string(scheme) + "' (expected tcp://, unix:// or ssl://)";
  return std::nullopt;
}

// Parses the part after "scheme://": a path for unix, an authority otherwise.
std::optional<std::string> parse_location(std::string_view location, BindUri& bind) {
  if (bind.scheme != BindUri::Scheme::unix) return parse_authority(location, bind);
  if (location.empty()) return std::string("missing socket path");
  bind.path = std::string(location);
  return std::nullopt;
}

}  // namespace

Outcome<BindUri> parse_bind_uri(std::string_view uri) {
  BindUri bind;
  bind.text = std::string(uri);
  auto scheme_end = uri.find("://");
  auto question = uri.find('?');
  std::optional<std::string> error;
  if (scheme_end == std::string_view::npos) error = "expected SCHEME://ADDRESS";
  if (!error) error = parse_scheme(uri.substr(0, scheme_end), bind);
  auto location = error ? std::string_view{} : uri.substr(scheme_end + 3, question == std::string_view::npos ? question : question - scheme_end - 3);
  if (!error) error = parse_location(location, bind);
  if (!error && question != std::string_view::npos) error = parse_query(uri.substr(question + 1), bind);
  if (!error && bind.scheme == BindUri::Scheme::ssl && (bind.cert.empty() || bind.key.empty()))
    error = "ssl binds need ?cert=FILE&key=FILE";
  if (error) return Outcome<BindUri>::failure("'" + std::string(uri) + "': " + *error);
  return bind;
}
// Bind URIs:4 ends here

// [[file:../notes/configuration.org::*The resolved configuration][The resolved configuration:3]]
Configuration apply_layer(Configuration config, const ConfigLayer& layer) {
  auto take = [](auto& target, const auto& source) { if (source) target = *source; };
  take(config.concurrency.workers, layer.workers);
  take(config.concurrency.min_threads, layer.min_threads);
  take(config.concurrency.max_threads, layer.max_threads);
  take(config.max_keep_alive, layer.max_keep_alive);
  take(config.environment, layer.environment);
  take(config.pidfile, layer.pidfile);
  take(config.root, layer.root);
  take(config.worker_timeout, layer.worker_timeout);
  take(config.worker_boot_timeout, layer.worker_boot_timeout);
  take(config.worker_shutdown_timeout, layer.worker_shutdown_timeout);
  take(config.worker_check_interval, layer.worker_check_interval);
  take(config.persistent_timeout, layer.persistent_timeout);
  take(config.first_data_timeout, layer.first_data_timeout);
  take(config.raise_exception_on_sigterm, layer.raise_exception_on_sigterm);
  take(config.limits.max_request_line, layer.max_request_line_length);
  take(config.limits.max_header_bytes, layer.max_header_size);
  take(config.limits.max_header_fields, layer.max_header_fields);
  take(config.limits.max_body_bytes, layer.http_content_length_limit);
  // Binds replace, never merge: see "Precedence".
  if (!layer.binds.empty()) config.binds = layer.binds;
  for (const auto& [name, origin] : layer.origins) config.origins[name] = origin;
  return config;
}
// The resolved configuration:3 ends here

// [[file:../notes/configuration.org::*Splitting a line into a name and arguments][Splitting a line into a name and arguments:5]]
namespace detail {

// A directive line taken apart: name, then arguments.
struct ConfigLine {
  std::string name;
  std::vector<ConfigArgument> args;
};

Outcome<ConfigLine> split_config_line(std::string_view line) {
  auto fail = [](std::string why) { return Outcome<ConfigLine>::failure(std::move(why)); };
  std::size_t at = 0;
  auto skip_spaces = [&] { while (at < line.size() && std::isspace(static_cast<unsigned char>(line[at]))) ++at; };
  ConfigLine parsed;
  auto& args = parsed.args;
  skip_spaces();
  while (at < line.size() && (std::isalnum(static_cast<unsigned char>(line[at])) || line[at] == '_' || line[at] == '!' || line[at] == '?'))
    parsed.name += line[at++];
  skip_spaces();
  if (parsed.name.empty() && at < line.size() && line[at] != '#') return fail("expected a directive name");
  bool parenthesised = at < line.size() && line[at] == '(';
  if (parenthesised) { ++at; skip_spaces(); }
  while (at < line.size() && line[at] != '#' && line[at] != ')') {
    if (line[at] == '"' || line[at] == '\'') {
      char quote = line[at++];
      std::string text;
      while (at < line.size() && line[at] != quote) {
        const bool escape = line[at] == '\\' && at + 1 < line.size();
        if (quote == '"' && escape && line[at + 1] != '"' && line[at + 1] != '\\')
          return fail(std::string("unsupported escape '\\") + line[at + 1] + "' (only \\\" and \\\\)");
        if (quote == '"' && line[at] == '#' && at + 1 < line.size() && std::string_view("{@$").find(line[at + 1]) != std::string_view::npos)
          return fail("string interpolation is Ruby, not caracal");
        if (line[at] == '\\' && at + 1 < line.size() && (line[at + 1] == quote || line[at + 1] == '\\')) ++at;
        text += line[at++];
      }
      if (at >= line.size()) return fail("unterminated string");
      ++at;
      args.push_back({std::move(text), true});
    } else {
      auto start = at;
      while (at < line.size() && line[at] != ',' && line[at] != ')' && line[at] != '#' &&
             !std::isspace(static_cast<unsigned char>(line[at])))
        ++at;
      if (at == start) return fail("expected an argument");
      args.push_back({std::string(line.substr(start, at - start)), false});
    }
    skip_spaces();
    if (at < line.size() && line[at] == ',') {
      ++at;
      skip_spaces();
      if (at >= line.size() || line[at] == '#' || line[at] == ')') return fail("expected an argument after ','");
    } else if (at < line.size() && line[at] != '#' && line[at] != ')') {
      return fail("expected ',' between arguments");
    }
  }
  if (parenthesised != (at < line.size() && line[at] == ')')) return fail("unbalanced parentheses");
  if (parenthesised) { ++at; skip_spaces(); }
  if (at < line.size() && line[at] != '#') return fail("unexpected text after ')'");
  return parsed;
}

}  // namespace detail
// Splitting a line into a name and arguments:5 ends here

// [[file:../notes/configuration.org::*The directive table][The directive table:1]]
namespace {

using Args = std::vector<ConfigArgument>;
using Store = std::optional<std::string> (*)(const Args&, ConfigLayer&);

struct Directive {
  std::string_view name;
  std::size_t min_args, max_args;
  Store store;
};

std::optional<std::string> read_count(const ConfigArgument& arg, std::optional<int>& target) {
  auto n = arg.quoted ? std::nullopt : parse_count(arg.text);
  if (!n) return "expected a whole number, got '" + arg.text + "'";
  target = *n;
  return std::nullopt;
}

// For the counts and timeouts where 0 would break the server rather than mean something.
std::optional<std::string> read_positive(const ConfigArgument& arg, std::optional<int>& target) {
  auto n = arg.quoted ? std::nullopt : parse_count(arg.text);
  if (!n || *n == 0) return "expected a positive whole number, got '" + arg.text + "'";
  target = *n;
  return std::nullopt;
}

std::optional<std::string> read_seconds(const ConfigArgument& arg, std::optional<std::chrono::seconds>& target,
                                        bool zero_allowed) {
  std::optional<int> n;
  if (auto error = zero_allowed ? read_count(arg, n) : read_positive(arg, n)) return error;
  target = std::chrono::seconds(*n);
  return std::nullopt;
}

std::optional<std::string> read_string(const ConfigArgument& arg, std::optional<std::string>& target) {
  if (!arg.quoted) return "expected a quoted string, got '" + arg.text + "'";
  target = arg.text;
  return std::nullopt;
}

std::optional<std::string> read_bool(const ConfigArgument& arg, std::optional<bool>& target) {
  if (arg.quoted || (arg.text != "true" && arg.text != "false"))
    return "expected true or false, got '" + arg.text + "'";
  target = arg.text == "true";
  return std::nullopt;
}
// The directive table:1 ends here

// [[file:../notes/configuration.org::*The directive table][The directive table:5]]
#define CARACAL_COUNT(member) [](const Args& a, ConfigLayer& l) { return read_count(a[0], l.member); }
#define CARACAL_POSITIVE(member) [](const Args& a, ConfigLayer& l) { return read_positive(a[0], l.member); }
#define CARACAL_SECONDS(member) [](const Args& a, ConfigLayer& l) { return read_seconds(a[0], l.member, false); }
#define CARACAL_SECONDS_OR_ZERO(member) \
  [](const Args& a, ConfigLayer& l) { return read_seconds(a[0], l.member, true); }
#define CARACAL_STRING(member) [](const Args& a, ConfigLayer& l) { return read_string(a[0], l.member); }

const Directive directives[] = {
    {"workers", 1, 1, CARACAL_COUNT(workers)},
    {"threads", 2, 2,
     [](const Args& a, ConfigLayer& l) -> std::optional<std::string> {
       if (auto e = read_count(a[0], l.min_threads)) return e;
       if (auto e = read_count(a[1], l.max_threads)) return e;
       return without_threads_prefix(check_concurrency(ConcurrencyModel{0, *l.min_threads, *l.max_threads}));
     }
    },
    {"bind", 1, 1,
     [](const Args& a, ConfigLayer& l) -> std::optional<std::string> {
       if (!a[0].quoted) return "expected a quoted string, got '" + a[0].text + "'";
       auto bind = parse_bind_uri(a[0].text);
       if (!bind) return bind.error();
       l.binds.push_back(*bind);
       return std::nullopt;
     }
    },
    {"port", 1, 2,
     [](const Args& a, ConfigLayer& l) -> std::optional<std::string> {
       auto port = a[0].quoted ? std::nullopt : parse_port(a[0].text);
       if (!port) return "expected a port number (0-65535), got '" + a[0].text + "'";
       std::string host = a.size() > 1 ? a[1].text : "0.0.0.0";
       if (host.find(':') != std::string::npos) host = "[" + host + "]";
       auto bind = parse_bind_uri("tcp://" + host + ":" + std::to_string(*port));
       if (!bind) return bind.error();
       l.binds.push_back(*bind);
       return std::nullopt;
     }
    },
    {"environment", 1, 1, CARACAL_STRING(environment)},
    {"worker_timeout", 1, 1, CARACAL_SECONDS(worker_timeout)},
    {"worker_boot_timeout", 1, 1, CARACAL_SECONDS(worker_boot_timeout)},
    {"worker_shutdown_timeout", 1, 1, CARACAL_SECONDS_OR_ZERO(worker_shutdown_timeout)},
    {"worker_check_interval", 1, 1, CARACAL_SECONDS(worker_check_interval)},
    {"persistent_timeout", 1, 1, CARACAL_SECONDS(persistent_timeout)},
    {"first_data_timeout", 1, 1, CARACAL_SECONDS(first_data_timeout)},
    {"max_keep_alive", 1, 1, CARACAL_POSITIVE(max_keep_alive)},
    {"pidfile", 1, 1, CARACAL_STRING(pidfile)},
    {"root", 1, 1, CARACAL_STRING(root)},
    {"raise_exception_on_sigterm", 1, 1,
     [](const Args& a, ConfigLayer& l) { return read_bool(a[0], l.raise_exception_on_sigterm); }},
    {"max_request_line_length", 1, 1, CARACAL_POSITIVE(max_request_line_length)},
    {"max_header_size", 1, 1, CARACAL_POSITIVE(max_header_size)},
    {"max_header_fields", 1, 1, CARACAL_POSITIVE(max_header_fields)},
    {"http_content_length_limit", 1, 1, CARACAL_POSITIVE(http_content_length_limit)},
};

#undef CARACAL_COUNT
#undef CARACAL_POSITIVE
#undef CARACAL_SECONDS
#undef CARACAL_SECONDS_OR_ZERO
#undef CARACAL_STRING
// The directive table:5 ends here

// [[file:../notes/configuration.org::*The directive table][The directive table:6]]
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::string unknown_directive_message(std::string_view name) {
  std::string message = "unknown directive '" + std::string(name) + "'";
  const Directive* best = nullptr;
  for (const auto& d : directives)
    if (!best || edit_distance(name, d.name) < edit_distance(name, best->name)) best = &d;
  if (best && edit_distance(name, best->name) <= 2)
    message += " (did you mean '" + std::string(best->name) + "'?)";
  return message;
}

// `threads` sets two values; every other directive sets the one named after it.
void record_origin(Origins& origins, std::string_view directive, const std::string& origin) {
  if (directive != "threads") {
    origins[std::string(directive)] = origin;
    return;
  }
  origins["min_threads"] = origin;
  origins["max_threads"] = origin;
}

std::string argument_count_message(const Directive& d, std::size_t got) {
  auto plural = [](std::size_t n) { return n == 1 ? " argument" : " arguments"; };
  std::string expected = d.min_args == d.max_args
                             ? std::to_string(d.min_args) + plural(d.min_args)
                             : std::to_string(d.min_args) + " or " + std::to_string(d.max_args) + " arguments";
  return std::string(d.name) + ": expected " + expected + ", got " + std::to_string(got);
}
// The directive table:6 ends here

// [[file:../notes/configuration.org::*Applying a file][Applying a file:2]]
}  // namespace

Outcome<ConfigLayer> parse_config_text(std::string_view text, std::string_view file_name) {
  ConfigLayer layer;
  int line_number = 0;
  for (auto line : split(text, '\n')) {
    ++line_number;
    auto fail = [&](const std::string& why) {
      return Outcome<ConfigLayer>::failure(std::string(file_name) + ":" + std::to_string(line_number) + ": " + why);
    };
    auto parsed = detail::split_config_line(line);
    if (!parsed) return fail(parsed.error());
    if (parsed->name.empty()) continue;  // a blank or comment-only line
    auto d = std::find_if(std::begin(directives), std::end(directives),
                          [&](const Directive& x) { return x.name == parsed->name; });
    if (d == std::end(directives)) return fail(unknown_directive_message(parsed->name));
    if (parsed->args.size() < d->min_args || parsed->args.size() > d->max_args)
      return fail(argument_count_message(*d, parsed->args.size()));
    if (auto error = d->store(parsed->args, layer)) return fail(std::string(d->name) + ": " + *error);
    record_origin(layer.origins, d->name, std::string(file_name) + ":" + std::to_string(line_number));
  }
  return layer;
}
// Applying a file:2 ends here

// [[file:../notes/configuration.org::*The environment layer][The environment layer:2]]
namespace {
// The variables concurrency_from_environment reads, in its order of preference.
void record_environment_origins(const EnvironmentLookup& env, Origins& origins) {
  auto first_set = [&](const char* key, std::initializer_list<const char*> names) {
    for (auto name : names)
      if (env(name)) { origins[key] = name; return; }
  };
  first_set("workers", {"WEB_CONCURRENCY"});
  first_set("min_threads", {"PUMA_MIN_THREADS", "RAILS_MIN_THREADS"});
  first_set("max_threads", {"PUMA_MAX_THREADS", "RAILS_MAX_THREADS"});
}
}  // namespace

Outcome<Configuration> apply_environment(Configuration config, const EnvironmentLookup& env) {
  auto fail = [](const std::string& why) { return Outcome<Configuration>::failure("caracal: " + why); };
  auto model = concurrency_from_environment(config.concurrency, env);
  if (!model) return fail(model.error());
  config.concurrency = *model;
  record_environment_origins(env, config.origins);
  if (auto port = env("PORT")) {
    auto bind = parse_port(*port) ? parse_bind_uri("tcp://0.0.0.0:" + *port)
                                  : Outcome<BindUri>::failure("expected a port number (0-65535), got '" + *port + "'");
    if (!bind) return fail("PORT: " + bind.error());
    config.binds = {*bind};
  }
  for (auto name : {"APP_ENV", "RACK_ENV", "RAILS_ENV"})
    if (auto value = env(name)) { config.environment = *value; break; }
  return config;
}
// The environment layer:2 ends here

// [[file:../notes/configuration.org::*Command-line flags][Command-line flags:2]]
std::string usage_text() {
  return "Usage: caracal [options]\n"
         "  -C, --config FILE        read directives from FILE (puma.rb style)\n"
         "  -w, --workers N          fork N worker processes (0 = single mode)\n"
         "  -t, --threads MIN:MAX    threads per worker\n"
         "  -b, --bind URI           listen on URI (tcp://, unix://, ssl://); repeatable\n"
         "  -p, --port PORT          listen on tcp://0.0.0.0:PORT\n"
         "  -e, --environment ENV    environment name handed to the app\n"
         "      --pidfile FILE       write the master's pid to FILE\n"
         "      --root DIR           serve static files from DIR instead of the demo app\n"
         "  -h, --help               show this text\n"
         "  -V, --version            show the version\n";
}

namespace {

std::optional<std::string> apply_threads_flag(const std::string& value, ConfigLayer& layer) {
  auto colon = value.find(':');
  auto min = colon == std::string::npos ? std::nullopt : parse_count(std::string_view(value).substr(0, colon));
  auto max = colon == std::string::npos ? std::nullopt : parse_count(std::string_view(value).substr(colon + 1));
  if (!min || !max) return "expected MIN:MAX, got '" + value + "'";
  layer.min_threads = min;
  layer.max_threads = max;
  return without_threads_prefix(check_concurrency(ConcurrencyModel{0, *min, *max}));
}

// An empty name would silently mean "no file", and a second -C would silently win.
std::optional<std::string> apply_config_flag(const std::string& value, CommandLine& line) {
  if (value.empty()) return std::string("expected a file name, got an empty one");
  if (!line.config_file.empty())
    return "given twice ('" + line.config_file + "', then '" + value + "'); caracal reads one file";
  line.config_file = value;
  return std::nullopt;
}

std::optional<std::string> apply_bind_flag(const std::string& value, ConfigLayer& layer) {
  auto bind = parse_bind_uri(value);
  if (!bind) return bind.error();
  layer.binds.push_back(*bind);
  return std::nullopt;
}
// Command-line flags:2 ends here

// [[file:../notes/configuration.org::*Command-line flags][Command-line flags:4]]
bool flag_takes_value(std::string_view flag) {
  static constexpr std::string_view with_value[] = {"-C", "--config", "-w", "--workers", "-t", "--threads",
                                                    "-b", "--bind", "-p", "--port", "-e", "--environment",
                                                    "--pidfile", "--root"};
  return std::find(std::begin(with_value), std::end(with_value), flag) != std::end(with_value);
}

std::optional<std::string> apply_flag(const std::string& flag, const std::string& value, CommandLine& line) {
  if (flag == "-C" || flag == "--config") return apply_config_flag(value, line);
  if (flag == "-w" || flag == "--workers") {
    line.layer.workers = parse_count(value);
    return line.layer.workers ? std::nullopt : std::optional<std::string>("expected a whole number, got '" + value + "'");
  }
  if (flag == "-t" || flag == "--threads") return apply_threads_flag(value, line.layer);
  if (flag == "-b" || flag == "--bind") return apply_bind_flag(value, line.layer);
  if (flag == "-p" || flag == "--port") {
    if (!parse_port(value)) return "expected a port number (0-65535), got '" + value + "'";
    return apply_bind_flag("tcp://0.0.0.0:" + value, line.layer);
  }
  if (flag == "-e" || flag == "--environment") { line.layer.environment = value; return std::nullopt; }
  if (flag == "--pidfile") { line.layer.pidfile = value; return std::nullopt; }
  if (flag == "--root") { line.layer.root = value; return std::nullopt; }
  return "unknown option";
}

}  // namespace
// Command-line flags:4 ends here

// [[file:../notes/configuration.org::*Command-line flags][Command-line flags:6]]
Outcome<CommandLine> parse_command_line(std::span<const std::string> args) {
  CommandLine line;
  auto fail = [](const std::string& flag, const std::string& why) {
    return Outcome<CommandLine>::failure("caracal: " + flag + ": " + why);
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    if (flag == "-h" || flag == "--help") { line.show_help = true; continue; }
    if (flag == "-V" || flag == "--version") { line.show_version = true; continue; }
    if (!flag.starts_with("-")) return Outcome<CommandLine>::failure("caracal: unexpected argument '" + flag + "'");
    if (!flag_takes_value(flag.substr(0, flag.find('='))))
      return Outcome<CommandLine>::failure("caracal: unknown option '" + flag + "' (see --help)");
    std::string value;
    if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return fail(flag, "missing value");
    }
    if (auto error = apply_flag(flag, value, line)) return fail(flag, *error);
    if (flag == "-w" || flag == "--workers") record_origin(line.layer.origins, "workers", flag);
    if (flag == "-t" || flag == "--threads") record_origin(line.layer.origins, "threads", flag);
  }
  return line;
}
// Command-line flags:6 ends here

// [[file:../notes/configuration.org::*Loading: all layers in order][Loading: all layers in order:3]]
namespace {
// "c.rb:3", "PUMA_MIN_THREADS", "-t", or "the default" when no layer set it.
std::string origin_of(const Configuration& config, std::string_view value) {
  auto found = config.origins.find(value);
  return found == config.origins.end() ? std::string("the default") : found->second;
}
}  // namespace

FileReader disk_reader() {
  return [](const std::string& path) -> Outcome<std::string> {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Outcome<std::string>::failure("cannot read '" + path + "': " + std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  };
}

Outcome<Configuration> load_configuration(std::span<const std::string> args, const EnvironmentLookup& env,
                                          const FileReader& read_file) {
  auto fail = [](const std::string& why) { return Outcome<Configuration>::failure("caracal: " + why); };
  auto line = parse_command_line(args);
  if (!line) return Outcome<Configuration>::failure(line.error());
  Configuration config;
  config.show_help = line->show_help;
  config.show_version = line->show_version;
  if (config.show_help || config.show_version) return config;
  auto with_env = apply_environment(std::move(config), env);
  if (!with_env) return with_env;
  config = std::move(*with_env);
  if (!line->config_file.empty()) {
    auto text = read_file(line->config_file);
    if (!text) return fail("-C: " + text.error());
    auto layer = parse_config_text(*text, line->config_file);
    if (!layer) return Outcome<Configuration>::failure(layer.error());
    config = apply_layer(std::move(config), *layer);
    config.config_file = line->config_file;
  }
  config = apply_layer(std::move(config), line->layer);
  const auto& model = config.concurrency;
  if (model.min_threads > model.max_threads)
    return fail("threads: minimum " + std::to_string(model.min_threads) + " (" + origin_of(config, "min_threads") +
                ") is greater than maximum " + std::to_string(model.max_threads) + " (" +
                origin_of(config, "max_threads") + ")");
  if (auto error = check_concurrency(model)) return fail(*error);
  if (config.worker_timeout <= config.worker_check_interval)
    return fail("worker_timeout " + std::to_string(config.worker_timeout.count()) + " s (" +
                origin_of(config, "worker_timeout") + ") must be greater than worker_check_interval " +
                std::to_string(config.worker_check_interval.count()) + " s (" +
                origin_of(config, "worker_check_interval") + ")");
  if (config.binds.empty()) config.binds.push_back(*parse_bind_uri(default_bind));
  return config;
}

}  // namespace caracal
// Loading: all layers in order:3 ends here

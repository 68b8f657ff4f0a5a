// src/configuration.hpp: tangled from notes/configuration.org; edit the note, not this file.

// [[file:../notes/configuration.org::*Bind URIs][Bind URIs:1]]
#pragma once
#include "concurrency_model.hpp"
#include "lowlevel_error_handler.hpp"

#include <chrono>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace caracal {

// One listening address, as written in `bind` or `-b`.
struct BindUri {
  enum class Scheme { tcp, unix, ssl };
  // Puma's default: the kernel's accept queue length for every bind.
  static constexpr int default_backlog = 1024;

  Scheme scheme = Scheme::tcp;
  std::string host;  // tcp and ssl; IPv6 without brackets ("::1")
  int port = 0;      // tcp and ssl
  std::string path;  // unix
  int backlog = default_backlog;
  std::string cert, key;  // ssl
  std::string text;       // as the user wrote it, for logs and errors
};

Outcome<BindUri> parse_bind_uri(std::string_view uri);
// Bind URIs:1 ends here

// [[file:../notes/configuration.org::*The resolved configuration][The resolved configuration:1]]
// Where each value came from: "FILE:LINE", an environment variable or a flag, keyed by
// "workers", "min_threads", "max_threads" or the directive's name. No entry: the default.
using Origins = std::map<std::string, std::string, std::less<>>;

// Everything the process side needs, after every layer has been applied.
struct Configuration {
  ConcurrencyModel concurrency;
  std::vector<BindUri> binds;  // never empty after load_configuration
  std::string environment = "development";
  std::chrono::seconds worker_timeout{60};
  std::chrono::seconds worker_boot_timeout{60};
  std::chrono::seconds worker_shutdown_timeout{30};
  std::chrono::seconds worker_check_interval{5};
  std::chrono::seconds persistent_timeout{65};
  std::chrono::seconds first_data_timeout{30};
  int max_keep_alive = 999;
  std::string pidfile;  // empty = none
  std::string root;     // empty = the demo app
  bool raise_exception_on_sigterm = true;
  RequestLimits limits;     // max_request_line_length ... http_content_length_limit
  std::string config_file;  // empty = none was given
  Origins origins;          // for the errors about values from different layers
  bool show_help = false;
  bool show_version = false;
};

// Puma's default listener: every IPv4 address, port 9292.
inline constexpr std::string_view default_bind = "tcp://0.0.0.0:9292";
inline constexpr std::string_view caracal_version = "caracal 0.1.0";

// What one layer (file or flags) sets; unset members leave earlier layers alone.
struct ConfigLayer {
  std::optional<int> workers, min_threads, max_threads, max_keep_alive;
  std::vector<BindUri> binds;  // empty = keep the earlier layer's binds
  std::optional<std::string> environment, pidfile, root;
  std::optional<std::chrono::seconds> worker_timeout, worker_boot_timeout,
      worker_shutdown_timeout, worker_check_interval, persistent_timeout, first_data_timeout;
  std::optional<bool> raise_exception_on_sigterm;
  std::optional<int> max_request_line_length, max_header_size, max_header_fields,
      http_content_length_limit;
  Origins origins;  // where this layer set each of the values above
};

// `config` with every member that `layer` sets replaced.
Configuration apply_layer(Configuration config, const ConfigLayer& layer);
// The resolved configuration:1 ends here

// [[file:../notes/configuration.org::*The configuration file][The configuration file:1]]
// One argument as written: the text without quotes, and whether it was quoted.
struct ConfigArgument {
  std::string text;
  bool quoted = false;
};

// The directives of `text`; errors read "FILE:LINE: message".
Outcome<ConfigLayer> parse_config_text(std::string_view text, std::string_view file_name);
// The configuration file:1 ends here

// [[file:../notes/configuration.org::*The environment layer][The environment layer:1]]
// `config` with the environment layer (WEB_CONCURRENCY, *_THREADS, PORT, *_ENV) applied.
Outcome<Configuration> apply_environment(Configuration config, const EnvironmentLookup& env);
// The environment layer:1 ends here

// [[file:../notes/configuration.org::*Command-line flags][Command-line flags:1]]
// What the command line asked for; the file named by -C is read by load_configuration.
struct CommandLine {
  ConfigLayer layer;
  std::string config_file;
  bool show_help = false;
  bool show_version = false;
};

// Parses the arguments after argv[0]; errors read "caracal: -FLAG: message".
Outcome<CommandLine> parse_command_line(std::span<const std::string> args);

std::string usage_text();
// Command-line flags:1 ends here

// [[file:../notes/configuration.org::*Loading: all layers in order][Loading: all layers in order:1]]
// Reads a whole file; the error names the file and the reason.
using FileReader = std::function<Outcome<std::string>(const std::string&)>;
FileReader disk_reader();

// defaults < environment < file (-C) < flags, then the checks that span layers.
Outcome<Configuration> load_configuration(std::span<const std::string> args, const EnvironmentLookup& env,
                                          const FileReader& read_file);

}  // namespace caracal
// Loading: all layers in order:1 ends here

// src/main.cpp: tangled from notes/main.org; edit the note, not this file.

// [[file:../notes/main.org::*The order of things][The order of things:3]]
#include "accept_queue.hpp"
#include "cluster.hpp"
#include "configuration.hpp"
#include "demo_app.hpp"
#include "static_files.hpp"
#include "worker.hpp"
#include "http_session.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>

namespace {

// One TLS context per listener, in listener order (null for plain ones); throws naming the bind.
std::vector<std::shared_ptr<caracal::TlsContext>> tls_contexts_for(const std::vector<caracal::Listener>& listeners) {
  std::vector<std::shared_ptr<caracal::TlsContext>> contexts;
  for (const auto& listener : listeners) {
    const auto& bind = listener.bind;
    contexts.emplace_back();
    if (bind.scheme != caracal::BindUri::Scheme::ssl) continue;
    try {
      contexts.back() = caracal::load_tls_context(bind.cert, bind.key);
    } catch (const std::exception& error) {
      throw std::runtime_error(bind.text + ": " + error.what());
    }
  }
  return contexts;
}

// The worker's knobs, from the directives that tune them.
caracal::WorkerSettings worker_settings_from(const caracal::Configuration& config,
                                             std::vector<std::shared_ptr<caracal::TlsContext>> tls) {
  caracal::WorkerSettings settings;
  settings.min_threads = config.concurrency.min_threads;
  settings.max_threads = config.concurrency.max_threads;
  settings.first_data_timeout = config.first_data_timeout;
  settings.persistent_timeout = config.persistent_timeout;
  settings.shutdown_timeout = config.worker_shutdown_timeout;
  settings.heartbeat_interval = config.worker_check_interval;
  settings.max_keep_alive = config.max_keep_alive;
  settings.environment = config.environment;
  settings.limits = config.limits;
  settings.tls = std::move(tls);
  return settings;
}
// The order of things:3 ends here

// [[file:../notes/main.org::*Choosing the application][Choosing the application:1]]
caracal::Outcome<caracal::App> choose_app(const caracal::Configuration& config) {
  if (config.root.empty()) return caracal::demo_app();
  std::error_code ec;
  if (!std::filesystem::is_directory(config.root, ec))
    return caracal::Outcome<caracal::App>::failure("caracal: root: '" + config.root + "' is not a directory");
  return caracal::static_files_app(config.root);
}

// The pidfile lets supervisors and scripts signal the master; errors name the file.
bool write_pidfile(const std::string& path) {
  if (path.empty()) return true;
  std::ofstream out(path, std::ios::trunc);
  out << ::getpid() << '\n';
  out.flush();
  if (out) return true;
  std::cerr << "caracal: pidfile: cannot write '" << path << "'" << std::endl;
  return false;
}

void remove_pidfile(const std::string& path) {
  if (!path.empty()) ::unlink(path.c_str());
}
// Choosing the application:1 ends here

// [[file:../notes/main.org::*The boot banner][The boot banner:1]]
void print_banner(const caracal::Configuration& config) {
  bool clustered = config.concurrency.is_clustered();
  std::cout << caracal::caracal_version << " starting in " << (clustered ? "cluster" : "single") << " mode...\n"
            << "* Min threads: " << config.concurrency.min_threads << "\n"
            << "* Max threads: " << config.concurrency.max_threads << "\n"
            << "* Environment: " << config.environment << "\n"
            << (clustered ? "* Master PID: " : "* PID: ") << ::getpid() << "\n";
  if (clustered) std::cout << "* Workers: " << config.concurrency.workers << "\n";
  for (const auto& bind : config.binds) std::cout << "* Listening on " << bind.text << "\n";
  std::cout << "Use Ctrl-C to stop" << std::endl;
}

// "tcp://a, unix://b": the addresses a process title shows.
std::string listening_on(const caracal::Configuration& config) {
  std::string text;
  for (const auto& bind : config.binds) text += (text.empty() ? "" : ", ") + bind.text;
  return text;
}
// The boot banner:1 ends here

// [[file:../notes/main.org::*Single mode and cluster mode][Single mode and cluster mode:1]]
int serve_single(const caracal::Configuration& config, const std::vector<caracal::Listener>& listeners,
                 caracal::WorkerSettings worker, caracal::App app) {
  caracal::set_process_title("caracal: single (" + listening_on(config) + ")", "caracal");
  auto fds = caracal::listener_fds(listeners);
  return caracal::run_worker(worker, fds, std::move(app));
}

caracal::ClusterExit serve_cluster(const caracal::Configuration& config, std::vector<caracal::Listener>& listeners,
                                   caracal::WorkerSettings base, caracal::App app) {
  caracal::ClusterSettings settings;
  settings.workers = config.concurrency.workers;
  settings.worker_timeout = config.worker_timeout;
  settings.worker_boot_timeout = config.worker_boot_timeout;
  // The worker's own deadline is the same; the grace lets its 503s out before SIGKILL.
  settings.worker_shutdown_timeout = config.worker_shutdown_timeout + caracal::kCutOffGrace;
  settings.raise_exception_on_sigterm = config.raise_exception_on_sigterm;
  settings.listening_on = listening_on(config);
  settings.stop_accepting = [&listeners] { listeners.clear(); };
  auto fds = caracal::listener_fds(listeners);
  caracal::Cluster cluster(std::move(settings), [fds, base, app](int index, int heartbeat_fd) {
    auto worker = base;
    worker.index = index;
    worker.heartbeat_fd = heartbeat_fd;
    return caracal::run_worker(worker, fds, app);
  });
  return cluster.run();
}

}  // namespace
// Single mode and cluster mode:1 ends here

// [[file:../notes/main.org::*main itself][main itself:3]]
int main(int argc, char** argv) {
  ::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> args(argv + 1, argv + argc);  // before titles overwrite argv
  caracal::init_process_title(argc, argv);
  auto loaded = caracal::load_configuration(args, caracal::process_environment(), caracal::disk_reader());
  if (!loaded) {
    std::cerr << loaded.error() << std::endl;
    return 2;
  }
  auto& config = *loaded;
  if (config.show_help) return std::cout << caracal::usage_text(), 0;
  if (config.show_version) return std::cout << caracal::caracal_version << std::endl, 0;
  auto adopted = caracal::adopt_listeners(caracal::process_environment(), ::getpid());
  if (!adopted) {
    std::cerr << "caracal: " << adopted.error() << std::endl;
    return 1;
  }
  auto listeners = caracal::open_listeners_reusing(config.binds, std::move(*adopted));
  if (!listeners) {
    std::cerr << "caracal: " << listeners.error() << std::endl;
    return 1;
  }
  std::vector<std::shared_ptr<caracal::TlsContext>> tls;
  try {
    tls = tls_contexts_for(*listeners);
  } catch (const std::exception& error) {
    std::cerr << "caracal: " << error.what() << std::endl;
    return 1;
  }
  auto app = choose_app(config);
  if (!app) {
    std::cerr << app.error() << std::endl;
    return 1;
  }
  if (!write_pidfile(config.pidfile)) return 1;
  print_banner(config);
  caracal::ClusterExit exit;
  auto worker = worker_settings_from(config, std::move(tls));
  if (config.concurrency.is_clustered()) {
    exit = serve_cluster(config, *listeners, std::move(worker), std::move(*app));
  } else {
    worker.stop_on_hangup = true;
    exit.status = serve_single(config, *listeners, std::move(worker), std::move(*app));
    if (caracal::last_stop_signal() == SIGTERM && config.raise_exception_on_sigterm) exit.reraise_signal = SIGTERM;
  }
  listeners->clear();
  remove_pidfile(config.pidfile);
  if (exit.reraise_signal != 0) {
    ::signal(exit.reraise_signal, SIG_DFL);
    ::raise(exit.reraise_signal);
  }
  return exit.status;
}
// main itself:3 ends here

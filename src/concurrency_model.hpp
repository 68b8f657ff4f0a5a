// src/concurrency_model.hpp: tangled from notes/concurrency-model.org; edit the note, not this file.

// [[file:../notes/concurrency-model.org::*Errors as values][Errors as values:1]]
#pragma once
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace caracal {

// A value or the message explaining why there is none (std::expected's shape).
template <class T>
class Outcome {
 public:
  Outcome(T value) : state_(std::move(value)) {}
  static Outcome failure(std::string message) { return Outcome(Failure{std::move(message)}); }
  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(state_); }
  const T& value() const { return std::get<0>(state_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const std::string& error() const { return std::get<1>(state_).message; }

 private:
  struct Failure { std::string message; };
  explicit Outcome(Failure f) : state_(std::move(f)) {}
  std::variant<T, Failure> state_;
};
// Errors as values:1 ends here

// [[file:../notes/concurrency-model.org::*The model and its defaults][The model and its defaults:1]]
// How many processes and how many threads in each (Puma's `workers` and `threads`).
struct ConcurrencyModel {
  // Puma 5.6.5's defaults: `workers 0`, `threads 0, 5`.
  static constexpr int default_workers = 0;
  static constexpr int default_min_threads = 0;
  static constexpr int default_max_threads = 5;

  int workers = default_workers;  // 0 = single mode: the master serves, no fork
  int min_threads = default_min_threads;
  int max_threads = default_max_threads;

  bool is_clustered() const { return workers > 0; }
  // Processes that run a thread pool: the workers, or the one process in single mode.
  int serving_processes() const { return is_clustered() ? workers : 1; }
  // The most requests the application can be running at once.
  int capacity() const { return serving_processes() * max_threads; }
};

// The message explaining why a model is unusable, or nullopt when it is fine.
std::optional<std::string> check_concurrency(const ConcurrencyModel& model);
// The model and its defaults:1 ends here

// [[file:../notes/concurrency-model.org::*Environment variables][Environment variables:1]]
// Reads one environment variable; nullopt when unset. Tests pass a map instead.
using EnvironmentLookup = std::function<std::optional<std::string>(std::string_view)>;
// The real process environment.
EnvironmentLookup process_environment();
// A fixed set of variables: what tests use, so that they neither depend on nor
// disturb the environment of the process running them.
EnvironmentLookup fixed_environment(std::map<std::string, std::string> variables);

// A non-negative whole number, or nullopt (no sign, no spaces, no suffix).
std::optional<int> parse_count(std::string_view text);

// `base` with WEB_CONCURRENCY and the *_MIN_THREADS / *_MAX_THREADS variables applied.
Outcome<ConcurrencyModel> concurrency_from_environment(ConcurrencyModel base,
                                                       const EnvironmentLookup& env);

}  // namespace caracal
// Environment variables:1 ends here

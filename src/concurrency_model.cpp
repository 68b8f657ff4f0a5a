// src/concurrency_model.cpp: tangled from notes/concurrency-model.org; edit the note, not this file.

// [[file:../notes/concurrency-model.org::*Validation][Validation:1]]
#include "concurrency_model.hpp"

#include <charconv>
#include <cstdlib>

namespace caracal {

std::optional<std::string> check_concurrency(const ConcurrencyModel& model) {
  if (model.workers < 0)
    return "workers: must be 0 or more, got " + std::to_string(model.workers);
  if (model.min_threads < 0)
    return "threads: minimum must be 0 or more, got " + std::to_string(model.min_threads);
  if (model.max_threads < 1)
    return "threads: maximum must be at least 1, got " + std::to_string(model.max_threads);
  if (model.min_threads > model.max_threads)
    return "threads: minimum " + std::to_string(model.min_threads) +
           " is greater than maximum " + std::to_string(model.max_threads);
  return std::nullopt;
}
// Validation:1 ends here

// [[file:../notes/concurrency-model.org::*Environment variables][Environment variables:3]]
EnvironmentLookup process_environment() {
  return [](std::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

EnvironmentLookup fixed_environment(std::map<std::string, std::string> variables) {
  return [variables = std::move(variables)](std::string_view name) -> std::optional<std::string> {
    auto found = variables.find(std::string(name));
    if (found == variables.end()) return std::nullopt;
    return found->second;
  };
}

std::optional<int> parse_count(std::string_view text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0)
    return std::nullopt;
  return value;
}

namespace {

// Stores the first set variable of `names` (in order of preference) into `target`.
std::optional<std::string> apply_first_set(std::initializer_list<std::string_view> names,
                                           const EnvironmentLookup& env, int& target) {
  for (auto name : names) {
    auto text = env(name);
    if (!text) continue;
    if (auto count = parse_count(*text)) {
      target = *count;
      return std::nullopt;
    }
    return std::string(name) + ": expected a whole number, got '" + *text + "'";
  }
  return std::nullopt;
}

}  // namespace

Outcome<ConcurrencyModel> concurrency_from_environment(ConcurrencyModel base,
                                                       const EnvironmentLookup& env) {
  std::optional<std::string> error;
  if (!error) error = apply_first_set({"WEB_CONCURRENCY"}, env, base.workers);
  if (!error) error = apply_first_set({"PUMA_MIN_THREADS", "RAILS_MIN_THREADS"}, env, base.min_threads);
  if (!error) error = apply_first_set({"PUMA_MAX_THREADS", "RAILS_MAX_THREADS"}, env, base.max_threads);
  if (error) return Outcome<ConcurrencyModel>::failure(*error);
  return base;
}

}  // namespace caracal
// Environment variables:3 ends here

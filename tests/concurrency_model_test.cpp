// tests/concurrency_model_test.cpp: tangled from notes/concurrency-model.org; edit the note, not this file.

// [[file:../notes/concurrency-model.org::*Validation][Validation:2]]
#include "concurrency_model.hpp"

#include <catch2/catch.hpp>

#include <map>

using caracal::ConcurrencyModel;

// A fresh install must behave like a fresh Puma: single mode, 0..5 threads.
TEST_CASE("the default model is single mode with a pool of zero to five threads") {
  ConcurrencyModel model;
  CHECK_FALSE(model.is_clustered());
  CHECK(model.min_threads == 0);
  CHECK(model.max_threads == 5);
  CHECK(model.capacity() == 5);
  CHECK_FALSE(caracal::check_concurrency(model));
}

// Capacity is what operators size databases pools by, so it must multiply.
TEST_CASE("capacity is workers times the maximum threads") {
  ConcurrencyModel model{3, 1, 4};
  CHECK(model.is_clustered());
  CHECK(model.serving_processes() == 3);
  CHECK(model.capacity() == 12);
}

// A pool whose floor is above its ceiling cannot be built.
TEST_CASE("a minimum above the maximum is rejected with both numbers") {
  auto error = caracal::check_concurrency(ConcurrencyModel{0, 8, 4});
  REQUIRE(error);
  CHECK(*error == "threads: minimum 8 is greater than maximum 4");
}

// A pool of zero threads would accept connections and never answer them.
TEST_CASE("a maximum of zero threads is rejected") {
  auto error = caracal::check_concurrency(ConcurrencyModel{0, 0, 0});
  REQUIRE(error);
  CHECK(*error == "threads: maximum must be at least 1, got 0");
}

// Negative counts can only come from a typo and must not reach fork().
TEST_CASE("negative workers or minimum threads are rejected") {
  CHECK(*caracal::check_concurrency(ConcurrencyModel{-1, 0, 5}) ==
        "workers: must be 0 or more, got -1");
  CHECK(*caracal::check_concurrency(ConcurrencyModel{0, -2, 5}) ==
        "threads: minimum must be 0 or more, got -2");
}

// Outcome is the error channel of every process-side module.
TEST_CASE("an outcome holds either a value or a message") {
  caracal::Outcome<int> good = 7;
  auto bad = caracal::Outcome<int>::failure("no");
  CHECK(good.ok());
  CHECK(*good == 7);
  CHECK_FALSE(bad.ok());
  CHECK(bad.error() == "no");
}
// Validation:2 ends here

// [[file:../notes/concurrency-model.org::*Environment variables][Environment variables:4]]
// Platforms size the server with WEB_CONCURRENCY; it must reach the worker count.
TEST_CASE("WEB_CONCURRENCY sets the number of workers") {
  auto model = caracal::concurrency_from_environment({}, caracal::fixed_environment({{"WEB_CONCURRENCY", "3"}}));
  REQUIRE(model.ok());
  CHECK(model->workers == 3);
  CHECK(model->max_threads == 5);
}

// Puma's own names are more specific than Rails' and must win when both are set.
TEST_CASE("PUMA_*_THREADS win over RAILS_*_THREADS") {
  auto env = caracal::fixed_environment({{"PUMA_MAX_THREADS", "8"}, {"RAILS_MAX_THREADS", "3"},
                               {"RAILS_MIN_THREADS", "2"}});
  auto model = caracal::concurrency_from_environment({}, env);
  REQUIRE(model.ok());
  CHECK(model->min_threads == 2);
  CHECK(model->max_threads == 8);
}

// Rails' generated puma.rb copies the maximum into the minimum; caracal reads no such file.
TEST_CASE("RAILS_MAX_THREADS alone sets the maximum and leaves the minimum at its default") {
  auto model = caracal::concurrency_from_environment({}, caracal::fixed_environment({{"RAILS_MAX_THREADS", "3"}}));
  REQUIRE(model.ok());
  CHECK(model->max_threads == 3);
  CHECK(model->min_threads == ConcurrencyModel::default_min_threads);
}

// A typo in the environment must stop the server, naming the variable.
TEST_CASE("an unparsable environment variable is an error naming it") {
  auto model = caracal::concurrency_from_environment({}, caracal::fixed_environment({{"RAILS_MAX_THREADS", "fifty"}}));
  REQUIRE_FALSE(model.ok());
  CHECK(model.error() == "RAILS_MAX_THREADS: expected a whole number, got 'fifty'");
}

// Counts are written by people; signs and trailing junk are mistakes, not numbers.
TEST_CASE("counts accept only plain non-negative whole numbers") {
  CHECK(caracal::parse_count("12") == 12);
  CHECK(caracal::parse_count("0") == 0);
  CHECK_FALSE(caracal::parse_count("-1"));
  CHECK_FALSE(caracal::parse_count("4x"));
  CHECK_FALSE(caracal::parse_count(""));
}
// Environment variables:4 ends here

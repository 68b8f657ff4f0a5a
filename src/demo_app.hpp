// src/demo_app.hpp: tangled from notes/demo-app.org; edit the note, not this file.

// [[file:../notes/demo-app.org::*The routes][The routes:2]]
#pragma once
#include <chrono>
#include <optional>
#include <string_view>

#include "app.hpp"

namespace caracal {

// The routes tests and benchmarks rely on: /, /hello, /sleep, /pid, /echo, /stats.
App demo_app();

namespace detail {
// The longest /sleep accepted: long enough for any timeout test, short enough
// that a typo cannot park a pool thread for hours.
inline constexpr std::chrono::milliseconds kLongestDemoSleep{60000};
// The duration in "/sleep?ms=N", or nullopt if absent, not a number, or too long.
std::optional<std::chrono::milliseconds> demo_sleep_duration(std::string_view query);
}  // namespace detail

}  // namespace caracal
// The routes:2 ends here

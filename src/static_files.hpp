// src/static_files.hpp: tangled from notes/static-files.org; edit the note, not this file.

// [[file:../notes/static-files.org::*Interface][Interface:2]]
#pragma once
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "app.hpp"

namespace caracal {

// Serves the files under `root` for GET and HEAD, with validators and single ranges.
App static_files_app(std::filesystem::path root);

namespace detail {

// The Content-Type for a file name, from its extension; application/octet-stream if unknown.
// Text types say charset=utf-8 so browsers do not guess the encoding.
std::string_view content_type_for(const std::filesystem::path& file);

// What a Range header asks of a file of a given size.
enum class RangeVerdict { whole_file, partial, unsatisfiable };
struct RangeRequest {
  RangeVerdict verdict = RangeVerdict::whole_file;
  std::uint64_t offset = 0;  // for partial: the first byte
  std::uint64_t length = 0;  // for partial: how many bytes
};
// Judges a Range header value ("bytes=0-99") against a file of `size` bytes.
RangeRequest evaluate_range(std::string_view header, std::uint64_t size);

// `t` as an IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT".
std::string http_date(std::time_t t);
// The time an IMF-fixdate names; nullopt for anything else (obsolete formats included).
std::optional<std::time_t> parse_http_date(std::string_view text);

// What a decoded path names under the root.
enum class Lookup { file, directory, missing, forbidden };
struct Found {
  Lookup what = Lookup::missing;
  std::filesystem::path path;  // canonical; set for file and directory
};
// Resolves `decoded_path` ("/a/b.html") under the canonical `root`, refusing escapes.
Found find_beneath(const std::filesystem::path& root, std::string_view decoded_path);

}  // namespace detail
}  // namespace caracal
// Interface:2 ends here

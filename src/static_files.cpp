// src/static_files.cpp: tangled from notes/static-files.org; edit the note, not this file.

// [[file:../notes/static-files.org::*Interface][Interface:4]]
#include "static_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <memory>
#include <mutex>

namespace caracal {
namespace fs = std::filesystem;
// Interface:4 ends here

// [[file:../notes/static-files.org::*Methods][Methods:2]]
namespace {

// The one place that builds an error or redirect body: the status and its phrase.
Response status_response(int status) {
  return text_response(status, std::string(reason_phrase(status)) + "\n");
}

}  // namespace
// Methods:2 ends here

// [[file:../notes/static-files.org::*Mapping a path to a file, safely][Mapping a path to a file, safely:2]]
namespace {

bool has_dot_dot_segment(std::string_view path) {
  while (!path.empty()) {
    std::size_t slash = path.find('/');
    if (path.substr(0, slash) == "..") return true;
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return false;
}

// Component-wise, so that /srv/www-private is not taken for a child of /srv/www.
bool is_beneath(const fs::path& root, const fs::path& resolved) {
  auto [root_end, ignored] = std::mismatch(root.begin(), root.end(), resolved.begin(), resolved.end());
  return root_end == root.end();
}

}  // namespace
// Mapping a path to a file, safely:2 ends here

// [[file:../notes/static-files.org::*Mapping a path to a file, safely][Mapping a path to a file, safely:3]]
detail::Found detail::find_beneath(const fs::path& root, std::string_view decoded_path) {
  std::error_code error;
  fs::path resolved = fs::canonical(root / fs::path(decoded_path).relative_path(), error);
  if (error) return {error == std::errc::permission_denied ? Lookup::forbidden : Lookup::missing, {}};
  if (!is_beneath(root, resolved)) return {Lookup::forbidden, {}};
  fs::file_status status = fs::status(resolved, error);
  if (fs::is_directory(status)) return {Lookup::directory, resolved};
  // "/page.html/" names a directory that is not there, whatever realpath thinks.
  if (decoded_path.ends_with('/')) return {Lookup::missing, {}};
  if (!fs::is_regular_file(status)) return {Lookup::forbidden, {}};
  if (::access(resolved.c_str(), R_OK) != 0) return {Lookup::forbidden, {}};
  return {Lookup::file, resolved};
}
// Mapping a path to a file, safely:3 ends here

// [[file:../notes/static-files.org::*Mapping a path to a file, safely][Mapping a path to a file, safely:6]]
namespace {

// "/docs?x=1" -> "/docs/?x=1", never starting with "//" (another host to a browser).
std::string directory_location(const Request& request) {
  std::string location = "/" + request.path.substr(request.path.find_first_not_of('/')) + "/";
  if (!request.query.empty()) location += "?" + request.query;
  return location;
}

}  // namespace
// Mapping a path to a file, safely:6 ends here

// [[file:../notes/static-files.org::*Content types][Content types:3]]
std::string_view detail::content_type_for(const fs::path& file) {
  static constexpr std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},   {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},     {".js", "text/javascript; charset=utf-8"},
      {".txt", "text/plain; charset=utf-8"},   {".org", "text/plain; charset=utf-8"},
      {".mmd", "text/plain; charset=utf-8"},   {".json", "application/json"},
      {".xml", "application/xml"},             {".svg", "image/svg+xml"},
      {".png", "image/png"},                   {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},                 {".gif", "image/gif"},
      {".ico", "image/vnd.microsoft.icon"},    {".pdf", "application/pdf"},
      {".wasm", "application/wasm"},           {".woff2", "font/woff2"},
  };
  std::string extension = file.extension().string();
  for (const auto& [known, type] : kTypes)
    if (equals_ignoring_case(extension, known)) return type;
  return "application/octet-stream";
}
// Content types:3 ends here

// [[file:../notes/static-files.org::*Validators: ETag and Last-Modified][Validators: ETag and Last-Modified:2]]
namespace {
constexpr std::array<const char*, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<const char*, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
}  // namespace

std::string detail::http_date(std::time_t t) {
  std::tm utc{};
  ::gmtime_r(&t, &utc);
  char text[40];
  std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[utc.tm_wday],
                utc.tm_mday, kMonths[utc.tm_mon], utc.tm_year + 1900, utc.tm_hour, utc.tm_min,
                utc.tm_sec);
  return text;
}

std::optional<std::time_t> detail::parse_http_date(std::string_view text) {
  if (text.size() != 29 || !text.ends_with(" GMT")) return std::nullopt;
  std::tm utc{};
  char month[4] = {};
  std::string copy(text);  // sscanf needs a terminated string
  if (std::sscanf(copy.c_str(), "%*3s, %2d %3s %4d %2d:%2d:%2d GMT", &utc.tm_mday, month,
                  &utc.tm_year, &utc.tm_hour, &utc.tm_min, &utc.tm_sec) != 6)
    return std::nullopt;
  auto named = std::find_if(kMonths.begin(), kMonths.end(),
                            [&month](const char* m) { return std::string_view(m) == month; });
  if (named == kMonths.end()) return std::nullopt;
  utc.tm_mon = static_cast<int>(named - kMonths.begin());
  utc.tm_year -= 1900;
  return ::timegm(&utc);
}
// Validators: ETag and Last-Modified:2 ends here

// [[file:../notes/static-files.org::*Validators: ETag and Last-Modified][Validators: ETag and Last-Modified:3]]
namespace {

// What the app needs to know about a file, from one stat().
struct FileFacts {
  std::uint64_t size = 0;
  std::time_t modified = 0;        // seconds, for Last-Modified
  std::uint64_t modified_ns = 0;   // nanoseconds, for the ETag
};

std::optional<FileFacts> stat_file(const fs::path& file) {
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) return std::nullopt;
  return FileFacts{static_cast<std::uint64_t>(info.st_size), info.st_mtim.tv_sec,
                   static_cast<std::uint64_t>(info.st_mtim.tv_sec) * 1000000000u +
                       static_cast<std::uint64_t>(info.st_mtim.tv_nsec)};
}

// A strong tag: the bytes are served untransformed, so same size and time means same bytes.
std::string entity_tag(const FileFacts& facts) {
  char tag[48];
  std::snprintf(tag, sizeof tag, "\"%llx-%llx\"", static_cast<unsigned long long>(facts.size),
                static_cast<unsigned long long>(facts.modified_ns));
  return tag;
}

}  // namespace
// Validators: ETag and Last-Modified:3 ends here

// [[file:../notes/static-files.org::*Validators: ETag and Last-Modified][Validators: ETag and Last-Modified:4]]
namespace {

std::string_view trim(std::string_view text) {
  std::size_t first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// Weak comparison (RFC 9110 section 8.8.3.2): a W/ prefix on the client's tag is ignored.
bool any_tag_matches(std::string_view list, std::string_view etag) {
  while (!list.empty()) {
    std::size_t comma = list.find(',');
    std::string_view tag = trim(list.substr(0, comma));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (tag.starts_with("W/")) tag.remove_prefix(2);
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

bool client_copy_is_current(const Headers& headers, std::string_view etag, std::time_t modified) {
  if (auto tags = headers.find("If-None-Match")) return any_tag_matches(*tags, etag);
  if (auto since = headers.find("If-Modified-Since")) {
    std::optional<std::time_t> date = detail::parse_http_date(*since);
    return date && modified <= *date;
  }
  return false;
}

}  // namespace
// Validators: ETag and Last-Modified:4 ends here

// [[file:../notes/static-files.org::*Ranges][Ranges:2]]
namespace {

// The whole of `digits` as a number; nullopt if empty, not all digits, or too large.
std::optional<std::uint64_t> parse_count(std::string_view digits) {
  std::uint64_t value = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (digits.empty() || error != std::errc() || end != digits.data() + digits.size())
    return std::nullopt;
  return value;
}

using detail::RangeRequest;
using detail::RangeVerdict;

// "bytes=-n": the last n bytes; a zero-length suffix or an empty file cannot be satisfied.
RangeRequest suffix_range(std::string_view last, std::uint64_t size) {
  std::optional<std::uint64_t> count = parse_count(last);
  if (!count) return {};
  if (*count == 0 || size == 0) return {RangeVerdict::unsatisfiable};
  std::uint64_t length = std::min(*count, size);
  return {RangeVerdict::partial, size - length, length};
}

// "bytes=a-b" or "bytes=a-": from a, to b or the end, clamped to the last byte.
RangeRequest bounded_range(std::string_view first, std::string_view last, std::uint64_t size) {
  std::optional<std::uint64_t> from = parse_count(first);
  std::optional<std::uint64_t> to = last.empty() ? std::optional(UINT64_MAX) : parse_count(last);
  if (!from || !to || *to < *from) return {};
  if (*from >= size) return {RangeVerdict::unsatisfiable};
  std::uint64_t end = std::min(*to, size - 1);
  return {RangeVerdict::partial, *from, end - *from + 1};
}

}  // namespace

detail::RangeRequest detail::evaluate_range(std::string_view header, std::uint64_t size) {
  constexpr std::string_view kUnit = "bytes=";
  if (header.size() < kUnit.size() || !equals_ignoring_case(header.substr(0, kUnit.size()), kUnit))
    return {};
  std::string_view spec = trim(header.substr(kUnit.size()));
  std::size_t dash = spec.find('-');
  // Several ranges would need multipart/byteranges; the whole file is a valid answer.
  if (spec.find(',') != std::string_view::npos || dash == std::string_view::npos) return {};
  std::string_view first = trim(spec.substr(0, dash));
  std::string_view last = trim(spec.substr(dash + 1));
  return first.empty() ? suffix_range(last, size) : bounded_range(first, last, size);
}
// Ranges:2 ends here

// [[file:../notes/static-files.org::*Ranges][Ranges:3]]
namespace {

// The Range header's verdict, or whole_file when it does not apply to this request.
detail::RangeRequest requested_range(const Request& request, const FileFacts& facts,
                                     std::string_view etag, std::string_view modified) {
  std::optional<std::string_view> range = request.headers.find("Range");
  if (!range || request.method != "GET") return {};
  // If-Range: the client's partial copy must be of this very version (strong comparison).
  std::optional<std::string_view> condition = request.headers.find("If-Range");
  if (condition && *condition != etag && *condition != modified) return {};
  return detail::evaluate_range(*range, facts.size);
}

}  // namespace
// Ranges:3 ends here

// [[file:../notes/static-files.org::*Answering][Answering:5]]
namespace {

// "bytes 2-5/10" for the 4 bytes at offset 2 of a 10-byte file.
std::string content_range(const detail::RangeRequest& range, std::uint64_t size) {
  return "bytes " + std::to_string(range.offset) + "-" +
         std::to_string(range.offset + range.length - 1) + "/" + std::to_string(size);
}

}  // namespace
// Answering:5 ends here

// [[file:../notes/static-files.org::*Answering][Answering:6]]
namespace {

Response serve_file(const fs::path& file, const Request& request) {
  std::optional<FileFacts> found = stat_file(file);
  if (!found) return status_response(404);
  const FileFacts& facts = *found;
  std::string etag = entity_tag(facts);
  std::string modified = detail::http_date(facts.modified);
  Response response;
  response.headers.set("ETag", etag);
  response.headers.set("Last-Modified", modified);
  response.headers.set("Accept-Ranges", "bytes");
  if (client_copy_is_current(request.headers, etag, facts.modified)) {
    response.status = 304;
    response.body = std::string();
    return response;
  }
  detail::RangeRequest range = requested_range(request, facts, etag, modified);
  if (range.verdict == detail::RangeVerdict::unsatisfiable) {
    // The error body replaces the file, but the validators still describe it.
    Response refusal = status_response(416);
    for (auto& [name, value] : response.headers.fields) refusal.headers.set(name, value);
    refusal.headers.set("Content-Range", "bytes */" + std::to_string(facts.size));
    return refusal;
  }
  FileBody body{file.string(), 0, facts.size};
  if (range.verdict == detail::RangeVerdict::partial) {
    response.status = 206;
    body = FileBody{file.string(), range.offset, range.length};
    response.headers.set("Content-Range", content_range(range, facts.size));
  }
  response.headers.set("Content-Type", std::string(detail::content_type_for(file)));
  response.headers.set("Content-Length", std::to_string(body.length));
  response.body = std::move(body);
  return response;
}
// Answering:6 ends here

// [[file:../notes/static-files.org::*Answering][Answering:9]]
Response serve_static_request(const fs::path& root, const Request& request) {
  if (request.method != "GET" && request.method != "HEAD") {
    Response refusal = status_response(405);
    refusal.headers.set("Allow", "GET, HEAD");
    return refusal;
  }
  std::optional<std::string> path = percent_decode_path(request.path);
  if (!path || !path->starts_with('/')) return status_response(400);
  if (has_dot_dot_segment(*path)) return status_response(403);
  detail::Found found = detail::find_beneath(root, *path);
  if (found.what == detail::Lookup::directory && !path->ends_with('/')) {
    Response redirect = status_response(301);
    redirect.headers.set("Location", directory_location(request));
    return redirect;
  }
  if (found.what == detail::Lookup::directory) {
    found = detail::find_beneath(root, *path + "index.html");
    if (found.what == detail::Lookup::directory) found.what = detail::Lookup::missing;
  }
  // Kept apart on purpose: 403 tells the site's owner a permission or a link is wrong.
  if (found.what == detail::Lookup::missing) return status_response(404);
  if (found.what == detail::Lookup::forbidden) return status_response(403);
  return serve_file(found.path, request);
}

}  // namespace
// Answering:9 ends here

// [[file:../notes/static-files.org::*Answering][Answering:10]]
namespace {
// The root as given, canonical from the first moment it exists; shared by every pool thread.
class StaticRoot {
 public:
  explicit StaticRoot(const fs::path& given) : stand_in_(fs::absolute(given).lexically_normal()) { try_resolve(); }

  // The canonical root, or the lexical stand-in while the directory does not exist.
  const fs::path& current() {
    if (!resolved_.load(std::memory_order_acquire)) try_resolve();
    return resolved_.load(std::memory_order_acquire) ? canonical_ : stand_in_;
  }

 private:
  void try_resolve() {
    std::lock_guard lock(mutex_);
    if (resolved_.load(std::memory_order_relaxed)) return;
    std::error_code error;
    fs::path found = fs::canonical(stand_in_, error);
    if (error) return;
    canonical_ = std::move(found);
    resolved_.store(true, std::memory_order_release);
  }

  const fs::path stand_in_;
  std::mutex mutex_;
  fs::path canonical_;  // written once, under mutex_, before resolved_ is set
  std::atomic<bool> resolved_{false};
};
}  // namespace

App static_files_app(fs::path root) {
  auto shared_root = std::make_shared<StaticRoot>(root);
  return [shared_root](Request& request) { return serve_static_request(shared_root->current(), request); };
}

}  // namespace caracal
// Answering:10 ends here

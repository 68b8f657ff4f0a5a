// src/app.cpp: tangled from notes/app.org; edit the note, not this file.

// [[file:../notes/app.org::*Headers][Headers:4]]
#include "app.hpp"

#include <algorithm>
#include <stdexcept>

namespace caracal {
namespace {

// ASCII only: header names are tokens, and std::tolower would consult the locale.
char lower_ascii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      int high = i + 2 < in.size() ? hex_value(in[i + 1]) : -1;
      int low = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
      if (high < 0 || low < 0) return std::nullopt;
      c = static_cast<char>(high * 16 + low);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

}  // namespace

bool detail::equals_ignoring_case(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(),
                    [](char x, char y) { return lower_ascii(x) == lower_ascii(y); });
}

std::optional<std::string_view> Headers::find(std::string_view name) const {
  for (const auto& [key, value] : fields)
    if (detail::equals_ignoring_case(key, name)) return std::string_view(value);
  return std::nullopt;
}
// Headers:4 ends here

// [[file:../notes/app.org::*Headers][Headers:5]]
void Headers::set(std::string name, std::string value) {
  auto same_name = [&name](const auto& field) {
    return detail::equals_ignoring_case(field.first, name);
  };
  auto first = std::find_if(fields.begin(), fields.end(), same_name);
  if (first == fields.end()) {
    fields.emplace_back(std::move(name), std::move(value));
    return;
  }
  // Erasing after `first` leaves `first` itself valid.
  fields.erase(std::remove_if(first + 1, fields.end(), same_name), fields.end());
  first->first = std::move(name);
  first->second = std::move(value);
}

void Headers::add(std::string name, std::string value) {
  fields.emplace_back(std::move(name), std::move(value));
}
// Headers:5 ends here

// [[file:../notes/app.org::*Building a stack of middleware][Building a stack of middleware:2]]
App AppBuilder::run(App inner) const {
  for (auto layer = layers_.rbegin(); layer != layers_.rend(); ++layer)
    inner = (*layer)(std::move(inner));
  return inner;
}
// Building a stack of middleware:2 ends here

// [[file:../notes/app.org::*The crashing middleware of the root note][The crashing middleware of the root note:2]]
Response CrashBeforeApp::operator()(Request&) {
  throw std::runtime_error("Simulated crash before app");
}
// The crashing middleware of the root note:2 ends here

// [[file:../notes/app.org::*Reason phrases][Reason phrases:1]]
std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}
// Reason phrases:1 ends here

// [[file:../notes/app.org::*Percent-decoding][Percent-decoding:4]]
std::optional<std::string> percent_decode_path(std::string_view path) {
  return percent_decode(path, false);
}
// Percent-decoding:4 ends here

// [[file:../notes/app.org::*Query parameters][Query parameters:1]]
std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    std::size_t eq = pair.find('=');
    std::optional<std::string> key = percent_decode(pair.substr(0, eq), true);
    if (key && *key == name)
      return percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
  }
  return std::nullopt;
}

Response text_response(int status, std::string body, std::string content_type) {
  Response response;
  response.status = status;
  response.headers.set("Content-Type", std::move(content_type));
  response.body = std::move(body);
  return response;
}

}  // namespace caracal
// Query parameters:1 ends here

// tests/http_test_client.hpp: tangled from notes/http-session.org; edit the note, not this file.

// [[file:../notes/http-session.org::*A small HTTP client for tests][A small HTTP client for tests:2]]
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace test_client {

// A blocking client socket connected to 127.0.0.1:port, or -1.
inline int connect_to(std::uint16_t port, int receive_timeout_seconds = 10) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{receive_timeout_seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) return fd;
  ::close(fd);
  return -1;
}

inline bool send_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t sent = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (sent <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(sent));
  }
  return true;
}

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  bool has(const std::string& name) const { return headers.count(name) > 0; }
};
// A small HTTP client for tests:2 ends here

// [[file:../notes/http-session.org::*A small HTTP client for tests][A small HTTP client for tests:3]]
// Reads replies from one connection, keeping bytes that belong to the next one.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  // The next reply, or nullopt on EOF, timeout or garbage. A 100 Continue is a reply too.
  std::optional<Reply> read_reply(bool head_request = false) {
    std::size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos)
      if (!fill()) return std::nullopt;
    Reply reply;
    if (!parse_head(buffer_.substr(0, end), reply)) return std::nullopt;
    buffer_.erase(0, end + 4);
    if (head_request || reply.status == 100 || reply.status == 204 || reply.status == 304)
      return reply;
    if (reply.has("transfer-encoding") && reply.headers["transfer-encoding"] == "chunked") {
      if (!read_chunked(reply.body)) return std::nullopt;
    } else if (reply.has("content-length")) {
      if (!take(std::stoul(reply.headers["content-length"]), reply.body)) return std::nullopt;
    } else {
      while (fill()) {}
      reply.body = std::move(buffer_);
      buffer_.clear();
    }
    return reply;
  }

  // True when the server closed the connection (and sent nothing more).
  bool at_eof() { return buffer_.empty() && !fill(); }
  // Bytes received but not yet consumed by a reply.
  const std::string& leftover() const { return buffer_; }
// A small HTTP client for tests:3 ends here

// [[file:../notes/http-session.org::*A small HTTP client for tests][A small HTTP client for tests:4]]
private:
 bool fill() {
   char bytes[16384];
   const ssize_t got = ::recv(fd_, bytes, sizeof bytes, 0);
   if (got <= 0) return false;
   buffer_.append(bytes, static_cast<std::size_t>(got));
   return true;
 }

 bool take(std::size_t count, std::string& out) {
   while (buffer_.size() < count)
     if (!fill()) return false;
   out.append(buffer_, 0, count);
   buffer_.erase(0, count);
   return true;
 }

 bool read_line(std::string& line) {
   std::size_t end;
   while ((end = buffer_.find("\r\n")) == std::string::npos)
     if (!fill()) return false;
   line = buffer_.substr(0, end);
   buffer_.erase(0, end + 2);
   return true;
 }

 bool read_chunked(std::string& out) {
   for (std::string line;;) {
     if (!read_line(line)) return false;
     const std::size_t size = std::stoul(line, nullptr, 16);
     if (size == 0) return read_line(line);  // the empty line after the last chunk
     std::string crlf;
     if (!take(size, out) || !take(2, crlf)) return false;
   }
 }
// A small HTTP client for tests:4 ends here

// [[file:../notes/http-session.org::*A small HTTP client for tests][A small HTTP client for tests:5]]
static bool parse_head(const std::string& head, Reply& reply) {
    if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) return false;
    reply.status = std::stoi(head.substr(9, 3));
    std::size_t start = head.find("\r\n");
    while (start != std::string::npos) {
      const std::size_t end = head.find("\r\n", start + 2);
      const std::string line = head.substr(start + 2, end - start - 2);
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return std::tolower(c); });
        reply.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      start = end;
    }
    return true;
  }

  int fd_;
  std::string buffer_;
};

}  // namespace test_client
// A small HTTP client for tests:5 ends here

// tests/static_files_test.cpp: tangled from notes/static-files.org; edit the note, not this file.

// [[file:../notes/static-files.org::*Interface][Interface:6]]
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "static_files.hpp"

namespace fs = std::filesystem;
using caracal::FileBody;
using caracal::Request;
using caracal::Response;

namespace {

const std::string kPage = "<h1>caracal</h1>\n";  // 17 bytes
const std::string kTen = "0123456789";           // a file whose ranges are easy to check

// A fresh directory under /tmp, world-traversable so a dropped-privilege child can use it.
struct TempRoot {
  fs::path dir;
  TempRoot() {
    char name[] = "/tmp/caracal-static-XXXXXX";
    dir = ::mkdtemp(name);
    fs::permissions(dir, fs::perms(0755));
  }
  ~TempRoot() {
    std::error_code ignored;
    fs::remove_all(dir, ignored);
  }
  fs::path write(const std::string& relative, const std::string& content) const {
    fs::path file = dir / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }
};

Response send(const caracal::App& app, std::string method, std::string target,
              std::vector<std::pair<std::string, std::string>> headers = {}) {
  Request request;
  request.method = std::move(method);
  request.target = target;
  std::size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) request.query = target.substr(question + 1);
  for (auto& [name, value] : headers) request.headers.add(name, value);
  return app(request);
}

std::string header(const Response& response, std::string_view name) {
  return std::string(response.headers.find(name).value_or("(absent)"));
}

}  // namespace
// Interface:6 ends here

// [[file:../notes/static-files.org::*Methods][Methods:3]]
// A file server has no use for a body; the Allow header tells the client what would work.
TEST_CASE("methods other than GET and HEAD get 405 with Allow", "[static]") {
  TempRoot root;
  root.write("index.html", kPage);
  Response response = send(caracal::static_files_app(root.dir), "POST", "/index.html");
  REQUIRE(response.status == 405);
  REQUIRE(header(response, "Allow") == "GET, HEAD");
}

// HEAD must describe exactly what GET would send; the session drops the body.
TEST_CASE("HEAD answers with the same headers and file range as GET", "[static]") {
  TempRoot root;
  root.write("index.html", kPage);
  caracal::App app = caracal::static_files_app(root.dir);
  Response get = send(app, "GET", "/index.html");
  Response head = send(app, "HEAD", "/index.html");
  REQUIRE(head.status == 200);
  REQUIRE(head.headers.fields == get.headers.fields);
  REQUIRE(std::get<FileBody>(head.body).length == kPage.size());
}
// Methods:3 ends here

// [[file:../notes/static-files.org::*Mapping a path to a file, safely][Mapping a path to a file, safely:7]]
// The basic promise: a file under the root comes back whole, as a range the session can sendfile.
TEST_CASE("a file under the root is served whole with its length and type", "[static]") {
  TempRoot root;
  fs::path file = root.write("docs/page.html", kPage);
  Response response = send(caracal::static_files_app(root.dir), "GET", "/docs/page.html");
  REQUIRE(response.status == 200);
  const auto& body = std::get<FileBody>(response.body);
  REQUIRE(body.path == fs::canonical(file).string());
  REQUIRE(body.offset == 0);
  REQUIRE(body.length == kPage.size());
  REQUIRE(header(response, "Content-Length") == std::to_string(kPage.size()));
  REQUIRE(header(response, "Content-Type") == "text/html; charset=utf-8");
  REQUIRE(header(response, "Accept-Ranges") == "bytes");
}

// File names with spaces arrive escaped and must still find the file.
TEST_CASE("an escaped path is decoded before the lookup", "[static]") {
  TempRoot root;
  root.write("my notes.txt", kTen);
  Response response = send(caracal::static_files_app(root.dir), "GET", "/my%20notes.txt");
  REQUIRE(response.status == 200);
}

// A missing file must be an ordinary 404, not an exception or a 500.
TEST_CASE("a missing file is 404", "[static]") {
  TempRoot root;
  caracal::App app = caracal::static_files_app(root.dir);
  REQUIRE(send(app, "GET", "/nothing.html").status == 404);
  REQUIRE(send(app, "GET", "/no/such/dir/").status == 404);
}

// "/page.html/" would let relative links resolve wrongly; nothing lives there.
TEST_CASE("a file named with a trailing slash is 404", "[static]") {
  TempRoot root;
  root.write("page.html", kPage);
  REQUIRE(send(caracal::static_files_app(root.dir), "GET", "/page.html/").status == 404);
}

// A directory URL ending in a slash is the page its index.html holds.
TEST_CASE("a directory with a trailing slash serves its index.html", "[static]") {
  TempRoot root;
  fs::path index = root.write("docs/index.html", kPage);
  caracal::App app = caracal::static_files_app(root.dir);
  Response response = send(app, "GET", "/docs/");
  REQUIRE(response.status == 200);
  REQUIRE(std::get<FileBody>(response.body).path == fs::canonical(index).string());
  REQUIRE(send(app, "GET", "/").status == 404);  // the root itself has no index here
}

// Without the slash, the page's relative links would resolve one level too high.
TEST_CASE("a directory without its trailing slash is redirected with 301", "[static]") {
  TempRoot root;
  root.write("docs/index.html", kPage);
  caracal::App app = caracal::static_files_app(root.dir);
  Response response = send(app, "GET", "/docs?lang=en");
  REQUIRE(response.status == 301);
  REQUIRE(header(response, "Location") == "/docs/?lang=en");
}

// "//host" in a Location is another site to a browser: an open redirect.
TEST_CASE("the directory redirect never starts with two slashes", "[static]") {
  TempRoot root;
  root.write("evil.example/index.html", kPage);
  Response response = send(caracal::static_files_app(root.dir), "GET", "//evil.example");
  REQUIRE(response.status == 301);
  REQUIRE(header(response, "Location") == "/evil.example/");
}

// Listings leak file names nobody meant to publish; no index means nothing to show.
TEST_CASE("a directory without index.html is 404", "[static]") {
  TempRoot root;
  root.write("docs/readme.txt", kTen);
  REQUIRE(send(caracal::static_files_app(root.dir), "GET", "/docs/").status == 404);
}

// The classic traversal, raw or escaped, must never reach a file beside the root.
TEST_CASE("a path with a dot-dot segment is refused with 403", "[static]") {
  TempRoot outer;
  outer.write("secret.txt", "do not serve");
  fs::path www = outer.dir / "www";
  outer.write("www/index.html", kPage);
  caracal::App app = caracal::static_files_app(www);
  REQUIRE(send(app, "GET", "/../secret.txt").status == 403);
  REQUIRE(send(app, "GET", "/%2e%2e/secret.txt").status == 403);
  REQUIRE(send(app, "GET", "/a/..%2F..%2Fsecret.txt").status == 403);
}

// A NUL cuts a file name short at open(); a broken escape has no honest meaning.
TEST_CASE("a path with %00 or a broken escape is 400", "[static]") {
  TempRoot root;
  root.write("index.html", kPage);
  caracal::App app = caracal::static_files_app(root.dir);
  REQUIRE(send(app, "GET", "/index.html%00.txt").status == 400);
  REQUIRE(send(app, "GET", "/index%zz.html").status == 400);
  REQUIRE(send(app, "GET", "index.html").status == 400);
}

// A symlink is a second way out of the root; only its target decides.
TEST_CASE("a symlink leading out of the root is 403 and one inside it is followed", "[static]") {
  TempRoot outer;
  fs::path secret = outer.write("secret.txt", "do not serve");
  fs::path www = outer.dir / "www";
  fs::path page = outer.write("www/page.html", kPage);
  fs::create_symlink(secret, www / "leak.txt");
  fs::create_symlink(page, www / "alias.html");
  caracal::App app = caracal::static_files_app(www);
  REQUIRE(send(app, "GET", "/leak.txt").status == 403);
  REQUIRE(send(app, "GET", "/alias.html").status == 200);
}

// A sibling whose name extends the root's must not pass a string-prefix check.
TEST_CASE("a symlink into a sibling directory sharing the root's name prefix is 403", "[static]") {
  TempRoot outer;
  fs::path secret = outer.write("www-private/secret.txt", "do not serve");
  fs::path www = outer.dir / "www";
  outer.write("www/index.html", kPage);
  fs::create_symlink(secret, www / "leak.txt");
  REQUIRE(send(caracal::static_files_app(www), "GET", "/leak.txt").status == 403);
}

// A FIFO would block the session's sendfile forever; only regular files are served.
TEST_CASE("something that is not a regular file is 403", "[static]") {
  TempRoot root;
  REQUIRE(::mkfifo((root.dir / "pipe").c_str(), 0644) == 0);
  REQUIRE(send(caracal::static_files_app(root.dir), "GET", "/pipe").status == 403);
}

// The session must never fail to open what the app promised; root reads anything, so drop to nobody.
TEST_CASE("a file the server cannot read is 403", "[static]") {
  TempRoot root;
  fs::path file = root.write("private.html", kPage);
  fs::permissions(file, fs::perms::none);
  pid_t child = ::fork();
  if (child == 0) {
    if (::geteuid() == 0 && ::setuid(65534) != 0) ::_exit(2);
    Response response = send(caracal::static_files_app(root.dir), "GET", "/private.html");
    ::_exit(response.status == 403 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}
// Mapping a path to a file, safely:7 ends here

// [[file:../notes/static-files.org::*Content types][Content types:4]]
// Browsers render or download by this header; a wrong type breaks pages silently.
TEST_CASE("the content type follows the extension, whatever its case", "[static][types]") {
  using caracal::detail::content_type_for;
  REQUIRE(content_type_for("a/index.html") == "text/html; charset=utf-8");
  REQUIRE(content_type_for("style.CSS") == "text/css; charset=utf-8");
  REQUIRE(content_type_for("app.js") == "text/javascript; charset=utf-8");
  REQUIRE(content_type_for("data.json") == "application/json");
  REQUIRE(content_type_for("figure.svg") == "image/svg+xml");
  REQUIRE(content_type_for("photo.JPG") == "image/jpeg");
  REQUIRE(content_type_for("module.wasm") == "application/wasm");
  REQUIRE(content_type_for("font.woff2") == "font/woff2");
  REQUIRE(content_type_for("notes/app.org") == "text/plain; charset=utf-8");
  REQUIRE(content_type_for("diagrams/app.mmd") == "text/plain; charset=utf-8");
}

// An unknown type must be downloaded, never rendered as something it is not.
TEST_CASE("an unknown or missing extension is application/octet-stream", "[static][types]") {
  using caracal::detail::content_type_for;
  REQUIRE(content_type_for("archive.tar.zst") == "application/octet-stream");
  REQUIRE(content_type_for("Makefile") == "application/octet-stream");
}
// Content types:4 ends here

// [[file:../notes/static-files.org::*Validators: ETag and Last-Modified][Validators: ETag and Last-Modified:5]]
// Last-Modified must be English and in GMT whatever the locale, or caches ignore it.
TEST_CASE("HTTP dates are formatted and parsed as IMF-fixdate", "[static][dates]") {
  REQUIRE(caracal::detail::http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  REQUIRE(caracal::detail::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  REQUIRE_FALSE(caracal::detail::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").has_value());
  REQUIRE_FALSE(caracal::detail::parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT").has_value());
}

// Caches rely on the tag staying put while the file does, and changing when it changes.
TEST_CASE("the ETag is stable for an unchanged file and changes with it", "[static][validators]") {
  TempRoot root;
  root.write("a.txt", kTen);
  caracal::App app = caracal::static_files_app(root.dir);
  std::string first = header(send(app, "GET", "/a.txt"), "ETag");
  REQUIRE(first.front() == '"');
  REQUIRE(header(send(app, "GET", "/a.txt"), "ETag") == first);
  root.write("a.txt", kTen + "!");
  REQUIRE(header(send(app, "GET", "/a.txt"), "ETag") != first);
}

// A revalidation that matches must cost the client no body at all.
TEST_CASE("a matching If-None-Match gets 304 with no body", "[static][validators]") {
  TempRoot root;
  root.write("a.txt", kTen);
  caracal::App app = caracal::static_files_app(root.dir);
  std::string etag = header(send(app, "GET", "/a.txt"), "ETag");
  for (std::string condition : {etag, "W/" + etag, "\"other\", " + etag, std::string("*")}) {
    Response response = send(app, "GET", "/a.txt", {{"If-None-Match", condition}});
    REQUIRE(response.status == 304);
    REQUIRE(std::get<std::string>(response.body).empty());
    REQUIRE(header(response, "ETag") == etag);
  }
}

// A stale tag means the client's copy is old: it must get the whole new file.
TEST_CASE("a different If-None-Match gets the file", "[static][validators]") {
  TempRoot root;
  root.write("a.txt", kTen);
  Response response = send(caracal::static_files_app(root.dir), "GET", "/a.txt",
                           {{"If-None-Match", "\"stale\""}});
  REQUIRE(response.status == 200);
}

// Older clients and proxies revalidate by date only.
TEST_CASE("If-Modified-Since at or after the modification time gets 304", "[static][validators]") {
  TempRoot root;
  root.write("a.txt", kTen);
  caracal::App app = caracal::static_files_app(root.dir);
  std::string modified = header(send(app, "GET", "/a.txt"), "Last-Modified");
  REQUIRE(send(app, "GET", "/a.txt", {{"If-Modified-Since", modified}}).status == 304);
  REQUIRE(send(app, "GET", "/a.txt", {{"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"}})
              .status == 200);
  REQUIRE(send(app, "GET", "/a.txt", {{"If-Modified-Since", "yesterday"}}).status == 200);
}

// RFC 9110 13.2.2: the tag is the better validator, so when present it alone decides.
TEST_CASE("If-None-Match takes precedence over If-Modified-Since", "[static][validators]") {
  TempRoot root;
  root.write("a.txt", kTen);
  caracal::App app = caracal::static_files_app(root.dir);
  std::string modified = header(send(app, "GET", "/a.txt"), "Last-Modified");
  Response response = send(app, "GET", "/a.txt",
                           {{"If-None-Match", "\"stale\""}, {"If-Modified-Since", modified}});
  REQUIRE(response.status == 200);
}
// Validators: ETag and Last-Modified:5 ends here

// [[file:../notes/static-files.org::*Ranges][Ranges:4]]
// The three single-range forms a download manager or a video player sends.
TEST_CASE("single byte ranges are understood in all three forms", "[static][ranges]") {
  using caracal::detail::evaluate_range;
  using caracal::detail::RangeVerdict;
  auto first_five = evaluate_range("bytes=0-4", 10);
  REQUIRE(first_five.verdict == RangeVerdict::partial);
  REQUIRE((first_five.offset == 0 && first_five.length == 5));
  auto from_seven = evaluate_range("bytes=7-", 10);
  REQUIRE((from_seven.offset == 7 && from_seven.length == 3));
  auto last_four = evaluate_range("bytes=-4", 10);
  REQUIRE((last_four.offset == 6 && last_four.length == 4));
}

// Clients ask for "more than there is" routinely; the answer is what there is.
TEST_CASE("a range reaching past the end is clamped to the file", "[static][ranges]") {
  using caracal::detail::evaluate_range;
  auto clamped = evaluate_range("bytes=5-100", 10);
  REQUIRE((clamped.offset == 5 && clamped.length == 5));
  auto long_suffix = evaluate_range("bytes=-100", 10);
  REQUIRE((long_suffix.offset == 0 && long_suffix.length == 10));
}

// Nothing can be sent for these, and the client must be told the real size.
TEST_CASE("a range starting at or past the end cannot be satisfied", "[static][ranges]") {
  using caracal::detail::evaluate_range;
  using caracal::detail::RangeVerdict;
  REQUIRE(evaluate_range("bytes=10-", 10).verdict == RangeVerdict::unsatisfiable);
  REQUIRE(evaluate_range("bytes=10-20", 10).verdict == RangeVerdict::unsatisfiable);
  REQUIRE(evaluate_range("bytes=-0", 10).verdict == RangeVerdict::unsatisfiable);
  REQUIRE(evaluate_range("bytes=0-", 0).verdict == RangeVerdict::unsatisfiable);
}

// RFC 9110 says ignore what cannot be understood: the whole file is still correct.
TEST_CASE("malformed, foreign-unit and multiple ranges mean the whole file", "[static][ranges]") {
  using caracal::detail::evaluate_range;
  using caracal::detail::RangeVerdict;
  for (const char* header : {"bytes=5-2", "items=0-1", "bytes=abc", "bytes=-", "bytes=0-1,4-5",
                             "bytes=1-2-3"})
    REQUIRE(evaluate_range(header, 10).verdict == RangeVerdict::whole_file);
  REQUIRE(evaluate_range("Bytes= 2-3", 10).verdict == RangeVerdict::partial);
}

// The response to a range must say which bytes it carries and of what total.
TEST_CASE("a satisfiable range gets 206 with Content-Range and a matching file range", "[static][ranges]") {
  TempRoot root;
  root.write("ten.txt", kTen);
  Response response = send(caracal::static_files_app(root.dir), "GET", "/ten.txt",
                           {{"Range", "bytes=2-5"}});
  REQUIRE(response.status == 206);
  REQUIRE(header(response, "Content-Range") == "bytes 2-5/10");
  REQUIRE(header(response, "Content-Length") == "4");
  const auto& body = std::get<FileBody>(response.body);
  REQUIRE((body.offset == 2 && body.length == 4));
}

// The client learns the real size from */size and can ask again correctly.
TEST_CASE("an unsatisfiable range gets 416 with the file's size", "[static][ranges]") {
  TempRoot root;
  root.write("ten.txt", kTen);
  Response response = send(caracal::static_files_app(root.dir), "GET", "/ten.txt",
                           {{"Range", "bytes=10-"}});
  REQUIRE(response.status == 416);
  REQUIRE(header(response, "Content-Range") == "bytes */10");
  REQUIRE(std::get<std::string>(response.body) == "Range Not Satisfiable\n");
}

// Several ranges would need multipart/byteranges; the whole file is the simpler correct answer.
TEST_CASE("several ranges get the whole file with 200", "[static][ranges]") {
  TempRoot root;
  root.write("ten.txt", kTen);
  Response response = send(caracal::static_files_app(root.dir), "GET", "/ten.txt",
                           {{"Range", "bytes=0-1,5-6"}});
  REQUIRE(response.status == 200);
  REQUIRE(std::get<FileBody>(response.body).length == 10);
  REQUIRE(header(response, "Content-Range") == "(absent)");
}

// Ranges are defined for GET only; HEAD must describe the full representation.
TEST_CASE("HEAD ignores Range", "[static][ranges]") {
  TempRoot root;
  root.write("ten.txt", kTen);
  Response response = send(caracal::static_files_app(root.dir), "HEAD", "/ten.txt",
                           {{"Range", "bytes=0-1"}});
  REQUIRE(response.status == 200);
  REQUIRE(header(response, "Content-Length") == "10");
}

// Resuming from a stale partial copy would splice two versions of a file together.
TEST_CASE("If-Range honours the range only for the current version", "[static][ranges]") {
  TempRoot root;
  root.write("ten.txt", kTen);
  caracal::App app = caracal::static_files_app(root.dir);
  Response first = send(app, "GET", "/ten.txt");
  std::string etag = header(first, "ETag");
  std::string modified = header(first, "Last-Modified");
  auto ranged = [&](std::string condition) {
    return send(app, "GET", "/ten.txt", {{"Range", "bytes=0-1"}, {"If-Range", condition}}).status;
  };
  REQUIRE(ranged(etag) == 206);
  REQUIRE(ranged(modified) == 206);
  REQUIRE(ranged("\"stale\"") == 200);
  REQUIRE(ranged("W/" + etag) == 200);
}

// An empty file is legal to serve, but no byte of it can be asked for.
TEST_CASE("an empty file is served with length zero and refuses every range", "[static][ranges]") {
  TempRoot root;
  root.write("empty.txt", "");
  caracal::App app = caracal::static_files_app(root.dir);
  Response whole = send(app, "GET", "/empty.txt");
  REQUIRE(whole.status == 200);
  REQUIRE(header(whole, "Content-Length") == "0");
  REQUIRE(send(app, "GET", "/empty.txt", {{"Range", "bytes=0-"}}).status == 416);
}
// Ranges:4 ends here

// [[file:../notes/static-files.org::*Answering][Answering:11]]
// A relative root (as typed on a command line) must behave like its absolute form.
TEST_CASE("a relative root is resolved once and serves files", "[static]") {
  TempRoot root;
  root.write("index.html", kPage);
  fs::path previous = fs::current_path();
  fs::current_path(root.dir.parent_path());
  caracal::App app = caracal::static_files_app(root.dir.filename());
  fs::current_path(previous);
  REQUIRE(send(app, "GET", "/index.html").status == 200);
}

// A root that is not there yet must not crash the server: every request is just 404.
TEST_CASE("a root that does not exist answers 404", "[static]") {
  caracal::App app = caracal::static_files_app("/nonexistent/caracal-static-root");
  REQUIRE(send(app, "GET", "/index.html").status == 404);
}

// A root created after start (a deploy step) must serve once it exists, even named with a slash through a symlink.
TEST_CASE("a root that appears after start is served, trailing slash and symlink included", "[static]") {
  TempRoot parent;
  fs::create_directory_symlink(parent.dir, parent.dir / "link");
  caracal::App app = caracal::static_files_app(parent.dir / "link" / "site" / "");
  REQUIRE(send(app, "GET", "/index.html").status == 404);
  parent.write("site/index.html", kPage);
  CHECK(send(app, "GET", "/index.html").status == 200);
}
// Answering:11 ends here

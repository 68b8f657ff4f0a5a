// tests/unique_fd_test.cpp: tangled from notes/unique-fd.org; edit the note, not this file.

// [[file:../notes/unique-fd.org::*Tests][Tests:2]]
#include "unique_fd.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <utility>

namespace {
bool is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1; }
}  // namespace

// An owner that forgets to close is the leak this type exists to prevent.
TEST_CASE("a unique fd closes its descriptor when it goes out of scope") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[1]);
  { caracal::UniqueFd owner(fds[0]); }
  CHECK_FALSE(is_open(fds[0]));
}

// Ownership moves, so a descriptor is closed once, by its last owner.
TEST_CASE("a moved unique fd leaves its source empty and closes once") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  caracal::UniqueFd write_end(fds[1]);
  caracal::UniqueFd first(fds[0]);
  caracal::UniqueFd second(std::move(first));
  CHECK_FALSE(first);
  CHECK(second.get() == fds[0]);
  second = caracal::UniqueFd();
  CHECK_FALSE(is_open(fds[0]));
  CHECK(is_open(fds[1]));
}

// release() is for handing a descriptor on; it must not close it behind the new owner's back.
TEST_CASE("a released descriptor stays open") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  caracal::UniqueFd write_end(fds[1]);
  int kept = -1;
  {
    caracal::UniqueFd owner(fds[0]);
    kept = owner.release();
  }
  CHECK(is_open(kept));
  ::close(kept);
}
// Tests:2 ends here

// src/boost_libraries.cpp: tangled from notes/boost-libraries.org; edit the note, not this file.

// [[file:../notes/boost-libraries.org::*Separate compilation][Separate compilation:2]]
// The one translation unit that compiles Asio's and Beast's implementation.
// Every other unit sees only declarations (see the macros in the Makefile).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
// Separate compilation:2 ends here

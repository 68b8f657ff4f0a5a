// [[file:../notes/inheritance.org::*The begin line wins over properties, #+HEADER over the begin line][The begin line wins over properties, #+HEADER over the begin line:2]]
// a quoted value
// The begin line wins over properties, #+HEADER over the begin line:2 ends here

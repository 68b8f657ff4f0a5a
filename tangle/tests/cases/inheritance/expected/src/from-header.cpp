// [[file:../notes/inheritance.org::*The begin line wins over properties, #+HEADER over the begin line][The begin line wins over properties, #+HEADER over the begin line:1]]
// from the #+HEADER line
// The begin line wins over properties, #+HEADER over the begin line:1 ends here

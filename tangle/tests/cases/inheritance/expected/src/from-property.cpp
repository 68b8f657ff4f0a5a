// [[file:../notes/inheritance.org::*Uses the file properties][Uses the file properties:1]]
// from the #+PROPERTY lines
// Uses the file properties:1 ends here

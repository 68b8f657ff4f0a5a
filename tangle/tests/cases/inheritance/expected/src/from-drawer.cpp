// [[file:../notes/inheritance.org::*A drawer overrides the language property][A drawer overrides the language property:1]]
// tangle target from the drawer
// A drawer overrides the language property:1 ends here

// [[file:../notes/inheritance.org::*An inner drawer appends][An inner drawer appends:1]]
// padline comes back through header-args:cpp+
// An inner drawer appends:1 ends here

// comments are gone: the innermost header-args wins as a whole

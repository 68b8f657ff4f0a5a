// src/basic.cpp: tangled from notes/basic.org

// [[file:../notes/basic.org::*First section][First section:2]]
int one() { return 1; }
// First section:2 ends here

// [[file:../notes/basic.org::*First section][First section:4]]
int three() { return 3; }
// First section:4 ends here

// [[file:../notes/basic.org::the-named-block][the-named-block]]
int named() { return 4; }
// the-named-block ends here
// [[file:../notes/basic.org::*A subsection with \[brackets\]][A subsection [2/3] with [brackets]:2]]
int no_padline() { return 5; }
// A subsection [2/3] with [brackets]:2 ends here

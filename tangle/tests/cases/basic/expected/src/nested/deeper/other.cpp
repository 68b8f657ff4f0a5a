// [[file:../../../notes/basic.org::*Another file][Another file:1]]
// other.cpp: tangled from notes/basic.org


int trailing_blank_lines_are_trimmed();
// Another file:1 ends here

// [[file:../../../notes/basic.org::*Another file][Another file:2]]

// Another file:2 ends here

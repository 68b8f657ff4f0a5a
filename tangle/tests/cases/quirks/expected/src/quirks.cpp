// exported nowhere, tangled all the same

// exports results

// [[file:../notes/quirks.org::headed][headed]]
// arguments from #+HEADER lines
// headed ends here

// -i keeps this indentation (but org-trim eats the first line's)
  // and this one's relative indentation

* a line starting with a star
#+ a line starting with #+
,* two commas lose one
  #+ indented escape

int common_indentation_removed;
  int relative_kept;

int last;

int in_a_list;

// upper-case keywords

// tangled again

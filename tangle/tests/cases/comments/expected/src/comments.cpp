// [[file:../notes/comments.org::*Link comments][Link comments:1]]
int a;
// Link comments:1 ends here

// [[file:../notes/comments.org::*Link comments][Link comments:2]]
int b;
// Link comments:2 ends here



// Some prose that
//   :comments both carries
// into the file.


// [[file:../notes/comments.org::*Link comments][Link comments:3]]
int c;
// Link comments:3 ends here

// Org comments
// Org text only.

int d;

# [[file:../notes/comments.org::*Org comments][Org comments:2]]
echo shell comments use a hash
# Org comments:2 ends here

echo "tangles to notes/yes.sh"

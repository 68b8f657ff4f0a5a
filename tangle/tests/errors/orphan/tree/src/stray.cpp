// left behind

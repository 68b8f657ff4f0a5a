// src/good.cpp: tangled from notes/good.org

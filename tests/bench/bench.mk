# tests/bench/bench.mk: tangled from notes/benchmarks.org; edit the note, not this file.

# [[file:../../notes/benchmarks.org::*Running it][Running it:3]]
# make bench: caracal, nginx and Puma side by side, one table at the end.
# Tuning: BENCH_ROUNDS (3), BENCH_SECONDS (3), BENCH_IDLE (10000),
# BENCH_ONLY="1 3" (some scenarios), BENCH_BUILD=1 (time a clean build too).
.PHONY: bench
bench: bench-deps all
	CARACAL_BIN=$(abspath $(BUILD)/caracal) python3 -B tests/bench/bench.py
# Running it:3 ends here

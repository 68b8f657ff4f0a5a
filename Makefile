# caracal's Makefile.  notes/literate-programming.org explains it; in short:
#
#   make              tangle the notes, then build build/caracal and the tests
#   make run          serve the docs site on http://127.0.0.1:9292 (2 workers, 1-4 threads)
#   make test         every suite, ending with one line "N passed, N failed"
#   make tangle       notes/ -> src/ tests/ diagrams/ (only changed files are rewritten)
#   make diagrams     diagrams/*.mmd -> diagrams/*.svg (stale ones, one browser)
#   make site         the docs site, build/site/ (tangle/site.mk)
#   make bench        caracal beside nginx and Puma, one table (notes/benchmarks.org)
#   make check-tangle fail if src/ tests/ diagrams/ differ from a fresh tangle
#   make deps         install missing Debian packages (as root), else print the apt-get line
#   make clean        remove build/
#
# The build is two steps.  Tangling is guarded by a stamp (build/tangled.mk,
# included below, so make re-reads the file lists after a tangle); compiling is
# out of tree with -MMD -MP, so editing one note recompiles only its module.

SHELL    := /bin/bash
BUILD    := build
CXX      := g++
CXXFLAGS := -std=c++20 -O2 -g -Wall -Wextra -pthread
# Asio and Beast are compiled once, in src/boost_libraries.cpp
# (notes/boost-libraries.org); every other unit sees declarations only.
CPPFLAGS := -Isrc -DBOOST_ASIO_SEPARATE_COMPILATION -DBOOST_BEAST_SEPARATE_COMPILATION \
            -DBOOST_ASIO_NO_DEPRECATED
DEPFLAGS  = -MMD -MP -MF $(@:.o=.d)
LDLIBS   := -lssl -lcrypto -pthread
CATCH2   := /usr/lib/libCatch2WithMain.a

NOTES    := $(wildcard notes/*.org)
TANGLER  := tangle/tangle tangle/tangle.lua

# Debian 12 packages: to build and test, and (bench) to compare with peers.
DEPS       := g++ make pandoc emacs-nox libboost1.81-dev catch2 libssl-dev chromium
BENCH_DEPS := wrk nginx-light puma ruby-rack python3

quiet = @printf '  %-8s %s\n'

.PHONY: all tangle check-tangle test run deps bench-deps clean help
.DEFAULT_GOAL := all

# --- Step 1: tangle --------------------------------------------------------
# Goals that must not tangle first: check-tangle compares the committed tree
# with a fresh tangle, so tangling before it would hide the drift it looks for.
NO_TANGLE_GOALS := clean check-tangle deps bench-deps help site-deps
ifeq ($(filter $(NO_TANGLE_GOALS),$(MAKECMDGOALS)),)
-include $(BUILD)/tangled.mk
endif

$(BUILD)/tangled.mk: $(NOTES) $(TANGLER)
	$(quiet) TANGLE "$(words $(NOTES)) notes"
	@mkdir -p $(BUILD)
	@tangle/tangle --sourcemap $(BUILD)/sourcemap.tsv
	@echo '# make re-reads the file lists once the notes are tangled' > $@

tangle: $(BUILD)/tangled.mk

include tangle/site.mk
-include tests/bench/bench.mk

check-tangle:
	@tangle/tangle --check

# --- Step 2: compile -------------------------------------------------------
LIB_SOURCES  := $(filter-out src/main.cpp,$(wildcard src/*.cpp))
TEST_SOURCES := $(wildcard tests/*_test.cpp)
LIB_OBJECTS  := $(LIB_SOURCES:%.cpp=$(BUILD)/obj/%.o)
TEST_OBJECTS := $(TEST_SOURCES:%.cpp=$(BUILD)/obj/%.o)
MAIN_OBJECT  := $(if $(wildcard src/main.cpp),$(BUILD)/obj/src/main.o)
PROGRAMS     := $(if $(MAIN_OBJECT),$(BUILD)/caracal) $(if $(TEST_SOURCES),$(BUILD)/caracal_tests)

all: $(BUILD)/tangled.mk $(PROGRAMS)

# Catch2's single header costs seconds per test unit; a precompiled copy of it
# is built once and force-included into every test unit.
CATCH_PCH := $(BUILD)/pch/catch2_pch.hpp
$(CATCH_PCH): | $(BUILD)/tangled.mk
	@mkdir -p $(@D)
	@echo '#include <catch2/catch.hpp>' > $@
$(CATCH_PCH).gch: $(CATCH_PCH)
	$(quiet) PCH catch2/catch.hpp
	@$(CXX) $(CXXFLAGS) $(CPPFLAGS) -x c++-header $< -o $@

$(BUILD)/obj/src/%.o: src/%.cpp | $(BUILD)/tangled.mk
	$(quiet) CXX $<
	@mkdir -p $(@D)
	@$(CXX) $(CXXFLAGS) $(CPPFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/obj/tests/%.o: tests/%.cpp $(CATCH_PCH).gch | $(BUILD)/tangled.mk
	$(quiet) CXX $<
	@mkdir -p $(@D)
	@$(CXX) $(CXXFLAGS) $(CPPFLAGS) -Winvalid-pch -include $(CATCH_PCH) $(DEPFLAGS) -c $< -o $@

$(BUILD)/libcaracal.a: $(LIB_OBJECTS)
	$(quiet) AR $@
	@rm -f $@ && ar rcs $@ $^

$(BUILD)/caracal: $(MAIN_OBJECT) $(BUILD)/libcaracal.a
	$(quiet) LINK $@
	@$(CXX) $(CXXFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/caracal_tests: $(TEST_OBJECTS) $(BUILD)/libcaracal.a
	$(quiet) LINK $@
	@$(CXX) $(CXXFLAGS) $^ $(CATCH2) $(LDLIBS) -o $@

-include $(wildcard $(BUILD)/obj/*/*.d)

# --- Running ---------------------------------------------------------------
run: deps all site
	$(BUILD)/caracal -w 2 -t 1:4 -b tcp://127.0.0.1:9292 --root $(SITE_DIR)

# --- Testing ---------------------------------------------------------------
# Each suite writes its log under build/test/; its "N passed, N failed" line
# (Catch2's summary is translated) is summed into the final line CI reads.
TEST_LOGS := $(BUILD)/test
define run_suite
	@mkdir -p $(TEST_LOGS); \
	printf '  %-8s %s\n' SUITE "$(1)"; \
	( $(2) ) > $(TEST_LOGS)/$(1).log 2>&1; status=$$?; \
	counts=$$(tail -n 30 $(TEST_LOGS)/$(1).log | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1); \
	if [ -z "$$counts" ]; then counts=$$(if [ $$status -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi); fi; \
	if [ $$status -ne 0 ]; then tail -n 40 $(TEST_LOGS)/$(1).log | sed 's/^/           /'; \
	  case "$$counts" in *", 0 failed") counts="$${counts%%, 0 failed}, 1 failed";; esac; fi; \
	printf '           %s\n' "$$counts"; \
	echo "$$counts" > $(TEST_LOGS)/$(1).count
endef

# Catch2 2.13 ends with "All tests passed (A assertions in N test cases)" or
# "test cases: N | P passed | F failed"; this turns either into the plain line.
catch2_counts = awk '/^All tests passed/ { match($$0, /in [0-9]+ test case/); n = substr($$0, RSTART + 3, RLENGTH - 13); print n " passed, 0 failed" } \
  /^test cases:/ { gsub(/[|]/, " "); p = 0; f = 0; for (i = 1; i <= NF; i++) { if ($$i == "passed") p = $$(i-1); if ($$i == "failed") f = $$(i-1) } print p " passed, " f " failed" }'

test: deps all site
	@rm -rf $(TEST_LOGS)
	$(call run_suite,tangle-fixtures,tangle/tests/run-fixtures --emacs)
	$(call run_suite,emacs-identity,tangle/tests/emacs-identity)
	$(call run_suite,check-tangle,tangle/tangle --check)
	$(call run_suite,unit-and-integration,CARACAL_BIN=$(abspath $(BUILD)/caracal) $(BUILD)/caracal_tests > $(TEST_LOGS)/catch2.out 2>&1; s=$$?; cat $(TEST_LOGS)/catch2.out; $(catch2_counts) $(TEST_LOGS)/catch2.out; exit $$s)
	$(call run_suite,site-browser,CARACAL_BIN=$(abspath $(BUILD)/caracal) $(SITE_TESTS))
	@cat $(TEST_LOGS)/*.count | awk '{ p += $$1; f += $$3 } END { printf "%d passed, %d failed\n", p, f; exit (f > 0) }'

# --- Dependencies ----------------------------------------------------------
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "  DEPS     installing" $$missing; \
	    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || exit 1; \
	  else \
	    echo "missing packages; run: sudo apt-get install -y" $$missing; exit 1; \
	  fi; \
	fi
endef

# Node.js and npm come with the machine image (its own nodejs build); Debian's
# are installed only where no node is found at all.
deps:
	$(call install_missing,$(DEPS))
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q nodejs npm >/dev/null; \
	  else echo "missing node/npm; run: sudo apt-get install -y nodejs npm"; exit 1; fi; }

bench-deps:
	$(call install_missing,$(BENCH_DEPS))

clean:
	rm -rf $(BUILD)

help:
	@sed -n '3,13p' Makefile

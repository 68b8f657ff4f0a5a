# tangle/site.mk: diagrams and the docs site, included by the Makefile.
# notes/diagrams.org and notes/docs-site.org explain these rules.
#
#   make site-deps   npm packages (mermaid, puppeteer-core) under build/node
#   make diagrams    diagrams/NAME.mmd -> diagrams/NAME.svg, stale ones only, one browser
#   make site        build/site/: one page per note, one per tangled file, search
#
# Expects from the Makefile: BUILD, quiet, and the tangle stamp $(BUILD)/tangled.mk.

.PHONY: site-deps diagrams site

WEAVE      := tangle/weave
NODE_DIR   := $(BUILD)/node
NODE_STAMP := $(NODE_DIR)/.installed

# --- npm packages ----------------------------------------------------------
# Versions are pinned in tangle/weave/package.json (and its lock file);
# puppeteer must not download a browser: Debian's /usr/bin/chromium is used.
$(NODE_STAMP): $(WEAVE)/package.json $(wildcard $(WEAVE)/package-lock.json)
	$(quiet) NPM "$(NODE_DIR) (mermaid, puppeteer-core)"
	@mkdir -p $(NODE_DIR)
	@cp $(WEAVE)/package.json $(NODE_DIR)/package.json
	@if [ -f $(WEAVE)/package-lock.json ]; then cp $(WEAVE)/package-lock.json $(NODE_DIR)/; fi
	@cd $(NODE_DIR) && PUPPETEER_SKIP_DOWNLOAD=1 npm $(if $(wildcard $(WEAVE)/package-lock.json),ci,install) \
	  --no-audit --no-fund --loglevel=error > npm.log 2>&1 || { cat npm.log; exit 1; }
	@touch $@

site-deps: $(NODE_STAMP)

# --- Diagrams --------------------------------------------------------------
# Each stale SVG's rule renders every stale diagram at once, in one browser
# session (a browser start costs more than a diagram); the rules of the other
# stale SVGs then find nothing left to do.  flock keeps make -j from starting
# two browsers on the same files.
DIAGRAM_SOURCES := $(wildcard diagrams/*.mmd)
DIAGRAMS        := $(DIAGRAM_SOURCES:.mmd=.svg)
RENDERER        := $(WEAVE)/render-diagrams.mjs

stale_diagrams = for m in $(DIAGRAM_SOURCES); do s=$${m%.mmd}.svg; \
  if [ ! -f "$$s" ] || [ "$$m" -nt "$$s" ] || [ $(RENDERER) -nt "$$s" ]; then echo "$$m"; fi; done

$(DIAGRAMS): diagrams/%.svg: diagrams/%.mmd $(RENDERER) | $(BUILD)/tangled.mk $(NODE_STAMP)
	@mkdir -p $(BUILD)
	@flock $(BUILD)/diagrams.lock sh -c 'stale=$$($(stale_diagrams)); \
	  if [ -n "$$stale" ]; then node $(RENDERER) $$stale; fi'

diagrams: $(DIAGRAMS)

# --- Site ------------------------------------------------------------------
# One pandoc process weaves every page: backlinks and "used in" lists make a
# page depend on other notes, so all are regenerated together, and only files
# whose bytes changed are rewritten.  The stamp makes a no-op build instant.
SITE_DIR   := $(BUILD)/site
SITE_STAMP := $(SITE_DIR)/.woven
SITE_TOOLS := $(WEAVE)/site $(WEAVE)/site.lua $(WEAVE)/style.css $(WEAVE)/search.js

$(SITE_STAMP): $(NOTES) $(DIAGRAMS) $(SITE_TOOLS) $(BUILD)/tangled.mk \
               $(wildcard src/* tests/*)
	@$(WEAVE)/site --out $(SITE_DIR) --sourcemap $(BUILD)/sourcemap.tsv
	@touch $@

site: $(SITE_STAMP)

# --- Browser test ----------------------------------------------------------
# tests/site_browser_test.mjs (notes/docs-site.org) serves build/site with
# caracal when CARACAL_BIN names a built binary, else with python3's
# http.server, and drives Debian's chromium through puppeteer-core.
SITE_TESTS := node tests/site_browser_test.mjs

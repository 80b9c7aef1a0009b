# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.clarion-installed
export PATH := $(HOME)/.cargo/bin:$(PATH)
CRATE := native/encrypt_rs
BUF := npx -y @bufbuild/buf@1.75.0
WEB := web/reports
ASSETS := services/gateway/static/manifest.json

.PHONY: install demo test test-python test-browser browser-deps check-rust lint-protos lint-imports sdk web bench clean

# Reinstall only when what the wheel is built from changes. The wheel carries the report
# pages' built assets: they are built first when missing (`make web` rebuilds them).
$(STAMP): pyproject.toml $(CRATE)/Cargo.toml $(CRATE)/Cargo.lock $(wildcard $(CRATE)/src/*.rs) $(CRATE)/encrypt_rs.pyi | $(ASSETS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: web install
	$(PY) -m clarion demo --subscribers 1000 --json

# test-python runs tests/browser too (the SDK and the report pages in headless Chromium): it
# needs `web`, `sdk` and `browser-deps` first.
test: web install check-rust lint-protos lint-imports sdk browser-deps test-python

test-python: install
	$(PY) -m pytest

check-rust:
	cd $(CRATE) && cargo fmt --check && cargo clippy --all-targets -- -D warnings && cargo test --quiet

# The web SDK (sdk/web, docs/sdk.md): npm packages from its lockfile, types, unit tests,
# the build into sdk/web/dist and its sizes (minified and gzipped).
sdk:
	cd sdk/web && npm ci --no-audit --no-fund && npm run typecheck && npm test

# The report pages' assets (web/reports, docs/reports-ui.md): npm packages from its lockfile,
# unit tests, then uPlot and the pages' script and stylesheet bundled and minified into
# services/gateway/static under content-hashed names, with a manifest.json, and their sizes
# (raw and gzipped). The gateway serves them; no CDN at run time.
web:
	cd $(WEB) && npm ci --no-audit --no-fund && npm test && npm run build

$(ASSETS):
	$(MAKE) web

# Debian's chromium for the browser tests (tests/browser, docs/sdk.md), installed with apt
# when missing (as .ci/run does); playwright-core, which drives it, comes with `make sdk`.
CHROMIUM ?= /usr/bin/chromium
browser-deps:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing chromium from Debian packages"; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

# Only the browser tests: the SDK page and the report pages in headless Chromium against the
# whole platform.
test-browser: web install sdk browser-deps
	$(PY) -m pytest tests/browser

lint-protos:
	cd protos && $(BUF) lint

lint-imports: install
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m benchmarks.encrypt --json

clean:
	rm -rf $(VENV) .clarion $(CRATE)/target sdk/web/node_modules sdk/web/dist \
	  $(WEB)/node_modules services/gateway/static

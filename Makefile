# Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.clarion-installed
export PATH := $(HOME)/.cargo/bin:$(PATH)
CRATE := native/encrypt_rs
BUF := npx -y @bufbuild/buf@1.75.0

.PHONY: install demo test test-python check-rust lint-protos lint-imports bench clean

# Reinstall only when what the wheel is built from changes.
$(STAMP): pyproject.toml $(CRATE)/Cargo.toml $(CRATE)/Cargo.lock $(wildcard $(CRATE)/src/*.rs) $(CRATE)/encrypt_rs.pyi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(PY) -m clarion demo --subscribers 1000 --json

test: install check-rust lint-protos lint-imports test-python

test-python: install
	$(PY) -m pytest

check-rust:
	cd $(CRATE) && cargo fmt --check && cargo clippy --all-targets -- -D warnings && cargo test --quiet

lint-protos:
	cd protos && $(BUF) lint

lint-imports: install
	$(VENV)/bin/lint-imports

bench: install
	$(PY) -m benchmarks.encrypt --json

clean:
	rm -rf $(VENV) .clarion $(CRATE)/target

# The two set-up commands in README.md are `make run` and `make test`.
# Both work on a machine with only the Rust toolchain, Python/pip and PostgreSQL.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
WARDEN := $(CARGO_TARGET_DIR)/debug/warden
VENV := $(CURDIR)/.venv
OPENAI_PY := openai==2.8.1

.PHONY: run test toolchain venv build lint

toolchain:
	rustup target add wasm32-wasip2
	rustup component add rustfmt clippy

build: toolchain
	cargo build --workspace --bins

# Runs Warden with the embedded default model, fetching it first if missing.
run: build
	$(WARDEN) serve

venv:
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$(OPENAI_PY)"

# Runs the whole test suite: unit tests, then the integration suite against
# real servers with the real model, SQLite and the local PostgreSQL.
test: build venv
	$(WARDEN) model fetch
	WARDEN_BIN=$(WARDEN) WARDEN_TEST_PYTHON=$(VENV)/bin/python \
		cargo test --workspace -- --test-threads=2

lint: toolchain
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# The two set-up commands in README.md are `make run` and `make test`.
# Both work on a machine with only the Rust toolchain, Python/pip, Node.js/npm
# and PostgreSQL (`make test` installs Debian's chromium for the browser test).

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
WARDEN := $(CARGO_TARGET_DIR)/debug/warden
VENV := $(CURDIR)/.venv
OPENAI_PY := openai==2.8.1
# The real SMTP server the email tests deliver to.
AIOSMTPD_PY := aiosmtpd==1.4.6
WASM_TARGET := wasm32-wasip2
WASM_OUT := $(CARGO_TARGET_DIR)/$(WASM_TARGET)/release
PLUGINS := document chatbot coding

.PHONY: run test toolchain venv browser build plugins guests lint

toolchain:
	rustup target add $(WASM_TARGET)
	rustup component add rustfmt clippy

build: toolchain
	cargo build --workspace --bins

# First-party plugins, built exactly as a third party builds theirs, then
# laid out as plugin directories (plugin.toml + component) in plugins/dist.
plugins: toolchain
	cargo build --manifest-path plugins/Cargo.toml --target $(WASM_TARGET) --release
	for p in $(PLUGINS); do \
		mkdir -p plugins/dist/$$p && \
		cp plugins/$$p/plugin.toml plugins/dist/$$p/plugin.toml && \
		cp $(WASM_OUT)/warden_plugin_$$p.wasm plugins/dist/$$p/$$p.wasm || exit 1; \
	done

# Test guests: misbehaving ones for the sandbox tests, and tools shaped like
# third parties' for the agent tests.
GUESTS := hostile orders
guests: toolchain
	cargo build --manifest-path tests/guests/Cargo.toml --target $(WASM_TARGET) --release
	for g in $(GUESTS); do \
		mkdir -p tests/guests/dist/$$g && \
		cp tests/guests/$$g/plugin.toml tests/guests/dist/$$g/plugin.toml && \
		cp $(WASM_OUT)/warden_test_$$g.wasm tests/guests/dist/$$g/$$g.wasm || exit 1; \
	done

# Runs Warden with the embedded default model (fetched if missing) and the
# first-party plugins, granted what ./warden.toml grants them.
run: build plugins
	for p in $(PLUGINS); do $(WARDEN) plugin install plugins/dist/$$p || exit 1; done
	$(WARDEN) serve

venv:
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "$(OPENAI_PY)" "$(AIOSMTPD_PY)"

# The console's browser test: Debian's chromium (no browser is downloaded)
# driven by playwright-core from npm.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	command -v chromium >/dev/null || ($(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)
	cd tests/browser && npm install --no-package-lock --no-audit --no-fund --silent

# Runs the whole test suite: unit tests (host and plugins), then the
# integration suite against real servers with the real model, real wasm
# plugins, SQLite and the local PostgreSQL.
test: build plugins guests venv browser
	bash tests/scripts/layering.sh
	$(WARDEN) model fetch
	cargo test --manifest-path plugins/Cargo.toml --workspace
	WARDEN_BIN=$(WARDEN) WARDEN_TEST_PYTHON=$(VENV)/bin/python \
	WARDEN_PLUGINS_DIST=$(CURDIR)/plugins/dist WARDEN_TEST_GUESTS=$(CURDIR)/tests/guests/dist \
	WARDEN_SDK=$(CURDIR)/sdk \
		cargo test --workspace -- --test-threads=2

lint: toolchain
	bash tests/scripts/layering.sh
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo fmt --manifest-path plugins/Cargo.toml --all --check
	cargo clippy --manifest-path plugins/Cargo.toml --workspace --target $(WASM_TARGET) -- -D warnings
	cargo clippy --manifest-path tests/guests/Cargo.toml --workspace --target $(WASM_TARGET) -- -D warnings
	cd sdk && cargo fmt --check && cargo clippy --target $(WASM_TARGET) -- -D warnings

# Runbook Studio — `make run` launches the desktop app, `make test` runs every suite.
# Both install whatever is missing first (see scripts/deps.sh).

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/debug/runbook-studio
DESKTOP_BIN := $(CARGO_TARGET_DIR)/debug/runbook-studio-desktop
UI_DIST := $(CURDIR)/src-ui/dist
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: run serve test test-rust test-ui test-browser test-desktop lint ui bench deps clean

## Build the UI and launch the desktop app on the embedded SQLite database.
run:
	scripts/deps.sh run
	$(MAKE) ui
	cargo run -p runbook-studio-desktop --features custom-protocol

## Run the headless REST server (and the web UI) on 127.0.0.1:8080.
serve:
	scripts/deps.sh serve
	$(MAKE) ui
	RUNBOOK_UI_DIR=$(UI_DIST) cargo run -p runbook-server --bin runbook-studio -- serve

## Every suite: Rust (SQLite and PostgreSQL), UI unit tests, browser and desktop end-to-end.
test:
	scripts/deps.sh test
	$(MAKE) ui
	$(MAKE) test-rust test-ui test-browser test-desktop

ui:
	cd src-ui && npm run build

test-rust:
	cargo test --workspace --exclude runbook-studio-desktop --no-fail-fast
	cargo test -p runbook-studio-desktop

test-ui:
	cd src-ui && npm test

test-browser:
	cargo build -p runbook-server --bin runbook-studio
	cd tests/e2e && RUNBOOK_BIN=$(BIN) RUNBOOK_UI_DIR=$(UI_DIST) npm test

test-desktop:
	cargo build -p runbook-studio-desktop --features custom-protocol
	cargo build -p runbook-server --bin runbook-studio
	cd tests/e2e && RUNBOOK_DESKTOP_BIN=$(DESKTOP_BIN) RUNBOOK_BIN=$(BIN) \
		xvfb-run -a -s "-screen 0 1280x800x24" node --test desktop.mjs

## Formatting and lints, as CI checks them.
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

## Benchmarks against same-run baselines, printed as a table.
bench:
	scripts/deps.sh serve
	cargo run --release -p runbook-bench

deps:
	scripts/deps.sh test

clean:
	cargo clean
	rm -rf src-ui/dist src-ui/node_modules tests/e2e/node_modules tests/e2e/screenshots

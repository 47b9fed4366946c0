# Argus WireGuard — the commands the README names. Build output is shared across clones.
CARGO_TARGET_DIR ?= $(HOME)/.cache/argus-wireguard/target
export CARGO_TARGET_DIR
CARGO ?= cargo

.PHONY: test lint fmt bench tools

## tools: what the test command needs, installed only when missing
tools:
	@$(CARGO) nextest --version >/dev/null 2>&1 || $(CARGO) install cargo-nextest --locked

## test: every test of the workspace (unit, property, contract, integration); skips nothing silently
test: tools
	$(CARGO) nextest run --workspace --locked --no-fail-fast

## lint: rustfmt check and clippy with warnings as errors, over every target (benches included)
lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

## bench: criterion benchmarks (figures in README.md, "Benchmarks")
bench:
	$(CARGO) bench -p argus-benches

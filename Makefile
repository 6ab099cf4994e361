# heartgate — `make help` lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
LOCK ?= requirements.lock
BIN := $(VENV)/bin
# uv's cache stays in the clone (git-ignored) unless UV_CACHE_DIR says otherwise: nothing in $$HOME.
export UV_CACHE_DIR ?= $(CURDIR)/.cache/uv
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Side by side on pytest-xdist workers: much of a test's time is a server answering or a run
# polling, so one worker left half of two cores idle (two: 1.4 cores busy on average; three:
# four integration tests failed, cause not yet found, 2026-12-03).
# --dist loadscope keeps a module (its servers, stacks, trained models) on one worker, a test class
# too (the crash suite: one class per target, its own site), in the order tests/conftest.py's FIRST
# gives (longest first, the waiting ones beside it), not xdist's count of tests per scope.
TEST_WORKERS ?= 2
# DURATIONS: how many of the slowest tests are listed after each part.
DURATIONS ?= 15
UNIT := -m "not integration and not slow" -n $(TEST_WORKERS) --durations=$(DURATIONS)
INTEGRATION := -m "integration or slow" -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder --durations=$(DURATIONS)

.PHONY: help venv run up down lint test test-unit benchmark lock clean flow-image

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): $(LOCK) pyproject.toml scripts/install_lock.sh
	@PYTHON=$(PYTHON) scripts/install_lock.sh $(VENV) $(LOCK)
	@$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	@touch $@

venv: $(STAMP) ## Create or update the virtual environment: exactly requirements.lock, by version and sha256 (scripts/install_lock.sh)

run: $(STAMP) ## Run train-and-deploy on the embedded default (state in .heartgate/)
	$(BIN)/heartgate run

up: $(STAMP) ## Start the embedded stack: Prefect UI at 127.0.0.1:4200 (Run train-and-deploy there), worker, MLflow UI at :5000
	$(BIN)/heartgate up

down: $(STAMP) ## Stop the embedded stack
	$(BIN)/heartgate down

lint: $(STAMP) ## ruff: lint and format check (pyproject.toml's [tool.ruff]; `ruff format .` fixes the format)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .

test: lint ## Run the linter, then every test: fast unit tests first, then integration (real DVC, MLflow, Prefect, Terraform, moto)
	$(BIN)/python -m pytest $(UNIT) $(PYTEST_ARGS)
	$(BIN)/python -m pytest $(INTEGRATION) $(PYTEST_ARGS)

test-unit: $(STAMP) ## Run the fast unit tests only
	$(BIN)/python -m pytest $(UNIT) $(PYTEST_ARGS)

benchmark: $(STAMP) ## Time each task and the whole flow (median of 3), then serving vs the seed-style service
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/serve.py

flow-image: ## Build the flow-runner image (docker/Dockerfile.flow) for Docker/Kubernetes work pools; needs a Docker engine
	@docker info >/dev/null 2>&1 || { echo "heartgate: error: no Docker engine is running here: the flow-runner image (docker/Dockerfile.flow) is built where one is" >&2; exit 1; }
	docker build -f docker/Dockerfile.flow -t heartgate-flow:$$(git rev-parse --short HEAD) .

lock: ## Re-pin requirements.lock from the current virtual environment, every package with its sha256
	{ echo "#"; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v -e '^heartgate'; } > requirements.lock
	$(BIN)/python -m pip install --quiet --dry-run --ignore-installed --no-deps --report $(VENV)/lock-report.json -r requirements.lock
	$(BIN)/python scripts/pin_hashes.py $(VENV)/lock-report.json requirements.lock

clean: ## Remove the virtual environment (state in .heartgate/ is kept)
	rm -rf $(VENV)

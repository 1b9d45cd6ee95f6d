# switchboard — every task a developer or CI runs. `make help` lists them.
#
# The two that matter: `make run` (the whole system on http://127.0.0.1:8000) and
# `make test` (the whole suite against a real Kafka broker and PostgreSQL). Both install
# what is missing first: the Python environment, the Kafka jars, PostgreSQL.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
INFRA := bash deploy/infra.sh
PYTEST_ARGS ?=
BENCH_ARGS ?=
# The Kubernetes API the generated manifests are validated against (kubernetes-validate).
KUBERNETES_VERSION ?= 1.33.0

.PHONY: help install run demo test test-unit test-faults lint format bench browser asyncapi-tools contracts \
	infra-up infra-down infra-status infra-logs infra-reset clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11+)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP) ## create .venv with switchboard and its development tools

run: install infra-up ## run the whole system on http://127.0.0.1:8000 until Ctrl-C
	@bash deploy/run.sh

demo: install infra-up ## run the system, send signed sample webhooks, print the history, stop
	@bash deploy/run.sh --demo

test: install infra-up browser asyncapi-tools ## the whole test suite against the real Kafka and PostgreSQL
	@eval "$$($(INFRA) env)" && $(BIN)/pytest $(PYTEST_ARGS)

test-unit: install ## only the unit tests (no infrastructure)
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

test-faults: install infra-up ## the fault suite alone, with its per-scenario report (.local/faults-report.jsonl)
	@eval "$$($(INFRA) env)" && SWITCHBOARD_WHOLE_FAULT_SUITE=1 $(BIN)/pytest -m faults tests/faults $(PYTEST_ARGS)
	@cat .local/faults-report.jsonl

lint: install ## ruff, mypy --strict, the deployment files against the registry and the Kubernetes API schemas
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/switchboard deployment check
	$(BIN)/kubernetes-validate --strict --quiet -k $(KUBERNETES_VERSION) deploy/kubernetes/switchboard.yaml

format: install ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install infra-up ## end-to-end and micro benchmarks beside a raw baseline (BENCH_ARGS="--help")
	@eval "$$($(INFRA) env)" && $(BIN)/python -m bench $(BENCH_ARGS)

browser: ## make sure Debian's chromium is installed (the browser tests drive it)
	@$(INFRA) browser

asyncapi-tools: ## make sure the official AsyncAPI parser is installed (npm ci in tools/asyncapi)
	@$(INFRA) asyncapi-tools

contracts: install asyncapi-tools ## check the generated contracts and deployment files, validate the AsyncAPI document
	$(BIN)/switchboard schemas check
	$(BIN)/switchboard asyncapi check
	$(BIN)/switchboard deployment check
	node tools/asyncapi/validate.mjs docs/asyncapi.yaml

infra-up: ## start Kafka and PostgreSQL (idempotent) and wait until both answer
	@$(INFRA) up

infra-down: ## stop Kafka and PostgreSQL, keeping their data
	@$(INFRA) down

infra-status: ## what runs where
	@$(INFRA) status

infra-logs: ## the last lines of the broker's and the database's logs
	@$(INFRA) logs

infra-reset: ## stop both and delete their data (the downloaded jars stay)
	@$(INFRA) reset

clean: ## remove the Python environment and caches (not the infrastructure)
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache

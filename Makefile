# LLM-Sentinel — `make run` and `make test` do all set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
WORKERS ?= 1
PYTEST_ARGS ?=

.PHONY: help run test test-unit test-flow test-integration lint fmt services-up services-down services-status \
        sample bench nab labelled clean

help:
	@echo "make run            venv + install + run the embedded default (sample telemetry → ./out/)"
	@echo "make test           install + lint + start services + whole suite (unit, flow, integration) + stop services"
	@echo "make test-unit      fast tests, no services"
	@echo "make services-up    start Kafka, RabbitMQ and VictoriaMetrics on 127.0.0.1 (services-down stops them)"
	@echo "make nab | labelled detection-quality benchmarks; make bench: throughput benchmark"

# The venv, made once; a clear message where Python or its venv module is missing.
ENSURE_VENV = test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	echo "make: '$(PYTHON) -m venv' failed: install Python >= 3.11 with venv support" \
	     "(Debian/Ubuntu: apt-get install python3-venv) or point PYTHON= at one" >&2; exit 1; }

$(VENV)/.run-installed: pyproject.toml
	@$(ENSURE_VENV)
	@$(PIP) install -e .
	@touch $@

$(VENV)/.dev-installed: pyproject.toml
	@$(ENSURE_VENV)
	@$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.run-installed

run: $(VENV)/.run-installed
	$(PY) -m bytewax.run dataflows.sentinel:flow -w $(WORKERS)
	@echo "outputs: $$(ls out/*.jsonl | tr '\n' ' ')"

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check sentinel dataflows tests benchmarks
	$(VENV)/bin/ruff format --check sentinel dataflows tests benchmarks
	$(VENV)/bin/mypy

fmt: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check --fix sentinel dataflows tests benchmarks
	$(VENV)/bin/ruff format sentinel dataflows tests benchmarks

test-unit: $(VENV)/.dev-installed
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-flow: $(VENV)/.dev-installed
	$(PY) -m pytest tests/flow $(PYTEST_ARGS)

test-integration: $(VENV)/.dev-installed services-up
	@bash scripts/test-deps.sh
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The whole suite. Services are stopped whatever the outcome; pytest's exit 5 (no tests) is a failure.
test: $(VENV)/.dev-installed lint
	@bash scripts/test-deps.sh
	@rc=0; { bash scripts/services.sh up && $(PY) -m pytest tests $(PYTEST_ARGS); } || rc=$$?; \
	 bash scripts/services.sh down; \
	 if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	 exit $$rc

services-up:
	@bash scripts/services.sh up

services-down:
	@bash scripts/services.sh down

services-status:
	@bash scripts/services.sh status

# Regenerate the bundled sample (committed; ≤ 5 MB).
sample: $(VENV)/.run-installed
	$(PY) scripts/make_sample.py

nab: $(VENV)/.dev-installed
	$(PY) benchmarks/nab.py

labelled: $(VENV)/.dev-installed
	$(PY) benchmarks/labelled.py

bench: $(VENV)/.dev-installed services-up
	$(PY) benchmarks/throughput.py --repeat 3 --keys 7,10000
	$(PY) benchmarks/latency.py

clean:
	rm -rf out build *.egg-info .mypy_cache .ruff_cache .pytest_cache

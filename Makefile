# PixTools: `make demo` runs the example pipeline end to end; `make test` runs lint, types and every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU machines take the configured CPU wheel of this exact version; GPU machines may override TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
PACKAGES := libs/contracts libs/platform libs/imaging libs/db libs/testkit services/gateway services/ingest services/aggregator tools/devstack
OPTIONAL_PACKAGES := $(wildcard services/denoise/pyproject.toml services/detect/pyproject.toml)
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo run test lint typecheck unit schemas bench-pipeline clean

$(INSTALLED): $(addsuffix /pyproject.toml,$(PACKAGES)) $(OPTIONAL_PACKAGES) requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet $(addprefix -e ,$(PACKAGES)) $(addprefix -e ,$(dir $(OPTIONAL_PACKAGES))) -r requirements/dev.txt
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(BIN)/pixtools-demo

run: $(INSTALLED)
	$(BIN)/pixtools-stack

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

MYPY_PACKAGES := pixtools_contracts pixtools_platform pixtools_imaging pixtools_db pixtools_testkit pixtools_gateway pixtools_ingest \
	pixtools_aggregator pixtools_devstack $(patsubst services/%/pyproject.toml,pixtools_%,$(OPTIONAL_PACKAGES))

typecheck: $(INSTALLED)
	$(BIN)/mypy $(addprefix -p ,$(MYPY_PACKAGES))

test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(INSTALLED)
	$(BIN)/python -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

schemas: $(INSTALLED)
	$(BIN)/pixtools-contracts write

bench-pipeline: $(INSTALLED)
	$(BIN)/python bench/pipeline/bench_pipeline.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

# PixTools: `make demo` runs the example pipeline end to end; `make test` runs lint, types and every test.
# `make unit`, `make integration` and `make e2e` run one ring of tests; `make format` rewrites the code in the house style.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# CPU machines take the configured CPU wheel of this exact version; GPU machines may override TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
# The one list of packages: every folder with a pyproject.toml two levels down (libs/*, services/*, tools/*, ...).
# A checkout without some of them (e.g. denoise and detect) installs and checks the others.
PACKAGES := $(patsubst %/pyproject.toml,%,$(wildcard */*/pyproject.toml))
# Each package's import package is the folder under its src/ (pixtools_<name>).
MODULES := $(notdir $(patsubst %/__init__.py,%,$(wildcard $(addsuffix /src/*/__init__.py,$(PACKAGES)))))
space := $() $()
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
# The real @asyncapi/parser, which a contracts test runs over the AsyncAPI document (npm ci from its lockfile).
ASYNCAPI_CHECK := tools/asyncapi-check/node_modules/.package-lock.json

.PHONY: install demo run test lint format typecheck unit integration e2e schemas bench-pipeline clean

$(INSTALLED): $(addsuffix /pyproject.toml,$(PACKAGES)) requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet $(addprefix -e ,$(PACKAGES)) -r requirements/dev.txt
	touch $@

$(ASYNCAPI_CHECK): tools/asyncapi-check/package.json tools/asyncapi-check/package-lock.json
	npm ci --prefix tools/asyncapi-check --no-audit --no-fund
	touch $@

install: $(INSTALLED) $(ASYNCAPI_CHECK)

demo: $(INSTALLED)
	$(BIN)/pixtools-demo

run: $(INSTALLED)
	$(BIN)/pixtools-stack

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile

format: $(INSTALLED)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# mypy_path accepts no globs, so the search path comes from PACKAGES too.
typecheck: $(INSTALLED)
	MYPYPATH=$(subst $(space),:,$(addsuffix /src,$(PACKAGES))) $(BIN)/mypy $(addprefix -p ,$(MODULES))

test: lint typecheck $(ASYNCAPI_CHECK)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(INSTALLED) $(ASYNCAPI_CHECK)
	$(BIN)/python -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

integration: $(INSTALLED)
	$(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

e2e: $(INSTALLED)
	$(BIN)/python -m pytest -m e2e $(PYTEST_ARGS)

schemas: $(INSTALLED)
	$(BIN)/pixtools-contracts write

bench-pipeline: $(INSTALLED)
	$(BIN)/python bench/pipeline/bench_pipeline.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache tools/asyncapi-check/node_modules

# `make demo` and `make test` each create .venv and install on first use (idempotent: a stamp file
# records the install; it is redone only when pyproject.toml or constraints.txt change).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.taiyi-installed
TEST_TIMEOUT ?= 80m
PYTEST_ARGS ?=

.PHONY: install demo test unit integration lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check --upgrade pip
	@# torch first: the CPU build on local disk. Any looser pin pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	DS_BUILD_OPS=0 $(PIP) install -q -c constraints.txt -e '.[dev]'
	@touch $@

demo: install
	$(PY) jobs/pipeline.py --config configs/demo.yaml --serve-check

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# A Ray resource deadlock hangs instead of failing: the whole run is bounded.
test: lint
	timeout --signal=INT $(TEST_TIMEOUT) $(PY) -m pytest -ra --durations=25 $(PYTEST_ARGS) tests

unit: install
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

integration: install
	$(PY) -m pytest -ra --durations=25 -m integration tests/integration $(PYTEST_ARGS)

clean:
	rm -rf runs .pytest_cache .ruff_cache .mypy_cache

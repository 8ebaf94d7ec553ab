# `make test` and `make demo` set themselves up on a fresh machine: a .venv with the project installed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.genmix-installed

.PHONY: install test test-fast demo lint format bench clean-venv services

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:
	bash scripts/ensure-services.sh

test: install services
	$(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q tests/unit

demo: install
	$(BIN)/genmix demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/mixer.py
	$(BIN)/python bench/generators.py
	$(BIN)/python bench/api.py --duration 10  # needs Debian's nginx and wrk

clean-venv:
	rm -rf $(VENV)

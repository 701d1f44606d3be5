# One virtualenv, made from pyproject.toml with the versions pinned in constraints.txt (torch is the
# CPU build there: on a GPU host, install the CUDA build of the same version before `make setup`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo serve test lint bench
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

# The main job: the service on SQLite, a worker, and a tuning study, end to end.
demo: setup
	$(BIN)/hps demo

serve: setup
	$(BIN)/hps serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The whole suite: lint, types, and every test on SQLite and on the local PostgreSQL.
test: lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/service_overhead.py

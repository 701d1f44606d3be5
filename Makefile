# One virtualenv, made from pyproject.toml with the versions pinned in constraints.txt (torch is the
# CPU build there: on a GPU host, install the CUDA build of the same version before `make setup`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo serve test lint bench browser espeak
setup: $(VENV)/.installed
	@$(MAKE) --no-print-directory espeak || echo "warning: espeak-ng is not installed; the speech-recognition \
	task's built-in data needs it (apt-get install espeak-ng, as root); everything else works without it"

$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "Setting up $(VENV): the first time takes a few minutes (torch, transformers and their kin are large)."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -c constraints.txt -e '.[dev]' | grep -E '^(Collecting|Successfully)' || true
	@test -x $(BIN)/hps || (echo "setup failed: see the pip output above" && exit 1)
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
	$(BIN)/lint-imports --no-cache

# The dashboard's browser test drives Debian's Chromium (installed here if missing; needs apt and root).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get install -y -q chromium >/dev/null || \
	  (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null))

# The speech-recognition task's built-in data is speech that Debian's espeak-ng synthesizes (installed here
# if missing; needs apt and root). `make setup` only warns when it cannot install it; `make test` needs it.
espeak:
	@command -v espeak-ng >/dev/null 2>&1 || (apt-get install -y -q espeak-ng >/dev/null || \
	  (apt-get update -q >/dev/null && apt-get install -y -q espeak-ng >/dev/null))

# The whole suite: lint, types, and every test on SQLite and on the local PostgreSQL, in parallel
# processes (each test has its own ports, databases and data dirs). PYTEST_WORKERS=1 runs it serially.
PYTEST_WORKERS ?= 4
test: lint browser espeak
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist worksteal

bench: setup
	$(BIN)/python bench/service_overhead.py

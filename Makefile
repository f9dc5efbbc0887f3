# The two commands: `make train` and `make test`. Both create .venv when it is missing.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.audioseq-installed
ARGS ?=
PYTEST_ARGS ?=
# Test processes for `make test` (pytest-xdist; auto = one per usable core, at most 4: see
# tests/conftest.py). Each module runs in one process, so its module-scoped fixtures are
# built once. 0: in this process.
TEST_WORKERS ?= auto

.PHONY: setup train test test-slow test-all lint format bench clean

setup: $(STAMP)

# Re-installs only when pyproject.toml or constraints.txt changed since the last install.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

train: setup
	$(BIN)/audioseq-train $(ARGS)

test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-slow: setup
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

test-all: setup
	$(BIN)/python -m pytest -m "" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python scripts/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist

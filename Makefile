# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/adcut demo --out demo-output

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Lint, format check and types (CI runs this before the tests): `make format` fixes the first two.
lint: $(STAMP)
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m ruff format --check src tests benchmarks
	$(BIN)/python -m mypy

format: $(STAMP)
	$(BIN)/python -m ruff check --fix src tests benchmarks
	$(BIN)/python -m ruff format src tests benchmarks

clean:
	rm -rf $(VENV) demo-output .pytest_cache

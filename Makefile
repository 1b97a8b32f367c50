# Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean-cache clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: sweep the small preset on all cores and print the table
run: $(STAMP)
	$(BIN)/python -m mfn_core configs/presets/small.yaml

## test: lint, type-check, then the test suite (slow cases in their own step)
test: $(STAMP) lint
	$(BIN)/python -m pytest -m "not slow"
	$(BIN)/python -m pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## bench: compiled core vs NumPy reference, side by side
bench: $(STAMP)
	$(BIN)/python -m benchmarks.core

## clean-cache: drop numba's compiled-code cache (needed after editing mfn_core/_jit.py)
clean-cache:
	find mfn_core -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

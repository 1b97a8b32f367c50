# Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run ui test coverage lint audit figures bench bench-pipeline load sweep-memory clean-cache clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy]'
	touch $(STAMP)

# Dagster keeps its runs and event logs inside the project, never in the user's home.
export DAGSTER_HOME := $(CURDIR)/.dagster_home
UI_PORT ?= 3000

## run: build the small preset end to end through Dagster and query the result
run: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mfn build small
	$(BIN)/mfn sql "SELECT alpha, count(*) AS runs, round(avg(V_mean), 3) AS V_mean_mV, \
	  round(avg(D_box), 3) AS D_box, round(avg(D_box_rel), 3) AS D_box_rel, \
	  round(avg(H_entropy), 3) AS H_entropy, round(avg(lyapunov), 3) AS lyapunov \
	  FROM dataset WHERE preset = 'small' GROUP BY alpha ORDER BY alpha"

## ui: the Dagster UI on http://127.0.0.1:$(UI_PORT)
ui: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dg dev -h 127.0.0.1 -p $(UI_PORT)

$(DAGSTER_HOME)/dagster.yaml: configs/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp $< $@

# Servers and the browser the tests start themselves, from Debian's packages:
# Chromium for the UI test (Playwright never downloads a browser of its own) and
# PostgreSQL for the deployment test.
APT_PACKAGES := chromium postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: system-packages
system-packages:
	@missing=""; for package in $(APT_PACKAGES); do \
	  dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	  $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; fi

## test: lint, type-check, security lint, then the test suite (slow cases in their own step)
test: $(STAMP) system-packages lint
	$(BIN)/python -m pytest -m "not slow"
	$(BIN)/python -m pytest -m slow

## coverage: line coverage of mfn_core and mfn_pipeline from the fast tests, kernels run as Python
# numba's JIT off (as stumpy measures) lets coverage see inside the kernels; they then
# run hundreds of times slower, so the core cases that sweep many runs, and the one timed
# against compiled speed, stay out with the slow ones (the cache test among them). The
# pipeline's code is plain Python either way: its tests keep the JIT and its builds' speed.
COVERAGE_SLOW_CASES := \
  tests/mfn_core/test_sweep.py::test_one_row_per_run_in_order \
  tests/mfn_core/test_sweep.py::test_worker_count_does_not_change_results \
  tests/mfn_core/test_sweep.py::test_row_equals_a_lone_run_of_the_same_parameters \
  tests/mfn_core/test_sweep.py::test_a_streamed_sweep_holds_a_bounded_number_of_fields_however_many_runs \
  tests/mfn_core/test_sweep.py::test_a_hung_run_cannot_hold_the_sweep_past_its_time_limit
coverage: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	NUMBA_DISABLE_JIT=1 $(BIN)/python -m pytest -m "not slow" -p no:cacheprovider \
	  --cov --cov-report= $(addprefix --deselect ,$(COVERAGE_SLOW_CASES)) tests/mfn_core
	$(BIN)/python -m pytest -m "not slow" -p no:cacheprovider \
	  --cov --cov-append --cov-report=term-missing tests/mfn_pipeline

lint: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/dg check defs
	$(BIN)/bandit --quiet --severity-level medium --recursive mfn_core mfn_pipeline
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --builtin-schema vendor.compose-spec deploy/compose.yaml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/ci.yml

## audit: known vulnerabilities in every installed dependency (needs PyPI's advisory service)
audit: $(STAMP)
	$(BIN)/pip-audit --strict --skip-editable

## figures: the README's pictures, drawn from a fresh build of the transition preset
figures: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/mfn build transition
	$(BIN)/mfn show transition 40 --out docs/images/transition_field.png
	$(BIN)/mfn plot transition r_activator D_box --out docs/images/transition_d_box.svg
	$(BIN)/mfn plot transition r_activator D_box_rel --out docs/images/transition_d_box_rel.svg

## bench: compiled core vs NumPy reference, side by side
bench: $(STAMP)
	$(BIN)/python -m benchmarks.core

## bench-pipeline: Dagster materialization vs run_sweep for medium and large
bench-pipeline: $(STAMP)
	$(BIN)/python -m benchmarks.pipeline

## load: every preset rebuilt 3 times (multiprocess executor) under a looping reader
load: $(STAMP)
	$(BIN)/python -m benchmarks.load

## sweep-memory: peak RSS of the streaming build for N and 8N runs, and measured/estimated cost
sweep-memory: $(STAMP)
	$(BIN)/python -m benchmarks.sweep_memory

## clean-cache: drop numba's compiled-code cache (needed after editing mfn_core/_jit.py)
clean-cache:
	find mfn_core -name '*.nbi' -delete -o -name '*.nbc' -delete

clean: clean-cache
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

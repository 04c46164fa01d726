# Two commands do everything on a fresh machine:
#   make demo   set up, generate the bundled synthetic dataset, run both levels
#   make test   set up and run the test suite (slow end-to-end tests: make test-slow)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: venv demo test test-slow lint bench container-test clean

$(STAMP): setup.cfg pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh $(VENV) $(DEMO_DIR)

test: $(STAMP)
	$(VENV)/bin/ruff check bids_app tests bench
	$(VENV)/bin/ruff format --check bids_app tests bench
	$(PY) -m pytest -m "not slow" -n $(PYTEST_WORKERS) -q

test-slow: $(STAMP)
	$(PY) -m pytest -m slow -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bids_app tests bench
	$(VENV)/bin/ruff format --check bids_app tests bench

bench: $(STAMP)
	$(PY) bench/bench_dfc.py

container-test:
	bash scripts/container_test.sh

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache

# crackkit: two commands do all the set-up.
#   make report  -> create .venv, install, run the whole pipeline on the embedded synthetic data set
#   make test    -> create .venv, install with test tools, run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: report test lint install clean-venv benchmarks

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(STAMP)

report: $(STAMP)
	$(BIN)/crackkit run --preset synthetic $(ARGS)

test: $(TSTAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(TSTAMP)
	$(BIN)/ruff check .

benchmarks: $(STAMP)
	for b in metrics train_step data_memory evaluate; do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean-venv:
	rm -rf $(VENV)

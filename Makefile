# crackkit: two commands do all the set-up.
#   make report  -> create .venv, install, run the whole pipeline on the embedded synthetic data set
#   make test    -> create .venv, install with test and docs tools, run the test suite
#   make docs    -> build the documentation site into site/ (mkdocs, strict)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: report test lint install clean-venv benchmarks docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# constraints.txt: the exact environment crackkit was measured with (pyproject.toml holds ranges)
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# the test extra includes the docs extra (mkdocs, mkdocs-material, mkdocstrings) and onnx
$(TSTAMP): pyproject.toml constraints.txt $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(STAMP)

report: $(STAMP)
	$(BIN)/crackkit run --preset synthetic $(ARGS)

test: $(TSTAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

docs: $(TSTAMP)
	$(BIN)/mkdocs build --strict --site-dir site

lint: $(TSTAMP)
	$(BIN)/ruff check .

benchmarks: $(STAMP)
	for b in metrics train_step data_memory evaluate; do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean-venv:
	rm -rf $(VENV)

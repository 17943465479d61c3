# Every target installs what it needs into .venv first, so a fresh clone needs only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast reproduce benchmark clean-venv

install: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# The whole suite (what CI runs): trains the smoke grid and executes the notebooks.
test: $(STAMP)
	$(BIN)/python -m pytest -q tests

# Layers, config, run folders, results, tables and figures, without training: under a minute.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

# main.ipynb top to bottom; in place only with the study's settings (utils/reproduce.py).
reproduce: $(STAMP)
	$(BIN)/python -m utils.reproduce

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean-venv:
	rm -rf $(VENV)

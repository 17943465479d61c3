# Every target installs what it needs into .venv first, so a fresh clone needs only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests' and the cluster's packages come on top, only for the targets that need them.
TEST_STAMP := $(VENV)/.installed-test
CLUSTER_STAMP := $(VENV)/.installed-cluster

.PHONY: install install-cluster test test-fast reproduce benchmark clean-venv

install: $(STAMP)

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(TEST_STAMP): $(STAMP) requirements-test.txt requirements-cluster.txt requirements-torch.txt
	$(BIN)/python -m pip install --quiet -r requirements-cluster.txt -r requirements-test.txt
	$(BIN)/python -m pip install --quiet --retries 1 --no-deps -r requirements-torch.txt
	$(BIN)/python -m pip check
	touch $(TEST_STAMP)

# Ray, for python -m utils.experiments --executor ray.
install-cluster: $(CLUSTER_STAMP)

$(CLUSTER_STAMP): $(STAMP) requirements-cluster.txt
	$(BIN)/python -m pip install --quiet -r requirements-cluster.txt
	touch $(CLUSTER_STAMP)

# The whole suite (what CI runs): trains the smoke grid, executes the notebooks, starts
# Ray and runs the layer tests under JAX too.
test: $(TEST_STAMP)
	$(BIN)/python -m pytest -q tests

# Layers, config, run folders, results, tables and figures, without training: under a minute.
test-fast: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

# main.ipynb top to bottom; in place only with the study's settings (utils/reproduce.py).
reproduce: $(STAMP)
	$(BIN)/python -m utils.reproduce

benchmark: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean-venv:
	rm -rf $(VENV)

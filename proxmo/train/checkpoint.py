"""Checkpoints of a run: the policy (weights and tokenizer), the optimizer, the random states and the config.

Every checkpoint lists the SHA-256 of each of its files (``checksums.json``); a resume verifies them
before loading anything and falls back to the previous intact checkpoint with a warning, so a damaged
file never loads silently (random bytes over the weights) or crashes the loader (a cut optimizer state).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import yaml

from proxmo.train.config import TrainConfig, save_config
from proxmo.train.runfolder import STATE_FILE
from proxmo.train.tracking import flatten_params

logger = logging.getLogger(__name__)

CHECKSUM_FILE = "checksums.json"

RESUMABLE_CHANGES = (
    "run.iterations", "run.resume", "run.save_every", "run.keep_checkpoints", "run.tracker", "run.tracking_uri",
    "run.experiment", "run.parent_run_id", "run.tags", "run.name", "run.output_dir",
    "model.device", "model.dtype", "model.path", "model.rollout_backend", "model.vllm_gpu_memory_utilization",
    "model.generation_token_budget", "model.generation_cache", "model.compile_decode", "model.logprob_chunk_tokens",
    "model.gradient_checkpointing", "optim.micro_batch_size", "env.backend", "env.envs_per_actor", "env.ray_address",
)
"""Settings a resumed run may change: its length, where it is reported, and how (not what) it computes. Any
other difference from the checkpoint's config is refused: the checkpoint cannot honour it."""


def checkpoint_dir(root: Path, iteration: int) -> Path:
    return Path(root) / f"iter_{iteration:06d}"


def save_checkpoint(root: Path, iteration: int, policy: Any, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, task_rng: random.Random, config: TrainConfig,
                    workers: Optional[List[Dict[str, Any]]] = None,
                    update_generator: Optional[torch.Generator] = None, model_state: Optional[Dict[str, Any]] = None,
                    optimizer_state: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``root/iter_NNNNNN/{model/, trainer_state.pt, config.yaml}``; returns the folder.

    A job on several workers adds each worker's random streams (``workers``: its ``generator`` state and
    ``task_rng`` state, in rank order) and the update's shared generator; a sharded model gives its full
    ``model_state`` and ``optimizer_state`` (gathered from the workers' shards).

    The folder is written under a temporary name and renamed at the end, so an interrupted save
    never leaves a checkpoint that looks complete.
    """
    final = checkpoint_dir(root, iteration)
    partial = final.with_name(final.name + ".partial")
    try:
        partial.mkdir(parents=True, exist_ok=True)
        policy.save(partial / "model", state_dict=model_state)
        state = {
            "iteration": iteration,
            "optimizer": optimizer.state_dict() if optimizer_state is None else optimizer_state,
            "generator": generator.get_state(),
            "task_rng": _plain_random_state(task_rng.getstate()),
        }
        if workers is not None:
            state["workers"] = [{"generator": w["generator"], "task_rng": _plain_random_state(w["task_rng"])}
                                for w in workers]
            state["update_generator"] = update_generator.get_state()
        torch.save(state, partial / STATE_FILE)
        save_config(config, partial / "config.yaml")
        (partial / CHECKSUM_FILE).write_text(json.dumps(_checksums(partial), indent=1, sort_keys=True))
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
    except OSError as error:  # a full or read-only disk: leave no half-written folder behind, say it in one line
        shutil.rmtree(partial, ignore_errors=True)
        raise OSError(error.errno, f"checkpoint {final} could not be written: {error.strerror or error}") from error
    return final


def _checksums(folder: Path) -> Dict[str, str]:
    """SHA-256 of every file under ``folder`` (but the checksum list itself), by path relative to it."""
    sums = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sums[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return sums


def checkpoint_problem(folder: Path) -> Optional[str]:
    """What is wrong with a checkpoint folder (a file missing, changed or added since it was written), or None.

    A checkpoint written before checksums were kept is checked for its state file only.
    """
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        return f"{STATE_FILE} is missing"
    listed = folder / CHECKSUM_FILE
    if not listed.is_file():
        return None
    try:
        expected = json.loads(listed.read_text())
    except (OSError, ValueError) as error:
        return f"{CHECKSUM_FILE} is unreadable ({error})"
    actual = _checksums(folder)
    for name, digest in expected.items():
        if name not in actual:
            return f"{name} is missing"
        if actual[name] != digest:
            return f"{name} does not match its checksum (damaged or changed)"
    return None


def intact_checkpoint(candidates: List[Path]) -> Path:
    """The first of ``candidates`` (newest first) whose files match their checksums; a warning for each one
    skipped. Raises ValueError naming every problem when none is intact."""
    problems = []
    for folder in candidates:
        problem = checkpoint_problem(folder)
        if problem is None:
            if problems:
                logger.warning("resuming from %s instead", folder)
            return folder
        problems.append(f"{folder.name}: {problem}")
        logger.warning("checkpoint %s is not usable (%s); trying the one before it", folder, problem)
    raise ValueError("run.resume: no intact checkpoint (" + "; ".join(problems) + ")")


def resume_conflicts(checkpoint: Path, config: TrainConfig) -> List[str]:
    """``field: checkpoint value -> config value`` for every setting ``config`` changes that a run resumed from
    ``checkpoint`` cannot honour (anything outside :data:`RESUMABLE_CHANGES`)."""
    saved_path = Path(checkpoint) / "config.yaml"
    if not saved_path.is_file():
        return []
    saved = flatten_params(yaml.safe_load(saved_path.read_text()) or {})
    wanted = flatten_params(config.to_dict())
    defaults = None
    conflicts = []
    for key in sorted(set(saved) | set(wanted)):
        if any(key == allowed or key.startswith(allowed + ".") for allowed in RESUMABLE_CHANGES):
            continue
        if key not in saved:  # a setting newer than the checkpoint: at its default it changes nothing
            defaults = defaults if defaults is not None else flatten_params(TrainConfig().to_dict())
            if defaults.get(key) == wanted.get(key):
                continue
        if saved.get(key) != wanted.get(key):
            conflicts.append(f"{key}: {saved.get(key, '(absent)')} -> {wanted.get(key, '(absent)')}")
    return conflicts


def load_trainer_state(folder: Path) -> Dict[str, Any]:
    """The optimizer and random states of a checkpoint folder."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    # weights_only: opening a checkpoint from elsewhere must not run code; everything in it is plain data.
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["task_rng"] = _random_state(state["task_rng"])
    for worker in state.get("workers", ()):
        worker["task_rng"] = _random_state(worker["task_rng"])
    return state


def _plain_random_state(state: tuple) -> Dict[str, Any]:
    """Python's random state as lists and numbers (what a weights-only load accepts)."""
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _random_state(plain: Dict[str, Any]) -> tuple:
    return (plain["version"], tuple(plain["internal"]), plain["gauss"])

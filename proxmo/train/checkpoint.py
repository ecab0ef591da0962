"""Checkpoints of a run: the policy (weights and tokenizer), the optimizer, the random states and the config."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from proxmo.train.config import TrainConfig, save_config

STATE_FILE = "trainer_state.pt"


def checkpoint_dir(root: Path, iteration: int) -> Path:
    return Path(root) / f"iter_{iteration:06d}"


def save_checkpoint(root: Path, iteration: int, policy: Any, optimizer: torch.optim.Optimizer,
                    generator: torch.Generator, task_rng: random.Random, config: TrainConfig) -> Path:
    """Write ``root/iter_NNNNNN/{model/, trainer_state.pt, config.yaml}``; returns the folder.

    The folder is written under a temporary name and renamed at the end, so an interrupted save
    never leaves a checkpoint that looks complete.
    """
    final = checkpoint_dir(root, iteration)
    partial = final.with_name(final.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    policy.save(partial / "model")
    torch.save(
        {
            "iteration": iteration,
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "task_rng": _plain_random_state(task_rng.getstate()),
        },
        partial / STATE_FILE,
    )
    save_config(config, partial / "config.yaml")
    if final.exists():
        import shutil

        shutil.rmtree(final)
    partial.rename(final)
    return final


def load_trainer_state(folder: Path) -> Dict[str, Any]:
    """The optimizer and random states of a checkpoint folder."""
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    # weights_only: opening a checkpoint from elsewhere must not run code; everything in it is plain data.
    state = torch.load(path, map_location="cpu", weights_only=True)
    state["task_rng"] = _random_state(state["task_rng"])
    return state


def _plain_random_state(state: tuple) -> Dict[str, Any]:
    """Python's random state as lists and numbers (what a weights-only load accepts)."""
    version, internal, gauss = state
    return {"version": version, "internal": list(internal), "gauss": gauss}


def _random_state(plain: Dict[str, Any]) -> tuple:
    return (plain["version"], tuple(plain["internal"]), plain["gauss"])


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest complete checkpoint of a run folder (or of its ``checkpoints`` folder), if any."""
    run_dir = Path(run_dir)
    for root in (run_dir / "checkpoints", run_dir):
        found = sorted(p for p in root.glob("iter_*")
                       if p.is_dir() and not p.name.endswith(".partial") and (p / STATE_FILE).is_file())
        if found:
            return found[-1]
    return None

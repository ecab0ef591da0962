"""`compute_advantages`, the library's one entry point; importing this module registers the built-in estimators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from proxmo.advantage.batch import StepBatch
from proxmo.advantage import builtin  # noqa: F401  (each import registers its estimators, in listing order)
from proxmo.advantage import baselines  # noqa: F401
from proxmo.advantage import hgpo  # noqa: F401
from proxmo.advantage import g2po  # noqa: F401
from proxmo.advantage import graphgpo  # noqa: F401
from proxmo.advantage.config import AdvantageConfig
from proxmo.advantage.registry import ESTIMATORS


@dataclass(frozen=True)
class AdvantageResult:
    """Advantages of a batch, one scalar per row, rows in the caller's order.

    ``advantages`` is what a trainer uses (broadcast to the response tokens of its step); ``episode`` and ``step``
    are the parts it is made of (for most estimators ``advantages = episode + step_weight * step``).
    """

    advantages: np.ndarray  # (N,) float32
    episode: np.ndarray  # (N,) float32, A^E
    step: np.ndarray  # (N,) float32, A^S (before the step weight)
    diagnostics: Dict[str, float]
    config: AdvantageConfig


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_finite(total: np.ndarray, prepared) -> None:
    """Advantages are returned as float32: rewards so large that their statistics overflow are an error that says
    so, not NaN or infinity handed to a trainer."""
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~np.isfinite(total) | (np.abs(total) > FLOAT32_MAX)
    if bad.any():
        largest = float(np.max(np.abs(prepared.reward))) if len(prepared.reward) else 0.0
        raise ValueError(f"advantages: {int(bad.sum())} of {len(total)} rows overflow (the largest |reward| is "
                         f"{largest:.3g}, and returns, group means and deviations must stay within float range); "
                         "scale the rewards down, e.g. to [-1e6, 1e6]")


def compute_advantages(batch: StepBatch, config: Optional[AdvantageConfig] = None) -> AdvantageResult:
    """Advantages of every row of ``batch`` under ``config`` (ProxMO with paper defaults if omitted)."""
    if not isinstance(batch, StepBatch):
        raise TypeError(f"batch: expected a StepBatch, got {type(batch).__name__}")
    config = config or AdvantageConfig()
    prepared = batch.prepared
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, once, as an error
        parts = ESTIMATORS[config.estimator].compute(prepared, config)
        total = parts.total()
    _check_finite(total, prepared)
    diagnostics = {
        "rows": float(prepared.n_rows),
        "groups": float(prepared.n_groups),
        "trajectories": float(prepared.n_traj),
        "distinct_anchors": float(len(prepared.anchors)),
        **parts.diagnostics,
        "episode_abs_mean": float(np.abs(parts.episode).mean()),
        "step_abs_mean": float(np.abs(parts.step).mean()),
        "advantage_mean": float(total.mean()),
        "advantage_std": float(total.std()),
    }
    as_input = lambda values: prepared.to_input_order(values).astype(np.float32)  # noqa: E731
    return AdvantageResult(
        advantages=as_input(total),
        episode=as_input(parts.episode),
        step=as_input(parts.step),
        diagnostics=diagnostics,
        config=config,
    )

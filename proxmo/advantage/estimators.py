"""The estimators (GRPO, GiGPO, ProxMO) and `compute_advantages`, the library's one entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np

from proxmo.advantage.batch import PreparedBatch, StepBatch
from proxmo.advantage.config import AdvantageConfig
from proxmo.advantage.episode import episode_component
from proxmo.advantage.registry import ESTIMATORS, register_estimator
from proxmo.advantage.step import step_component


@dataclass(frozen=True)
class Components:
    """What an estimator computes, per row in canonical order (float64)."""

    episode: np.ndarray
    step: np.ndarray
    diagnostics: Dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class AdvantageResult:
    """Advantages of a batch, one scalar per row, rows in the caller's order.

    ``advantages = episode + step_weight * step``; broadcast each to the response tokens of its step.
    """

    advantages: np.ndarray  # (N,) float32
    episode: np.ndarray  # (N,) float32, A^E
    step: np.ndarray  # (N,) float32, A^S (before the step weight)
    diagnostics: Dict[str, float]
    config: AdvantageConfig  # with every per-estimator default resolved


def episode_plus_step(batch: PreparedBatch, config: AdvantageConfig) -> Components:
    """The composition every built-in estimator uses: A = A^E + omega * A^S."""
    episode = episode_component(batch, config)
    step = step_component(batch, config)
    diagnostics = {
        "success_rate_mean": float(episode.success_rate.mean()),
        "modulation_weight_mean": float(episode.weight.mean()),
        "modulation_weight_min": float(episode.weight.min()),
        "modulation_weight_max": float(episode.weight.max()),
    }
    if config.step_grouping != "none":
        diagnostics["step_group_size_mean"] = float(step.group_size.mean())
        diagnostics["step_singleton_fraction"] = step.singleton_fraction
    return Components(episode=episode.advantage, step=step.advantage, diagnostics=diagnostics)


register_estimator(
    "grpo",
    defaults={"normalization": "mean_std_norm", "modulation": False, "step_grouping": "none"},
    compute=episode_plus_step,
    description="Group-relative episode advantage, z-scored within each group.",
)
register_estimator(
    "gigpo",
    defaults={"normalization": "mean_norm", "modulation": False, "step_grouping": "exact"},
    compute=episode_plus_step,
    description="Episode advantage plus step advantage within groups of identical anchor states.",
)
register_estimator(
    "proxmo",
    defaults={"normalization": "mean_norm", "modulation": True, "step_grouping": "soft"},
    compute=episode_plus_step,
    description="Success-rate-aware modulated episode advantage plus a proximity-weighted step baseline.",
)


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
    config = (config or AdvantageConfig()).resolved()
    prepared = batch.prepared
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below, once, as an error
        parts = ESTIMATORS[config.estimator].compute(prepared, config)
        total = parts.episode + config.step_weight * parts.step
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

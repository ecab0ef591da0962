"""Episode level: group-relative scores (paper or official statistics) and success-rate-aware modulation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.config import AdvantageConfig
from proxmo.advantage.segments import segment_mean_std, segment_sum


@dataclass(frozen=True)
class EpisodeComponent:
    advantage: np.ndarray  # (N,) A^E per row, canonical order
    weight: np.ndarray  # (N,) modulation weight w per row (1 when modulation is off)
    success_rate: np.ndarray  # (G,) p per group as the preset defines it


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def modulation_weight(success: np.ndarray, p: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """w = 1 + beta (sigmoid((1-p)^alpha) - 1/2) for a success, 1 + beta (sigmoid(-p^alpha) - 1/2) for a failure.

    Successes are amplified most when the group rarely succeeds (p -> 0); failures are damped most
    when it usually succeeds (p -> 1). With beta derived from delta, w stays in [1 - delta, 1 + delta].
    """
    p = np.asarray(p, dtype=np.float64)
    up = _sigmoid((1.0 - p) ** alpha) - 0.5
    down = _sigmoid(-(p**alpha)) - 0.5
    return 1.0 + beta * np.where(success, up, down)


def _scale(normalization: str, std: np.ndarray, epsilon: float) -> np.ndarray:
    return np.ones_like(std) if normalization == "mean_norm" else std + epsilon


def episode_component(batch: PreparedBatch, config: AdvantageConfig,
                      normalization: str | None = None) -> EpisodeComponent:
    """A^E for every row (docs/algorithm.md, "Episode level"); ``normalization`` defaults to the config's option.

    The modulation applies where the estimator has it switched on (ProxMO's ``modulation`` option).
    """
    normalization = normalization or config.normalization
    penalty = config.invalid_penalty * batch.invalid
    traj_return = segment_sum(batch.reward, batch.traj, batch.n_traj)  # R(tau)
    if config.preset == "paper":
        # Each trajectory counts once; the penalty is step shaping added after normalisation.
        mean, std, count = segment_mean_std(traj_return, batch.traj_group, batch.n_groups)
        single = count < 2
        mean[single], std[single] = 0.0, 1.0
        success_rate = segment_sum(batch.traj_won.astype(np.float64), batch.traj_group, batch.n_groups) / count
        centred = (traj_return - mean[batch.traj_group]) / _scale(normalization, std, config.epsilon)[batch.traj_group]
        centred = centred[batch.traj]
        success = batch.won
    else:
        # As released: every row counts once, the penalty sits inside the score and is scaled with it.
        score = traj_return[batch.traj] - penalty
        mean, std, count = segment_mean_std(score, batch.group, batch.n_groups)
        single = count < 2
        mean[single], std[single] = 0.0, 1.0
        success_rate = np.clip(mean, 0.0, 1.0)
        centred = (score - mean[batch.group]) / _scale(normalization, std, config.epsilon)[batch.group]
        success = score > 0.5

    if getattr(config, "modulation", False):
        weight = modulation_weight(success, success_rate[batch.group], config.alpha, config.effective_beta)
    else:
        weight = np.ones(batch.n_rows)
    advantage = weight * centred
    if config.preset == "paper":
        advantage = advantage - penalty
    return EpisodeComponent(advantage=advantage, weight=weight, success_rate=success_rate)

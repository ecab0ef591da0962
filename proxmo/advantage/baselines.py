"""Outcome baselines from verl-agent: Dr. GRPO, RLOO and REINFORCE++-baseline (docs/algorithm.md).

Under ``preset=official`` each returns what verl-agent's function returns on the same rows: statistics over
rows (long trajectories weigh more), the invalid-action penalty inside the score. Under ``paper`` each
trajectory counts once and the penalty is subtracted after normalising, as for GRPO.
"""

from __future__ import annotations

import numpy as np

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.episode import episode_component
from proxmo.advantage.registry import Components, register_estimator
from proxmo.advantage.segments import segment_mean_std, segment_sum

WHITEN_EPSILON = 1e-8
"""Added to the batch variance before its square root (verl's masked_whiten)."""


def _scores(batch: PreparedBatch, config):
    """Per-item scores, the item of each row and the group of each item: rows (official) or trajectories (paper)."""
    traj_return = segment_sum(batch.reward, batch.traj, batch.n_traj)
    if config.preset == "official":
        score = traj_return[batch.traj] - config.invalid_penalty * batch.invalid
        return score, np.arange(batch.n_rows), batch.group
    return traj_return, batch.traj, batch.traj_group


def _finish(batch: PreparedBatch, config, item_advantage: np.ndarray, item_of_row: np.ndarray) -> Components:
    advantage = item_advantage[item_of_row]
    if config.preset == "paper":
        advantage = advantage - config.invalid_penalty * batch.invalid
    return Components(episode=advantage, step=np.zeros(batch.n_rows))


def drgrpo(batch: PreparedBatch, config) -> Components:
    """GRPO without the division by the group's std: A = s - mean_g(s)."""
    episode = episode_component(batch, config, normalization="mean_norm")
    return Components(episode=episode.advantage, step=np.zeros(batch.n_rows),
                      diagnostics={"success_rate_mean": float(episode.success_rate.mean())})


def rloo(batch: PreparedBatch, config) -> Components:
    """Leave-one-out: A = s - mean of the group's other items = n/(n-1) (s - mean_g(s)).

    Items are trajectories (paper) or rows (official). An item alone in its group has no baseline: 0 under
    ``paper``; under ``official`` its score unchanged, as verl-agent returns it.
    """
    score, item_of_row, item_group = _scores(batch, config)
    mean, _, count = segment_mean_std(score, item_group, batch.n_groups)
    n = count[item_group]
    alone = n < 2
    advantage = np.where(alone, score if config.preset == "official" else 0.0,
                         n / np.maximum(n - 1.0, 1.0) * (score - mean[item_group]))
    return _finish(batch, config, advantage, item_of_row)


def whiten(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(v - mean) / sqrt(var + 1e-8) with weighted mean and unbiased weighted variance (weights are token counts).

    With a total weight of at most 1 there is no variance: every value becomes 0.
    """
    total = float(weights.sum())
    if total <= 1.0:
        return np.zeros_like(values)
    mean = float(weights @ values) / (total + WHITEN_EPSILON)
    centred = values - mean
    variance = float(weights @ (centred * centred)) / (total + WHITEN_EPSILON) * total / (total - 1.0)
    return centred / np.sqrt(variance + WHITEN_EPSILON)


def reinforce_pp_baseline(batch: PreparedBatch, config) -> Components:
    """REINFORCE++-baseline: the group mean removed (as Dr. GRPO does), then whitened over the batch.

    The whitening weighs each row by its response token count when the batch has ``tokens`` (exactly what
    verl-agent computes over response tokens); without them every row weighs 1, an approximation.
    """
    score, item_of_row, item_group = _scores(batch, config)
    mean, _, count = segment_mean_std(score, item_group, batch.n_groups)
    mean[count < 2] = 0.0  # GRPO's rule, in both presets: a group of one item has mean 0
    centred = (score - mean[item_group])[item_of_row]
    weights = batch.tokens.astype(np.float64) if batch.tokens is not None else np.ones(batch.n_rows)
    advantage = whiten(centred, weights)
    if config.preset == "paper":
        advantage = advantage - config.invalid_penalty * batch.invalid
    return Components(episode=advantage, step=np.zeros(batch.n_rows),
                      diagnostics={"token_weighted": float(batch.tokens is not None)})


register_estimator(
    "drgrpo", compute=drgrpo,
    description="Dr. GRPO: the group mean removed, no division by the std.",
)
register_estimator(
    "rloo", compute=rloo,
    description="RLOO: the mean of the group's other trajectories (official: other rows) as the baseline.",
)
register_estimator(
    "reinforce_pp_baseline", compute=reinforce_pp_baseline,
    description="REINFORCE++-baseline: the group mean removed, then whitened over the batch "
    "(token-weighted when the batch has token counts).",
)

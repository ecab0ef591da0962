"""HGPO (He et al., ICLR 2026): relative returns in nested history groups, averaged with depth weights.

Each step joins K+1 groups: the steps of its task group whose last k anchors (k = 1..K+1) equal its own.
In each group of two or more members the discounted return (minus the invalid penalty) is centred (and
divided by the population std + epsilon); a step's advantage is the weighted mean of its non-zero items,
weights (k+1)^alpha / (sum of the weights + epsilon). docs/algorithm.md has the equations and the quirks.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.episode import episode_component
from proxmo.advantage.options import EstimatorOptions, Normalization, normalization_field
from proxmo.advantage.registry import Components, register_estimator
from proxmo.advantage.segments import segment_count, segment_sum
from proxmo.advantage.step import anchor_pairs, step_returns


class HgpoOptions(EstimatorOptions):
    normalization: Normalization = normalization_field("mean_std_norm", "history groups (and the episode item)")
    history_length: int = Field(2, ge=0, le=64, description="K: history groups use the last k = 1..K+1 anchors.")
    alpha: float = Field(1.0, ge=0.0, description="Depth weight exponent: item k weighs (k+1)^alpha (0: uniform).")
    base_group: bool = Field(False, description="Add the episode advantage as an item of depth 0 (weight 1).")


def history_levels(batch: PreparedBatch, depth: int) -> list[np.ndarray]:
    """Cluster ids of every row at each level k = 1..depth (-1 where the trajectory is shorter than k steps).

    Level k's key of a row is its last k anchors inside its task group: the level k-1 key of the row before
    it in the trajectory plus its own anchor, so each level is one pass over the rows.
    """
    pairs = anchor_pairs(batch)
    levels = [pairs.row_pair.astype(np.int64)]
    previous = np.r_[-1, np.arange(batch.n_rows - 1)]  # canonical order: the row before is the step before
    for k in range(2, depth + 1):
        has = batch.t >= k - 1
        key = np.full(batch.n_rows, -1, dtype=np.int64)
        if has.any():
            left = levels[-1][previous[has]]
            joint = left * len(batch.anchors) + batch.anchor_code[has]
            key[has] = np.unique(joint, return_inverse=True)[1]
        levels.append(key)
    return levels


def level_items(values: np.ndarray, cluster: np.ndarray, normalization: str, epsilon: float) -> np.ndarray:
    """Each row's item at one level: centred (and scaled by the population std) within its cluster.

    Rows without a cluster at this level, clusters of one member and clusters whose values are all equal give
    exactly 0 (the released float32 code leaves rounding residue there; see docs/algorithm.md).
    """
    item = np.zeros(len(values))
    member = cluster >= 0
    if not member.any():
        return item
    codes = cluster[member]
    v = values[member]
    n = int(codes.max()) + 1
    count = segment_count(codes, n)
    mean = segment_sum(v, codes, n) / np.maximum(count, 1.0)
    low = np.full(n, np.inf)
    high = np.full(n, -np.inf)
    np.minimum.at(low, codes, v)
    np.maximum.at(high, codes, v)
    centred = v - mean[codes]
    if normalization == "mean_std_norm":
        population_std = np.sqrt(segment_sum(centred * centred, codes, n) / np.maximum(count, 1.0))
        centred = centred / (population_std[codes] + epsilon)
    centred[(count[codes] < 2) | (low[codes] == high[codes])] = 0.0
    item[member] = centred
    return item


def hgpo(batch: PreparedBatch, config) -> Components:
    options = config.options
    returns = step_returns(batch, config)
    depth = options.history_length + 1
    items = [level_items(returns, cluster, options.normalization, config.epsilon)
             for cluster in history_levels(batch, depth)]
    depths = list(range(1, depth + 1))
    episode = np.zeros(batch.n_rows)
    if options.base_group:
        episode = episode_component(batch, config, normalization=options.normalization).advantage
        items.insert(0, episode)
        depths.insert(0, 0)
    stacked = np.stack(items)  # (levels, N)
    weight = np.array([(k + 1.0) ** options.alpha for k in depths])[:, None] * (stacked != 0.0)
    weight_sum = weight.sum(axis=0)
    advantage = (weight * stacked).sum(axis=0) / (weight_sum + config.epsilon)
    used = (stacked != 0.0).sum(axis=0)
    return Components(episode=episode, step=advantage, advantages=advantage,
                      diagnostics={"history_items_mean": float(used.mean()),
                                   "history_zero_fraction": float(np.mean(used == 0))})


register_estimator(
    "hgpo", options=HgpoOptions, compute=hgpo,
    description="HGPO: relative returns in nested history groups (last k anchors), weighted by depth.",
)

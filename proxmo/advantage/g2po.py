"""G2PO (Wang et al., 2026): anchor nodes with mean discounted values, a local and a global TD term.

Within a task group, rows with the same anchor form a node with value V(n), the mean of
value_discount^(T - t) * R(trajectory) over its rows. The step term of a row is c1 + c2: c1 its next
node's value (minus the invalid penalty) normalised within its node, c2 the TD error V(next) - V(node)
normalised over its task group. The advantage is the episode term plus step_weight * (c1 + c2).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.episode import episode_component
from proxmo.advantage.options import EstimatorOptions, Normalization, normalization_field
from proxmo.advantage.registry import Components, register_estimator
from proxmo.advantage.segments import segment_mean_std, segment_sum
from proxmo.advantage.step import anchor_pairs, cluster_normalize


class G2poOptions(EstimatorOptions):
    normalization: Normalization = normalization_field("mean_std_norm", "episode, node and group terms")
    step_weight: float = Field(1.0, ge=0.0, description="w: weight of the step terms c1 + c2.")
    value_discount: float = Field(
        0.95, ge=0.0, le=1.0, description="Discount of the node values, 0.95 hard-coded in the released code "
        "(not the config's gamma).")
    terminal_value: float = Field(
        10.0, description="Value of the terminal node after a won trajectory's last step (10 in the released code, "
        "ALFWorld's win reward); a lost trajectory's terminal is worth 0.")


def g2po(batch: PreparedBatch, config) -> Components:
    options = config.options
    pairs = anchor_pairs(batch)
    node = pairs.row_pair
    n_nodes = len(pairs.group)
    traj_return = segment_sum(batch.reward, batch.traj, batch.n_traj)[batch.traj]
    length = batch.traj_len[batch.traj]
    discounted = options.value_discount ** (length - batch.t).astype(np.float64) * traj_return
    value = segment_sum(discounted, node, n_nodes) / pairs.count
    last = batch.t == length - 1
    next_value = np.where(batch.won, options.terminal_value, 0.0)
    inner = np.flatnonzero(~last)
    next_value[inner] = value[node[inner + 1]]
    local = cluster_normalize(next_value - config.invalid_penalty * batch.invalid, node, n_nodes,
                              options.normalization, config.epsilon).advantage
    gain = next_value - value[node]
    mean, std, count = segment_mean_std(gain, batch.group, batch.n_groups)
    centred = gain - mean[batch.group]
    if options.normalization == "mean_std_norm":
        centred = centred / (np.nan_to_num(std, nan=1.0)[batch.group] + config.epsilon)
    centred[count[batch.group] < 2] = 0.0  # a one-row group: no TD spread (the released code gives NaN)
    step = local + centred
    episode = episode_component(batch, config, normalization=options.normalization).advantage
    return Components(episode=episode, step=step, advantages=episode + options.step_weight * step,
                      diagnostics={"node_singleton_fraction": float(np.mean(pairs.count == 1))})


register_estimator(
    "g2po", options=G2poOptions, compute=g2po,
    description="G2PO: episode term plus a within-node next-value term and a group-wide TD term over anchor nodes.",
)

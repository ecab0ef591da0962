"""GraphGPO (Cheng et al., ICML 2026): shortest-path distance to success over the task group's state graph.

The anchors of a task group and the observations its steps led to are the nodes of one graph, each step an
edge anchor -> next. A step's return is goal_value * gamma_g^d(next), d the number of steps from next to
success, minus the invalid penalty; it is normalised within groups of identical anchors (GiGPO's step term)
and added to the episode term. The last step of a won trajectory leads to success; the last step of a lost
one leads to its ``next_anchor`` when the batch has it, else to a terminal of its own.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.sparse.csgraph import dijkstra

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.episode import episode_component
from proxmo.advantage.options import EstimatorOptions, Normalization, normalization_field
from proxmo.advantage.registry import Components, register_estimator
from proxmo.advantage.step import AnchorPairs, anchor_pairs, cluster_normalize


class GraphgpoOptions(EstimatorOptions):
    normalization: Normalization = normalization_field("mean_std_norm", "episode and anchor groups")
    graph_gamma: float = Field(0.10, gt=0.0, le=1.0, description="gamma_g: discount per step of distance to success "
                               "(0.10 in the ALFWorld scripts, 0.20 in WebShop's).")
    goal_value: float = Field(10.0, description="Return of a step that reaches success (10 in the released code).")
    normalize_distance: bool = Field(False, description="Use d(next) - d(anchor) + 1 instead of d(next).")
    step_weight: float = Field(1.0, ge=0.0, description="w_s: weight of the step term.")
    episode_weight: float = Field(1.0, ge=0.0, description="w_e: weight of the episode term (0 drops it).")


def next_nodes(batch: PreparedBatch, pairs: AnchorPairs) -> tuple[np.ndarray, np.ndarray]:
    """The node each row leads to, and the task group of every node.

    Nodes: the (group, anchor) pairs 0..P-1, then one success node per group, then the other observations.
    """
    n_pairs = len(pairs.group)
    last = batch.t == batch.traj_len[batch.traj] - 1
    success = n_pairs + batch.group
    target = np.empty(batch.n_rows, dtype=np.int64)
    if batch.next_anchor is None:
        inner = np.flatnonzero(~last)
        target[inner] = pairs.row_pair[inner + 1]
        lost_end = np.flatnonzero(last & ~batch.won)
        target[lost_end] = n_pairs + batch.n_groups + np.arange(len(lost_end))  # a terminal of its own
        extra_group = batch.group[lost_end]
    else:
        known = {(int(g), batch.anchors[a]): p for p, (g, a) in enumerate(zip(pairs.group, pairs.anchor))}
        fresh: dict = {}
        for i in np.flatnonzero(~(last & batch.won)).tolist():
            key = (int(batch.group[i]), batch.next_anchor[i])
            node = known.get(key)
            if node is None:
                node = fresh.setdefault(key, n_pairs + batch.n_groups + len(fresh))
            target[i] = node
        extra_group = np.array([g for g, _ in fresh], dtype=np.int64)
    ends = np.flatnonzero(last & batch.won)
    target[ends] = success[ends]
    node_group = np.concatenate([pairs.group, np.arange(batch.n_groups), extra_group]).astype(np.int64)
    return target, node_group


def distances_to_success(source: np.ndarray, target: np.ndarray, node_group: np.ndarray, n_groups: int,
                         n_pairs: int) -> np.ndarray:
    """Steps from every node to its group's success node; a node that cannot reach it gets the group's largest
    finite distance + 1 (so with no success in a group every other node is at distance 1)."""
    n_nodes = len(node_group)
    reverse = sp.csr_matrix((np.ones(len(source)), (target, source)), shape=(n_nodes, n_nodes))
    successes = n_pairs + np.arange(n_groups)
    distance = dijkstra(reverse, directed=True, indices=successes, unweighted=True, min_only=True)
    present = np.zeros(n_nodes, dtype=bool)
    present[source] = present[target] = True
    present[successes] = True
    finite = np.isfinite(distance) & present
    farthest = np.zeros(n_groups)
    np.maximum.at(farthest, node_group[finite], distance[finite])
    return np.where(np.isfinite(distance), distance, farthest[node_group] + 1.0)


def graphgpo(batch: PreparedBatch, config) -> Components:
    options = config.options
    pairs = anchor_pairs(batch)
    target, node_group = next_nodes(batch, pairs)
    distance = distances_to_success(pairs.row_pair, target, node_group, batch.n_groups, len(pairs.group))
    exponent = distance[target]
    if options.normalize_distance:
        exponent = exponent - distance[pairs.row_pair] + 1.0
    returns = options.goal_value * options.graph_gamma ** exponent - config.invalid_penalty * batch.invalid
    step = cluster_normalize(returns, pairs.row_pair, len(pairs.group), options.normalization, config.epsilon).advantage
    episode = episode_component(batch, config, normalization=options.normalization).advantage
    return Components(episode=episode, step=step, advantages=options.episode_weight * episode + options.step_weight * step,
                      diagnostics={"distance_to_success_mean": float(distance[target].mean())})


register_estimator(
    "graphgpo", options=GraphgpoOptions, compute=graphgpo,
    description="GraphGPO: step returns from the shortest-path distance to success over the group's state graph.",
)

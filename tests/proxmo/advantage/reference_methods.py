"""Row-by-row references for the methods added since ProxMO, written from docs/algorithm.md (not from the library).

Dr. GRPO, RLOO, REINFORCE++-baseline, HGPO, G2PO and GraphGPO, both presets. Plain loops over dict rows; the
vectorised estimators are held to these on random batches, and to the authors' released code on
data/released_code.json.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from typing import Dict, List

import numpy as np

from .reference import returns_of, stats


def traj_returns(rows: List[dict]) -> Dict:
    total: Dict = defaultdict(float)
    for r in rows:
        total[r["traj"]] += r["reward"]
    return total


def by_group(rows: List[dict]) -> Dict:
    groups: Dict = defaultdict(list)
    for i, r in enumerate(rows):
        groups[r["group"]].append(i)
    return groups


def traj_steps(rows: List[dict]) -> Dict:
    """traj -> its row indices in step order."""
    steps: Dict = defaultdict(list)
    for i, r in enumerate(rows):
        steps[r["traj"]].append(i)
    return {traj: sorted(members, key=lambda i: rows[i]["t"]) for traj, members in steps.items()}


def episode_term(rows: List[dict], config, normalization: str) -> List[float]:
    """GRPO's episode advantage without modulation: rows and the penalty inside (official) or trajectories and the
    penalty after (paper); a group of one item has mean 0 and std 1."""
    R = traj_returns(rows)
    out = [0.0] * len(rows)
    for members in by_group(rows).values():
        if config.preset == "official":
            scores = [R[rows[i]["traj"]] - config.invalid_penalty * rows[i]["invalid"] for i in members]
            mean, sd = stats(scores)
            for i, s in zip(members, scores):
                out[i] = (s - mean) / (1.0 if normalization == "mean_norm" else sd + config.epsilon)
        else:
            trajs = sorted({rows[i]["traj"] for i in members}, key=str)
            mean, sd = stats([R[t] for t in trajs])
            for i in members:
                centred = (R[rows[i]["traj"]] - mean) / (1.0 if normalization == "mean_norm" else sd + config.epsilon)
                out[i] = centred - config.invalid_penalty * rows[i]["invalid"]
    return out


def drgrpo(rows, config) -> List[float]:
    return episode_term(rows, config, "mean_norm")


def rloo(rows, config) -> List[float]:
    R = traj_returns(rows)
    out = [0.0] * len(rows)
    for members in by_group(rows).values():
        if config.preset == "official":
            scores = {i: R[rows[i]["traj"]] - config.invalid_penalty * rows[i]["invalid"] for i in members}
            for i in members:
                others = [scores[j] for j in members if j != i]
                out[i] = scores[i] - sum(others) / len(others) if others else scores[i]
        else:
            trajs = {rows[i]["traj"] for i in members}
            for i in members:
                others = [R[t] for t in trajs if t != rows[i]["traj"]]
                loo = R[rows[i]["traj"]] - sum(others) / len(others) if others else 0.0
                out[i] = loo - config.invalid_penalty * rows[i]["invalid"]
    return out


def reinforce_pp_baseline(rows, config) -> List[float]:
    R = traj_returns(rows)
    centred = [0.0] * len(rows)
    for members in by_group(rows).values():
        if config.preset == "official":
            scores = [R[rows[i]["traj"]] - config.invalid_penalty * rows[i]["invalid"] for i in members]
            mean = sum(scores) / len(scores) if len(scores) > 1 else 0.0
            for i, s in zip(members, scores):
                centred[i] = s - mean
        else:
            trajs = {rows[i]["traj"] for i in members}
            mean = sum(R[t] for t in trajs) / len(trajs) if len(trajs) > 1 else 0.0
            for i in members:
                centred[i] = R[rows[i]["traj"]] - mean
    weights = [float(r.get("tokens", 1)) for r in rows]
    total = sum(weights)
    if total <= 1.0:
        whitened = [0.0] * len(rows)
    else:
        mean = sum(w * a for w, a in zip(weights, centred)) / (total + 1e-8)
        var = sum(w * (a - mean) ** 2 for w, a in zip(weights, centred)) / (total + 1e-8) * total / (total - 1)
        whitened = [(a - mean) / math.sqrt(var + 1e-8) for a in centred]
    if config.preset == "paper":
        whitened = [a - config.invalid_penalty * r["invalid"] for a, r in zip(whitened, rows)]
    return whitened


def step_returns(rows, config) -> List[float]:
    return [g - config.invalid_penalty * r["invalid"] for g, r in zip(returns_of(rows, config.gamma), rows)]


def hgpo(rows, config) -> List[float]:
    o = config.options
    G = step_returns(rows, config)
    steps = traj_steps(rows)
    clusters: Dict = defaultdict(list)
    for traj, members in steps.items():
        anchors = [rows[i]["anchor"] for i in members]
        for t, i in enumerate(members):
            for k in range(1, min(o.history_length + 1, t + 1) + 1):
                clusters[(rows[i]["group"], k, tuple(anchors[t - k + 1 : t + 1]))].append(i)
    items: Dict = defaultdict(list)
    for (_, k, _), members in clusters.items():
        values = [G[i] for i in members]
        if len(members) < 2 or max(values) == min(values):
            continue  # no baseline, or nothing to tell apart: the item is 0 and dropped
        mean = sum(values) / len(values)
        population_sd = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        for i, v in zip(members, values):
            items[i].append((k, (v - mean) / (population_sd + config.epsilon) if o.normalization == "mean_std_norm"
                             else v - mean))
    base = episode_term(rows, config, o.normalization) if o.base_group else None
    out = []
    for i in range(len(rows)):
        row_items = ([(0, base[i])] if base is not None else []) + items[i]
        kept = [(k, a) for k, a in row_items if a != 0.0]
        weights = [(k + 1.0) ** o.alpha for k, _ in kept]
        out.append(sum(w * a for w, (_, a) in zip(weights, kept)) / (sum(weights) + config.epsilon) if kept else 0.0)
    return out


def normalise_within(values: List[float], members: List[int], normalization: str, epsilon: float) -> Dict[int, float]:
    """GiGPO-style: centred (and divided by unbiased std + epsilon) within ``members``; one member gives 0."""
    if len(members) < 2:
        return {members[0]: 0.0}
    vals = [values[i] for i in members]
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return {i: (values[i] - mean) / (sd + epsilon) if normalization == "mean_std_norm" else values[i] - mean
            for i in members}


def g2po(rows, config) -> List[float]:
    o = config.options
    R = traj_returns(rows)
    steps = traj_steps(rows)
    length = {traj: len(members) for traj, members in steps.items()}
    node_rows: Dict = defaultdict(list)
    for i, r in enumerate(rows):
        node_rows[(r["group"], r["anchor"])].append(i)
    value = {node: sum(o.value_discount ** (length[rows[i]["traj"]] - rows[i]["t"]) * R[rows[i]["traj"]]
                       for i in members) / len(members) for node, members in node_rows.items()}
    next_value = [0.0] * len(rows)
    for traj, members in steps.items():
        for t, i in enumerate(members):
            if t + 1 < len(members):
                j = members[t + 1]
                next_value[i] = value[(rows[j]["group"], rows[j]["anchor"])]
            else:
                next_value[i] = o.terminal_value if rows[i]["won"] else 0.0
    x = [v - config.invalid_penalty * r["invalid"] for v, r in zip(next_value, rows)]
    local = {}
    for members in node_rows.values():
        local.update(normalise_within(x, members, o.normalization, config.epsilon))
    gain = [next_value[i] - value[(r["group"], r["anchor"])] for i, r in enumerate(rows)]
    td = {}
    for members in by_group(rows).values():
        td.update(normalise_within(gain, members, o.normalization, config.epsilon))
    episode = episode_term(rows, config, o.normalization)
    return [episode[i] + o.step_weight * (local[i] + td[i]) for i in range(len(rows))]


SUCCESS = ("success",)


def graphgpo(rows, config) -> List[float]:
    o = config.options
    steps = traj_steps(rows)
    target = [None] * len(rows)
    for traj, members in steps.items():
        for t, i in enumerate(members):
            last = t + 1 == len(members)
            if last and rows[i]["won"]:
                target[i] = SUCCESS
            elif "next_anchor" in rows[i]:
                target[i] = ("obs", rows[i]["next_anchor"])
            elif not last:
                target[i] = ("obs", rows[members[t + 1]]["anchor"])
            else:
                target[i] = ("end", traj)
    returns = [0.0] * len(rows)
    for members in by_group(rows).values():
        into = defaultdict(list)  # reversed edges
        nodes = {SUCCESS}
        for i in members:
            source = ("obs", rows[i]["anchor"])
            into[target[i]].append(source)
            nodes.update((source, target[i]))
        distance = {SUCCESS: 0}
        queue = deque([SUCCESS])
        while queue:
            node = queue.popleft()
            for previous in into[node]:
                if previous not in distance:
                    distance[previous] = distance[node] + 1
                    queue.append(previous)
        farthest = max(distance.values())
        d = {node: distance.get(node, farthest + 1) for node in nodes}
        for i in members:
            exponent = d[target[i]]
            if o.normalize_distance:
                exponent = exponent - d[("obs", rows[i]["anchor"])] + 1
            returns[i] = o.goal_value * o.graph_gamma ** exponent - config.invalid_penalty * rows[i]["invalid"]
    step = {}
    clusters: Dict = defaultdict(list)
    for i, r in enumerate(rows):
        clusters[(r["group"], r["anchor"])].append(i)
    for members in clusters.values():
        step.update(normalise_within(returns, members, o.normalization, config.epsilon))
    episode = episode_term(rows, config, o.normalization)
    return [o.episode_weight * episode[i] + o.step_weight * step[i] for i in range(len(rows))]


METHODS = {"drgrpo": drgrpo, "rloo": rloo, "reinforce_pp_baseline": reinforce_pp_baseline, "hgpo": hgpo,
           "g2po": g2po, "graphgpo": graphgpo}


def reference_method(rows: List[dict], config) -> np.ndarray:
    """The advantages of ``config``'s estimator (one of METHODS) for ``rows``, in row order."""
    return np.array(METHODS[config.estimator](rows, config))

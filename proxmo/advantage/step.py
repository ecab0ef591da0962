"""Step level: baselines for each step's discounted return from exact, similar or softly weighted anchors."""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Callable, Dict, List

import numpy as np
import scipy.sparse as sp

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.config import AdvantageConfig
from proxmo.advantage.registry import SIMILARITY_BACKENDS
from proxmo.advantage.segments import discounted_returns, segment_count, segment_mean_std, segment_sum


@dataclass(frozen=True)
class StepComponent:
    advantage: np.ndarray  # (N,) A^S per row, canonical order
    group_size: np.ndarray  # (N,) size of the row's step group (effective size 1/sum(w^2) for soft weights)
    singleton_fraction: float  # share of step groups with one member (soft: rows with effective size < 1.5)


@dataclass(frozen=True)
class AnchorPairs:
    """The distinct (episode group, anchor) pairs of a batch, sorted by group."""

    row_pair: np.ndarray  # (N,) pair of each row
    group: np.ndarray  # (P,) episode group of each pair
    anchor: np.ndarray  # (P,) anchor code of each pair
    count: np.ndarray  # (P,) rows per pair (float)
    first_row: np.ndarray  # (P,) canonical position of the pair's first row
    group_start: np.ndarray  # (G+1,) pairs of group g are group_start[g]:group_start[g+1]


def step_returns(batch: PreparedBatch, config: AdvantageConfig) -> np.ndarray:
    """G~_i: the discounted return of the step minus the invalid-action penalty (after discounting)."""
    returns = discounted_returns(batch.reward, batch.traj, batch.t, batch.n_traj, config.gamma)
    return returns - config.invalid_penalty * batch.invalid


def anchor_pairs(batch: PreparedBatch) -> AnchorPairs:
    key = batch.group * len(batch.anchors) + batch.anchor_code
    unique_keys, first_row, row_pair = np.unique(key, return_index=True, return_inverse=True)
    pair_group = unique_keys // len(batch.anchors)
    return AnchorPairs(
        row_pair=row_pair,
        group=pair_group,
        anchor=unique_keys % len(batch.anchors),
        count=segment_count(row_pair, len(unique_keys)),
        first_row=first_row,
        group_start=np.searchsorted(pair_group, np.arange(batch.n_groups + 1)),
    )


def cluster_normalize(values: np.ndarray, cluster: np.ndarray, n_clusters: int, normalization: str,
                      epsilon: float) -> StepComponent:
    """GiGPO's step advantage: the return minus its cluster mean (divided by std + eps in mean_std_norm).

    A cluster of one row has no baseline and gets 0.
    """
    mean, std, count = segment_mean_std(values, cluster, n_clusters)
    centred = values - mean[cluster]
    if normalization == "mean_std_norm":
        centred = centred / (np.nan_to_num(std, nan=1.0)[cluster] + epsilon)
    size = count[cluster]
    centred[size < 2] = 0.0
    return StepComponent(advantage=centred, group_size=size, singleton_fraction=float(np.mean(count == 1)))


def exact_groups(batch: PreparedBatch, returns: np.ndarray, config: AdvantageConfig) -> StepComponent:
    """GiGPO: rows of one episode group with identical anchor text form a step group."""
    pairs = anchor_pairs(batch)
    return cluster_normalize(returns, pairs.row_pair, len(pairs.group), config.normalization, config.epsilon)


def greedy_clusters(texts: List[str], threshold: float) -> np.ndarray:
    """GiGPO's similarity clustering: each text joins the first cluster whose first member has a
    difflib ratio >= threshold with it (``SequenceMatcher(None, text, first_member)``), else opens one.

    The cheap upper bounds ``real_quick_ratio`` and ``quick_ratio`` skip most comparisons without
    changing the outcome.
    """
    matchers: List[SequenceMatcher] = []  # one per cluster, its first member fixed as the second sequence
    labels = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        for label, matcher in enumerate(matchers):
            matcher.set_seq1(text)
            if matcher.real_quick_ratio() >= threshold and matcher.quick_ratio() >= threshold and matcher.ratio() >= threshold:
                labels[i] = label
                break
        else:
            labels[i] = len(matchers)
            matchers.append(SequenceMatcher(None, text, text))
    return labels


def similar_groups(batch: PreparedBatch, returns: np.ndarray, config: AdvantageConfig) -> StepComponent:
    """GiGPO's similarity variant: greedy difflib clustering of each episode group's anchors.

    Rows are visited in canonical order (trajectory id, then step); identical texts always land in
    one cluster, so clustering the distinct texts in order of first appearance is exact.
    """
    pairs = anchor_pairs(batch)
    pair_cluster = np.empty(len(pairs.group), dtype=np.int64)
    offset = 0
    for g in range(batch.n_groups):
        lo, hi = pairs.group_start[g], pairs.group_start[g + 1]
        visit = lo + np.argsort(pairs.first_row[lo:hi])  # distinct anchors in order of first appearance
        labels = greedy_clusters([batch.anchors[a] for a in pairs.anchor[visit]], config.similarity_threshold)
        pair_cluster[visit] = labels + offset
        offset += int(labels.max()) + 1
    return cluster_normalize(returns, pair_cluster[pairs.row_pair], offset, config.normalization, config.epsilon)


def _group_vectors(vectors, pairs: AnchorPairs, n_groups: int) -> Callable[[int], np.ndarray]:
    """Dense vectors V_g (m_g, k_g) of each group's distinct anchors, from vectors of all anchors.

    Sparse vectors are gathered once for all pairs; each group's vectors keep only the columns that
    group uses, so its similarity block V_g V_g^T costs O(m_g^2 x its own vocabulary), never O(N^2).
    """
    if not sp.issparse(vectors):
        dense = np.asarray(vectors, dtype=np.float64)
        return lambda g: dense[pairs.anchor[pairs.group_start[g] : pairs.group_start[g + 1]]]

    csr = sp.csr_matrix(vectors)
    n_features = max(csr.shape[1], 1)
    length = np.diff(csr.indptr)[pairs.anchor]
    entry_start = np.r_[0, np.cumsum(length)]
    source = np.repeat(csr.indptr[pairs.anchor] - entry_start[:-1], length) + np.arange(entry_start[-1])
    column, value = csr.indices[source], csr.data[source]
    entry_pair = np.repeat(np.arange(len(pairs.anchor)), length)
    # Number the columns each group uses 0..k_g-1: mark (group, column) cells, count them in order.
    cell = pairs.group[entry_pair] * n_features + column
    used = np.zeros(n_groups * n_features + 1, dtype=np.int64)
    used[cell + 1] = 1
    rank = np.cumsum(used)
    local_column = rank[cell + 1] - 1 - rank[pairs.group[entry_pair] * n_features]
    group_columns = rank[(np.arange(n_groups) + 1) * n_features] - rank[np.arange(n_groups) * n_features]
    entry_bound = entry_start[pairs.group_start]

    def sparse_vectors(g: int) -> np.ndarray:
        lo, hi = entry_bound[g], entry_bound[g + 1]
        v = np.zeros((pairs.group_start[g + 1] - pairs.group_start[g], group_columns[g]))
        v[entry_pair[lo:hi] - pairs.group_start[g], local_column[lo:hi]] = value[lo:hi]
        return v

    return sparse_vectors


def _vectorize(batch: PreparedBatch, pairs: AnchorPairs, config: AdvantageConfig) -> Callable[[int], np.ndarray]:
    """A function giving the dense vectors (m_g, k_g) of group g's distinct anchors."""
    backend = SIMILARITY_BACKENDS[config.similarity_backend]
    if config.fit_scope == "batch":
        anchor_count = segment_sum(pairs.count, pairs.anchor, len(batch.anchors))
        vectors = backend.vectorize(batch.anchors, anchor_count, batch.n_rows, config)
        return _group_vectors(vectors, pairs, batch.n_groups)

    def vectors_per_group(g: int) -> np.ndarray:
        lo, hi = pairs.group_start[g], pairs.group_start[g + 1]
        texts = [batch.anchors[a] for a in pairs.anchor[lo:hi]]
        return np.asarray(_dense(backend.vectorize(texts, pairs.count[lo:hi], int(pairs.count[lo:hi].sum()), config)),
                          dtype=np.float64)

    return vectors_per_group


BLOCK_CELLS = 1 << 22
"""Similarity cells (float64) held at once per row block of a group: 32 MiB, whatever the group's size."""
WHOLE_BLOCK_FACTOR = 4
"""Arrays of a group's full m x m size the adaptive temperature holds at once (similarity, logits, weights, squares)."""


def _check_whole_block(m: int, group: int) -> None:
    """The adaptive temperature needs a group's whole similarity block: say what it costs before allocating it."""
    need = WHOLE_BLOCK_FACTOR * 8 * m * m
    available = _available_memory()
    if available is not None and need > available:
        raise MemoryError(f"episode group {group} has {m:,} distinct anchors: the adaptive temperature "
                          f"(target_group_size) needs its whole {m:,} x {m:,} similarity, about {need / 2**30:.1f} "
                          f"GiB, and {available / 2**30:.1f} GiB is available; set a fixed temperature (it computes "
                          "such groups in blocks) or use smaller groups")


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), None where it cannot be told."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def _soft_weights(similarity: np.ndarray, temperature: float, exclude_self: np.ndarray | None = None,
                  first_column: int = 0) -> np.ndarray:
    """Softmax numerators exp((S - shift) / tau) between some of a group's distinct anchors (rows) and all of
    them (columns): (b, m), row i being anchor ``first_column + i``.

    The shift is each row's largest logit. ``exclude_self`` (b,) marks distinct anchors that stand for a
    single row under leave-one-out: their own weight is dropped (set to 0) and left out of the maximum.
    """
    logits = similarity / temperature
    if exclude_self is not None and exclude_self.any():
        own = (np.arange(len(logits)), first_column + np.arange(len(logits)))
        logits[own] = np.where(exclude_self, -np.inf, logits[own])
    shift = logits.max(axis=1)
    shift[~np.isfinite(shift)] = 0.0  # a group with a single row: nothing to weigh
    return np.exp(logits - shift[:, None])


def _mean_effective_size(weights: np.ndarray, count: np.ndarray) -> float:
    """Mean over the group's rows of 1 / sum_j w_ij^2 (weights normalised over all rows of the group)."""
    total = weights @ count
    size = total * total / ((weights * weights) @ count)
    return float(size @ count / count.sum())


def _adaptive_temperature(similarity: np.ndarray, count: np.ndarray, target: float) -> float:
    """tau for which the mean effective step-group size over the group's rows is ``target``.

    The effective size grows with tau (from the number of rows with identical vectors towards the
    group size), so a bisection on log(tau) finds it; a target out of reach gives the nearest end.
    """
    lo, hi = np.log(1e-4), np.log(1e4)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        if _mean_effective_size(_soft_weights(similarity, np.exp(mid)), count) < target:
            lo = mid
        else:
            hi = mid
    return float(np.exp(0.5 * (lo + hi)))


def soft_groups(batch: PreparedBatch, returns: np.ndarray, config: AdvantageConfig) -> StepComponent:
    """ProxMO: the baseline of a row is the softmax(S/tau)-weighted mean of its episode group's returns.

    Works on each group's distinct anchors: with c_k rows and return sum R_k per distinct anchor k,
    b(a) = sum_k exp(S_ak/tau) R_k / sum_k c_k exp(S_ak/tau), which equals the row-by-row softmax.
    The weight of the row's own anchor is kept apart from the others so that leave-one-out removes
    the row exactly (no cancellation).
    """
    pairs = anchor_pairs(batch)
    pair_return = segment_sum(returns, pairs.row_pair, len(pairs.group))
    group_vectors = _vectorize(batch, pairs, config)
    n_pairs = len(pairs.group)
    other_num, other_den, other_sq, own = (np.empty(n_pairs) for _ in range(4))
    exclude_all = (pairs.count == 1) if config.leave_one_out else None
    for g in range(batch.n_groups):
        lo, hi = pairs.group_start[g], pairs.group_start[g + 1]
        vectors, count = group_vectors(g), pairs.count[lo:hi]
        temperature = config.temperature
        if config.target_group_size is not None:
            _check_whole_block(hi - lo, g)
            temperature = _adaptive_temperature(vectors @ vectors.T, count, config.target_group_size)
        # Rows of the group in blocks: each row's softmax needs only its own similarities, so a group of any
        # size costs BLOCK_CELLS of memory at a time, never m x m.
        step = max(1, BLOCK_CELLS // max(hi - lo, 1))
        for start in range(0, hi - lo, step):
            stop = min(start + step, hi - lo)
            rows = slice(lo + start, lo + stop)
            exclude = exclude_all[rows] if exclude_all is not None else None
            weights = _soft_weights(vectors[start:stop] @ vectors.T, temperature, exclude, first_column=start)
            diagonal = (np.arange(stop - start), np.arange(start, stop))
            own[rows] = weights[diagonal]
            weights[diagonal] = 0.0
            other_num[rows] = weights @ pair_return[lo:hi]
            other_den[rows] = weights @ count
            other_sq[rows] = (weights * weights) @ count

    p = pairs.row_pair
    w = own[p]
    same_anchor_rows = pairs.count[p] - (1.0 if config.leave_one_out else 0.0)
    same_anchor_return = pair_return[p] - (returns if config.leave_one_out else 0.0)
    numerator = other_num[p] + w * same_anchor_return
    denominator = other_den[p] + w * same_anchor_rows
    square_sum = other_sq[p] + w * w * same_anchor_rows
    alone = denominator <= 0.0  # leave-one-out in a group of one row: no baseline
    safe = np.where(alone, 1.0, denominator)
    advantage = np.where(alone, 0.0, returns - numerator / safe)
    size = np.where(alone, 1.0, safe * safe / np.where(alone, 1.0, square_sum))
    return StepComponent(advantage=advantage, group_size=size, singleton_fraction=float(np.mean(size < 1.5)))


def no_step_part(batch: PreparedBatch, returns: np.ndarray, config: AdvantageConfig) -> StepComponent:
    return StepComponent(advantage=np.zeros(batch.n_rows), group_size=np.ones(batch.n_rows), singleton_fraction=float("nan"))


STEP_GROUPINGS: Dict[str, Callable[[PreparedBatch, np.ndarray, AdvantageConfig], StepComponent]] = {
    "none": no_step_part,
    "exact": exact_groups,
    "similar": similar_groups,
    "soft": soft_groups,
}


def step_component(batch: PreparedBatch, config: AdvantageConfig, grouping: str) -> StepComponent:
    """A^S for every row under ``grouping`` (docs/algorithm.md, "Step level")."""
    return STEP_GROUPINGS[grouping](batch, step_returns(batch, config), config)

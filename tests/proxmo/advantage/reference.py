"""A plain, slow, row-by-row implementation of docs/algorithm.md, written independently of the library.

Every loop here runs over rows on purpose: it is the yardstick the fast, vectorised estimators
are held to. TF-IDF comes straight from scikit-learn's TfidfVectorizer fitted on every row.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from difflib import SequenceMatcher
from typing import Callable, Dict, List, Optional

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from proxmo.advantage import AdvantageConfig

EPS = 1e-6


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def stats(values: List[float]) -> tuple[float, float]:
    """Group mean and unbiased std; a group of one gets (0, 1)."""
    if len(values) == 1:
        return 0.0, 1.0
    return statistics.fmean(values), statistics.stdev(values)


def token_pattern(config: AdvantageConfig) -> str:
    return r"(?u)\b\w+\b" if config.keep_single_char_tokens else r"(?u)\b\w\w+\b"


def tfidf_vectors(texts: List[str], config: AdvantageConfig) -> np.ndarray:
    import re

    if not any(re.findall(token_pattern(config), t.lower()) for t in texts):
        return np.zeros((len(texts), 1))  # scikit-learn refuses an empty vocabulary: all vectors are zero
    vectorizer = TfidfVectorizer(token_pattern=token_pattern(config), max_features=config.max_features)
    return vectorizer.fit_transform(texts).toarray()


def bm25_vectors(texts: List[str], config: AdvantageConfig, k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    import re

    docs = [re.findall(token_pattern(config), t.lower()) for t in texts]
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    total = defaultdict(int)
    for d in docs:
        for tok in d:
            total[tok] += 1
    vocab = sorted(total)
    if config.max_features is not None and len(vocab) > config.max_features:
        totals = np.array([float(total[v]) for v in vocab])
        vocab = [vocab[i] for i in sorted((-totals).argsort()[: config.max_features])]
    column = {v: i for i, v in enumerate(vocab)}
    df = defaultdict(int)
    for d in docs:
        for tok in set(d):
            df[tok] += 1
    out = np.zeros((n, max(len(vocab), 1)))
    for i, d in enumerate(docs):
        for tok in set(d):
            if tok not in column:
                continue
            tf = d.count(tok)
            idf = math.log(1 + (n - df[tok] + 0.5) / (df[tok] + 0.5))
            out[i, column[tok]] = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        norm = math.sqrt(sum(x * x for x in out[i]))
        if norm > 0:
            out[i] /= norm
    return out


VECTORIZERS: Dict[str, Callable[[List[str], AdvantageConfig], np.ndarray]] = {
    "tfidf": tfidf_vectors,
    "bm25": bm25_vectors,
}


def returns_of(rows: List[dict], gamma: float) -> List[float]:
    by_traj = defaultdict(list)
    for i, r in enumerate(rows):
        by_traj[r["traj"]].append(i)
    out = [0.0] * len(rows)
    for idxs in by_traj.values():
        running = 0.0
        for i in sorted(idxs, key=lambda i: rows[i]["t"], reverse=True):
            running = rows[i]["reward"] + gamma * running
            out[i] = running
    return out


def modulation(success: bool, p: float, config: AdvantageConfig) -> float:
    beta = config.effective_beta
    if success:
        return 1 + beta * (sigmoid((1 - p) ** config.alpha) - 0.5)
    return 1 + beta * (sigmoid(-(p**config.alpha)) - 0.5)


def episode_advantages(rows: List[dict], config: AdvantageConfig) -> List[float]:
    lam = config.invalid_penalty
    traj_return = defaultdict(float)
    traj_won = {}
    for r in rows:
        traj_return[r["traj"]] += r["reward"]
        traj_won[r["traj"]] = bool(r["won"])
    out = []
    for r in rows:
        members = [q for q in rows if q["group"] == r["group"]]
        if config.preset == "paper":
            trajs = sorted({q["traj"] for q in members}, key=str)
            mu, sd = stats([traj_return[x] for x in trajs])
            p = statistics.fmean(float(traj_won[x]) for x in trajs)
            value = traj_return[r["traj"]]
            success = bool(r["won"])
        else:
            scores = [traj_return[q["traj"]] - lam * q["invalid"] for q in members]
            mu, sd = stats(scores)
            p = min(max(mu, 0.0), 1.0)
            value = traj_return[r["traj"]] - lam * r["invalid"]
            success = value > 0.5
        scale = 1.0 if config.normalization == "mean_norm" else sd + EPS
        centred = (value - mu) / scale
        w = modulation(success, p, config) if getattr(config, "modulation", False) else 1.0
        a = w * centred
        if config.preset == "paper":
            a -= lam * r["invalid"]
        out.append(a)
    return out


def cluster_advantages(rows, step_return, cluster_of, config) -> List[float]:
    out = []
    for i, r in enumerate(rows):
        members = [j for j in range(len(rows)) if rows[j]["group"] == r["group"] and cluster_of[j] == cluster_of[i]]
        if len(members) == 1:
            out.append(0.0)
            continue
        values = [step_return[j] for j in members]
        mu, sd = statistics.fmean(values), statistics.stdev(values)
        scale = 1.0 if config.normalization == "mean_norm" else sd + EPS
        out.append((step_return[i] - mu) / scale)
    return out


def similar_clusters(rows: List[dict], threshold: float) -> List[int]:
    """Greedy: visit each group's rows by (trajectory id, step); join the first cluster whose first member is similar."""
    cluster_of = [0] * len(rows)
    next_id = 0
    for g in sorted({r["group"] for r in rows}, key=str):
        idxs = sorted((i for i, r in enumerate(rows) if r["group"] == g), key=lambda i: (rows[i]["traj"], rows[i]["t"]))
        clusters: List[tuple[str, int]] = []
        for i in idxs:
            obs = rows[i]["anchor"]
            for rep, cid in clusters:
                if SequenceMatcher(None, obs, rep).ratio() >= threshold:
                    cluster_of[i] = cid
                    break
            else:
                clusters.append((obs, next_id))
                cluster_of[i] = next_id
                next_id += 1
    return cluster_of


def soft_weights_row(sims: List[float], tau: float) -> List[float]:
    top = max(s / tau for s in sims)
    e = [math.exp(s / tau - top) for s in sims]
    z = sum(e)
    return [x / z for x in e]


def adaptive_tau(sim_block: np.ndarray, target: float) -> float:
    lo, hi = math.log(1e-4), math.log(1e4)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        sizes = []
        for row in sim_block:
            w = soft_weights_row(list(row), math.exp(mid))
            sizes.append(1.0 / sum(x * x for x in w))
        if statistics.fmean(sizes) < target:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


def soft_advantages(rows: List[dict], step_return: List[float], config: AdvantageConfig) -> List[float]:
    vectorize = VECTORIZERS[config.similarity_backend]
    n = len(rows)
    vectors: Dict[int, np.ndarray] = {}
    if config.fit_scope == "batch":
        v = vectorize([r["anchor"] for r in rows], config)
        vectors = {i: v[i] for i in range(n)}
    else:
        for g in {r["group"] for r in rows}:
            idxs = [i for i in range(n) if rows[i]["group"] == g]
            v = vectorize([rows[i]["anchor"] for i in idxs], config)
            vectors.update({i: v[k] for k, i in enumerate(idxs)})
    taus = {}
    for g in {r["group"] for r in rows}:
        idxs = [i for i in range(n) if rows[i]["group"] == g]
        if config.target_group_size is None:
            taus[g] = config.temperature
        else:
            block = np.array([[float(vectors[i] @ vectors[j]) for j in idxs] for i in idxs])
            taus[g] = adaptive_tau(block, config.target_group_size)
    out = []
    for i, r in enumerate(rows):
        members = [j for j in range(n) if rows[j]["group"] == r["group"] and not (config.leave_one_out and j == i)]
        if not members:
            out.append(0.0)
            continue
        sims = [float(vectors[i] @ vectors[j]) for j in members]
        weights = soft_weights_row(sims, taus[r["group"]])
        baseline = sum(w * step_return[j] for w, j in zip(weights, members))
        out.append(step_return[i] - baseline)
    return out


def reference_advantages(rows: List[dict], config: Optional[AdvantageConfig] = None) -> Dict[str, np.ndarray]:
    """Episode part, step part and total for ``rows`` (dicts with the StepBatch fields), in row order."""
    config = config or AdvantageConfig()
    episode = episode_advantages(rows, config)
    returns = returns_of(rows, config.gamma)
    step_return = [g - config.invalid_penalty * r["invalid"] for g, r in zip(returns, rows)]
    grouping = getattr(config, "step_grouping", "none")
    if grouping == "none":
        step = [0.0] * len(rows)
    elif grouping == "exact":
        step = cluster_advantages(rows, step_return, [r["anchor"] for r in rows], config)
    elif grouping == "similar":
        step = cluster_advantages(rows, step_return, similar_clusters(rows, config.similarity_threshold), config)
    else:
        step = soft_advantages(rows, step_return, config)
    episode_a, step_a = np.array(episode), np.array(step)
    return {"episode": episode_a, "step": step_a, "advantages": episode_a + getattr(config, "step_weight", 1.0) * step_a}

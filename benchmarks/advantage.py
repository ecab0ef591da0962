"""Advantage benchmark: milliseconds per call of each estimator, beside the released code's approach.

A second table times every registered estimator at its defaults on the largest batch (with the token counts and
next observations the trainer passes), as a multiple of ProxMO's time (target: at most 2x).

The released approach (written here from its description in docs/algorithm.md) loops over rows in Python for the group
statistics and builds a dense N x N TF-IDF similarity over the whole batch, masked to each episode
group. Both sides compute the same numbers (checked below); the table shows time and peak memory.

    OMP_NUM_THREADS=1 python benchmarks/advantage.py [--groups 16 64] [--repeats 20] [--markdown]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import tracemalloc
from collections import defaultdict

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402

from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages  # noqa: E402
from proxmo.advantage.synthetic import alfworld_like_batch  # noqa: E402

EPS = 1e-6


# ----------------------------------------------------------------------------------------------
# The released code's approach: per-row dictionaries and loops, dense N x N similarity.
# ----------------------------------------------------------------------------------------------
def _release_group_norm(values, index, remove_std):
    id2score = defaultdict(list)
    for i in range(len(values)):
        id2score[index[i]].append(values[i])
    id2mean, id2std = {}, {}
    for idx, scores in id2score.items():
        if len(scores) == 1:
            id2mean[idx], id2std[idx] = 0.0, 1.0
        else:
            id2mean[idx], id2std[idx] = float(np.mean(scores)), float(np.std(scores, ddof=1))
    out = np.empty(len(values))
    for i in range(len(values)):
        centred = values[i] - id2mean[index[i]]
        out[i] = centred if remove_std else centred / (id2std[index[i]] + EPS)
    return out, id2mean


def _release_returns(rows, gamma):
    by_traj = defaultdict(list)
    for i in range(len(rows["traj"])):
        by_traj[rows["traj"][i]].append(i)
    out = np.zeros(len(rows["traj"]))
    for idxs in by_traj.values():
        running = 0.0
        for i in sorted(idxs, key=lambda i: rows["t"][i], reverse=True):
            running = rows["reward"][i] + gamma * running
            out[i] = running
    return out - 0.1 * np.asarray(rows["invalid"], dtype=float)


def release_style(rows: dict, estimator: str) -> np.ndarray:
    """Official-preset advantages the way the release computes them (loops, dense similarity)."""
    n = len(rows["traj"])
    traj_total = defaultdict(float)
    for i in range(n):
        traj_total[rows["traj"][i]] += rows["reward"][i]
    score = np.array([traj_total[rows["traj"][i]] - 0.1 * rows["invalid"][i] for i in range(n)])
    group = rows["group"]
    episode, id2mean = _release_group_norm(score, group, remove_std=(estimator != "grpo"))
    if estimator == "grpo":
        return episode
    if estimator == "proxmo":
        beta = 0.05 / (1 / (1 + np.exp(-1.0)) - 0.5)
        for i in range(n):
            p = min(max(id2mean[group[i]], 0.0), 1.0)
            x = (1 - p) ** 4 if score[i] > 0.5 else -(p**4)
            episode[i] *= 1 + beta * (1 / (1 + np.exp(-x)) - 0.5)
    step_return = _release_returns(rows, 0.95)
    if estimator == "gigpo":
        keys = [(group[i], rows["anchor"][i]) for i in range(n)]
        uid = {k: j for j, k in enumerate(dict.fromkeys(keys))}
        id2score = defaultdict(list)
        for i in range(n):
            id2score[uid[keys[i]]].append(step_return[i])
        step = np.array([step_return[i] - float(np.mean(id2score[uid[keys[i]]])) for i in range(n)])
        return episode + step
    vectors = TfidfVectorizer(max_features=1024).fit_transform(rows["anchor"])
    similarity = (vectors @ vectors.T).toarray()  # dense N x N
    group_arr = np.asarray(group)
    same_group = group_arr[:, None] == group_arr[None, :]
    logits = np.where(same_group, similarity / 0.1, -np.inf)
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    weights /= weights.sum(axis=1, keepdims=True)
    return episode + (step_return - weights @ step_return)


# ----------------------------------------------------------------------------------------------
def _time(fn, repeats: int) -> tuple[float, float]:
    """Median wall time (ms) over ``repeats`` calls after one warm-up, and the peak traced memory (MiB)."""
    fn()
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return statistics.median(times), peak


def _rows(batch: StepBatch) -> dict:
    return {name: getattr(batch, name).tolist() for name in ("group", "traj", "t", "reward", "invalid", "won", "anchor")}


def run(groups: list[int], repeats: int, release_repeats: int) -> list[dict]:
    table = []
    scenarios = [(n, "alfworld-like", ("grpo", "gigpo", "proxmo")) for n in groups]
    scenarios.append((max(groups), "every 3rd row distinct", ("proxmo",)))
    scenarios.append((max(groups), "every anchor distinct", ("gigpo", "proxmo")))  # the worst case for text work
    for n_groups, kind, estimators in scenarios:
        batch = alfworld_like_batch(n_groups=n_groups, group_size=8, max_steps=50, seed=n_groups)
        if kind != "alfworld-like":  # make some anchors unique by numbering them
            every = 1 if kind == "every anchor distinct" else 3
            fields = {name: getattr(batch, name) for name in ("group", "traj", "t", "reward", "invalid", "won")}
            anchors = [f"{a} (step {i})" if i % every == 0 else a for i, a in enumerate(batch.anchor.tolist())]
            batch = StepBatch(**fields, anchor=anchors)
        rows = _rows(batch)
        block = sum(np.bincount(batch.prepared.group) ** 2)
        for estimator in estimators:
            config = AdvantageConfig(estimator=estimator, preset="official")
            ours_ms, ours_mib = _time(lambda: compute_advantages(batch, config), repeats)
            paper = AdvantageConfig(estimator=estimator)
            ours_paper_ms, _ = _time(lambda: compute_advantages(batch, paper), repeats)
            arrays = {name: getattr(batch, name) for name in rows}
            built_ms, _ = _time(lambda: compute_advantages(StepBatch(**arrays), paper), repeats)
            release_ms, release_mib = _time(lambda: release_style(rows, estimator), release_repeats)
            difference = np.abs(compute_advantages(batch, config).advantages - release_style(rows, estimator)).max()
            table.append(
                {
                    "estimator": estimator,
                    "batch": kind,
                    "groups": n_groups,
                    "rows": len(batch),
                    "distinct anchors": len(batch.prepared.anchors),
                    "ours ms (official)": ours_ms,
                    "ours ms (paper)": ours_paper_ms,
                    "ours ms (paper, incl. StepBatch)": built_ms,
                    "release-style ms": release_ms,
                    "speed-up": release_ms / ours_ms,
                    "ours peak MiB": ours_mib,
                    "release-style peak MiB": release_mib,
                    "max |difference|": float(difference),
                    "sum of squared group sizes": int(block),
                }
            )
    return table


def with_trainer_fields(batch: StepBatch, seed: int) -> StepBatch:
    """The batch plus what the trainer also passes: response token counts and the observation each step led to."""
    rng = np.random.default_rng(seed)
    fields = {name: getattr(batch, name) for name in ("group", "traj", "t", "reward", "invalid", "won", "anchor")}
    following = {(traj, t): anchor for traj, t, anchor in zip(batch.traj.tolist(), batch.t.tolist(), batch.anchor.tolist())}
    next_anchor = [following.get((traj, t + 1), f"final observation {traj}")
                   for traj, t in zip(batch.traj.tolist(), batch.t.tolist())]
    return StepBatch(**fields, tokens=rng.integers(8, 200, size=len(batch)), next_anchor=next_anchor)


def zoo(n_groups: int, repeats: int) -> list[dict]:
    """Every registered estimator at its defaults, both presets, on one batch; time relative to ProxMO's."""
    from proxmo.advantage import ESTIMATORS

    batch = with_trainer_fields(alfworld_like_batch(n_groups=n_groups, group_size=8, max_steps=50, seed=n_groups), 0)
    timings = {}
    for name in ESTIMATORS:
        for preset in ("official", "paper"):
            config = AdvantageConfig(estimator=name, preset=preset)
            timings[name, preset] = _time(lambda: compute_advantages(batch, config), repeats)
    table = []
    for name in ESTIMATORS:
        row = {"estimator": name, "rows": len(batch)}
        for preset in ("official", "paper"):
            ms, mib = timings[name, preset]
            row[f"ms ({preset})"] = ms
            row[f"x ProxMO ({preset})"] = ms / timings["proxmo", preset][0]
        row["peak MiB"] = timings[name, "official"][1]
        table.append(row)
    return table


def render(table: list[dict], markdown: bool) -> str:
    columns = list(table[0])
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) and abs(v) < 1e-2 else (f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v))  # noqa: E731
    cells = [[fmt(row[c]) for c in columns] for row in table]
    if markdown:
        lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(r) + " |" for r in cells]
        return "\n".join(lines)
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[16, 64], help="episode groups of 8 rollouts")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls of our estimators")
    parser.add_argument("--release-repeats", type=int, default=3, help="timed calls of the release-style code")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = parser.parse_args()
    table = run(args.groups, args.repeats, args.release_repeats)
    print(render(table, args.markdown))
    every = zoo(max(args.groups), args.repeats)
    print("\nEvery estimator at its defaults (token counts and next observations given, as the trainer does):\n")
    print(render(every, args.markdown))
    newer = [row for row in every if row["estimator"] not in ("grpo", "gigpo", "proxmo")]
    slowest = max(newer, key=lambda row: max(row["x ProxMO (official)"], row["x ProxMO (paper)"]))
    ratio = max(slowest["x ProxMO (official)"], slowest["x ProxMO (paper)"])
    print(f"slowest new estimator: {slowest['estimator']} at {ratio:.2f}x ProxMO's time "
          f"(target <= 2x: {'met' if ratio <= 2 else 'NOT met'})")
    worst = max(row["max |difference|"] for row in table)
    print(f"\nlargest difference between the two implementations: {worst:.2e}")
    largest = max((row for row in table if row["estimator"] == "proxmo" and row["batch"] == "alfworld-like"),
                  key=lambda row: row["rows"])
    slowest = max(largest["ours ms (official)"], largest["ours ms (paper, incl. StepBatch)"])
    print(f"ProxMO at {largest['rows']:,} rows: {slowest:.1f} ms per call, StepBatch included "
          f"(target <= 40 ms: {'met' if slowest <= 40 else 'NOT met'}); "
          f"{largest['speed-up']:.0f}x faster than the release-style code "
          f"(target >= 50x: {'met' if largest['speed-up'] >= 50 else 'NOT met'})")


if __name__ == "__main__":
    main()

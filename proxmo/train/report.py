"""The end-of-run report: success per category before and after training, beside a random agent, with standard errors."""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from proxmo.results.contract import EPISODES, GREEDY, RANDOM, SUCCESS, SUCCESS_SE, VAL, categories, quantity_key, success_key

Row = Tuple[str, List[str]]


def _cell(metrics: Mapping[str, float], prefix: str, category: Optional[str]) -> str:
    key = success_key(prefix, category)
    if key not in metrics:
        return "-"
    value = metrics[key]
    se = quantity_key(prefix, "success_se")
    if category is None and se in metrics:
        return f"{100 * value:.1f} ± {100 * metrics[se]:.1f}"
    return f"{100 * value:.1f}"


def success_table(evaluations: Sequence[Mapping[str, float]], baseline: Mapping[str, float],
                  order: Sequence[str] = ()) -> Tuple[List[str], List[Row]]:
    """(column names, rows) of validation success in percent: random agent, first and last evaluation
    (sampled, and greedy when evaluated); the overall column carries ± one standard error. Categories come in
    ``order`` (the environment's ``EnvSpec.categories``), any others after them, sorted."""
    if not evaluations:
        return [], []
    first, last = evaluations[0], evaluations[-1]
    found = categories(evaluations)
    columns = ["all", *[c for c in order if c in found], *[c for c in found if c not in order]]
    rows: List[Row] = []

    def add(label: str, metrics: Mapping[str, float], prefix: str) -> None:
        if success_key(prefix) in metrics:
            rows.append((label, [_cell(metrics, prefix, None if c == "all" else c) for c in columns]))

    add("random agent", baseline, RANDOM)
    step = lambda m: int(m.get("step", 0))  # noqa: E731
    if len(evaluations) > 1:
        add(f"sampled, iteration {step(first)}", first, VAL)
        add(f"greedy, iteration {step(first)}", first, GREEDY)
    add(f"sampled, iteration {step(last)}", last, VAL)
    add(f"greedy, iteration {step(last)}", last, GREEDY)
    return columns, rows


def learning_gain(evaluations: Sequence[Mapping[str, float]]) -> Optional[Dict[str, float]]:
    """Last minus first sampled success, in points, with the standard error of the difference."""
    if len(evaluations) < 2 or SUCCESS not in evaluations[0] or SUCCESS not in evaluations[-1]:
        return None
    first, last = evaluations[0], evaluations[-1]
    se = math.hypot(first.get(SUCCESS_SE, 0.0), last.get(SUCCESS_SE, 0.0))
    return {"gain": 100 * (last[SUCCESS] - first[SUCCESS]), "se": 100 * se, "episodes": last.get(EPISODES, float("nan"))}


__all__ = ["learning_gain", "success_table"]

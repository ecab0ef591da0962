"""The end-of-run report: success per category before and after training, beside a random agent, with standard errors."""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

Row = Tuple[str, List[str]]


def _cell(metrics: Mapping[str, float], prefix: str, category: Optional[str]) -> str:
    key = f"{prefix}/success" + (f"/{category}" if category else "")
    if key not in metrics:
        return "-"
    value = metrics[key]
    if category is None and f"{prefix}/success_se" in metrics:
        return f"{100 * value:.1f} ± {100 * metrics[f'{prefix}/success_se']:.1f}"
    return f"{100 * value:.1f}"


def categories(evaluations: Sequence[Mapping[str, float]]) -> List[str]:
    """Every category that appears in the evaluations, sorted."""
    found = set()
    for metrics in evaluations:
        for key in metrics:
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "val" and parts[1] == "success":
                found.add(parts[2])
    return sorted(found)


def success_table(evaluations: Sequence[Mapping[str, float]], baseline: Mapping[str, float]) -> Tuple[List[str], List[Row]]:
    """(column names, rows) of validation success in percent: random agent, first and last evaluation
    (sampled, and greedy when evaluated); the overall column carries ± one standard error."""
    if not evaluations:
        return [], []
    first, last = evaluations[0], evaluations[-1]
    columns = ["all", *categories(evaluations)]
    rows: List[Row] = []

    def add(label: str, metrics: Mapping[str, float], prefix: str) -> None:
        if f"{prefix}/success" in metrics:
            rows.append((label, [_cell(metrics, prefix, None if c == "all" else c) for c in columns]))

    add("random agent", baseline, "val/random")
    step = lambda m: int(m.get("step", 0))  # noqa: E731
    if len(evaluations) > 1:
        add(f"sampled, iteration {step(first)}", first, "val")
        add(f"greedy, iteration {step(first)}", first, "val/greedy")
    add(f"sampled, iteration {step(last)}", last, "val")
    add(f"greedy, iteration {step(last)}", last, "val/greedy")
    return columns, rows


def learning_gain(evaluations: Sequence[Mapping[str, float]]) -> Optional[Dict[str, float]]:
    """Last minus first sampled success, in points, with the standard error of the difference."""
    if len(evaluations) < 2 or "val/success" not in evaluations[0] or "val/success" not in evaluations[-1]:
        return None
    first, last = evaluations[0], evaluations[-1]
    se = math.hypot(first.get("val/success_se", 0.0), last.get("val/success_se", 0.0))
    return {"gain": 100 * (last["val/success"] - first["val/success"]), "se": 100 * se,
            "episodes": last.get("val/episodes", float("nan"))}


__all__ = ["categories", "learning_gain", "success_table"]

"""Learning curves as PNG files: one run's validation success (overall and per category), and variants over
seeds with confidence bands. Matplotlib is imported only here, when a figure is drawn (Agg, no display)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

from proxmo.results.contract import GREEDY, RANDOM, SUCCESS, SUCCESS_SE, VAL, category_of, success_key
from proxmo.results.stats import t_interval

Curve = List[Tuple[int, float]]


def evaluation_curves(records: Iterable[Mapping[str, Any]]) -> Dict[str, Curve]:
    """Every ``val/...`` metric of a run's metric records (``{"step", "metrics"}``, as in ``metrics.jsonl``)
    as a curve of (step, value), one point per step (the last value logged there), by step."""
    points: Dict[str, Dict[int, float]] = {}
    for record in records:
        for name, value in record["metrics"].items():
            if name.startswith(VAL + "/"):
                points.setdefault(name, {})[int(record["step"])] = float(value)
    return {name: sorted(by_step.items()) for name, by_step in points.items()}


def _pyplot():
    from proxmo.extras import require

    require("train", "learning-curve plots", ["matplotlib"])
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(curves: Mapping[str, Curve], path: str | Path, title: str = "") -> Path:
    """Validation success of one run: overall (sampled, ±1 SE band over episodes; greedy and the random agent
    if measured) on the left, each category on the right. Answers ``path``."""
    plt = _pyplot()
    figure, (overall, categories) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    sampled = curves.get(SUCCESS, [])
    if sampled:
        steps, values = zip(*sampled)
        overall.plot(steps, values, marker="o", label="sampled")
        se = dict(curves.get(SUCCESS_SE, []))
        if se:
            overall.fill_between(steps, [v - se.get(s, 0.0) for s, v in sampled],
                                 [v + se.get(s, 0.0) for s, v in sampled], alpha=0.2, label="±1 SE (episodes)")
    if curves.get(success_key(GREEDY)):
        overall.plot(*zip(*curves[success_key(GREEDY)]), marker="s", label="greedy")
    if curves.get(success_key(RANDOM)):
        overall.axhline(curves[success_key(RANDOM)][-1][1], color="grey", linestyle="--", label="random agent")
    overall.set(title="overall", xlabel="iteration", ylabel="validation success", ylim=(-0.02, 1.02))
    overall.legend(loc="best", fontsize=8)
    for name, curve in sorted(curves.items()):
        category = category_of(name)
        if category is not None and curve:
            categories.plot(*zip(*curve), marker=".", label=category)
    categories.set(title="per category (sampled)", xlabel="iteration")
    if categories.get_legend_handles_labels()[0]:
        categories.legend(loc="best", fontsize=7)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return Path(path)


def band(curves: Sequence[Curve], confidence: float = 0.95) -> List[Tuple[int, float, float, float]]:
    """(step, mean, low, high) over ``curves`` (one per seed) at the steps all of them have; the band is the
    Student-t interval over seeds (collapsed to the mean with one seed)."""
    by_step = [dict(curve) for curve in curves]
    common = sorted(set.intersection(*(set(c) for c in by_step))) if by_step else []
    rows = []
    for step in common:
        interval = t_interval([c[step] for c in by_step], confidence)
        low, high = (interval.low, interval.high) if interval.n > 1 else (interval.mean, interval.mean)
        rows.append((step, interval.mean, low, high))
    return rows


def plot_variants(curves: Mapping[str, Sequence[Curve]], path: str | Path, title: str = "",
                  ylabel: str = "validation success") -> Path:
    """Each variant's mean curve over its seeds with its 95% confidence band. Answers ``path``."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for variant, runs in curves.items():
        rows = band(runs)
        if not rows:
            continue
        steps, means, lows, highs = zip(*rows)
        line, = axes.plot(steps, means, marker=".", label=f"{variant} (n={len(runs)})")
        axes.fill_between(steps, lows, highs, color=line.get_color(), alpha=0.15)
    axes.set(xlabel="iteration", ylabel=ylabel, title=title or "mean over seeds, 95% CI band")
    axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return Path(path)


__all__ = ["Curve", "band", "evaluation_curves", "plot_run", "plot_variants"]

"""Means over seeds with Student-t confidence intervals, and paired differences between variants."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` independent values (seeds) and its two-sided confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    sd: float
    """Sample standard deviation (ddof 1); NaN for one value."""
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        """Whether the interval lies entirely on one side of 0 (a difference that is not noise at this level)."""
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 100.0, digits: int = 1) -> str:
        """``mean [low, high]`` scaled (percent by default); an interval from one value shows the mean only."""
        if math.isnan(self.low):
            return f"{scale * self.mean:.{digits}f}"
        return f"{scale * self.mean:.{digits}f} [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of ``values`` with the Student-t interval ``mean ± t(1 - a/2, n - 1) * sd / sqrt(n)``.

    With one value the interval is undefined (NaN bounds): one seed says nothing about the spread.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must be in (0, 1), got {confidence}")
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        raise ValueError("values: need at least one value")
    if not np.isfinite(data).all():
        raise ValueError(f"values: not all finite: {data.tolist()}")
    mean = float(data.mean())
    if data.size == 1:
        return Interval(mean, float("nan"), float("nan"), 1, float("nan"), confidence)
    sd = float(data.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, data.size - 1)) * sd / math.sqrt(data.size)
    return Interval(mean, mean - half, mean + half, int(data.size), sd, confidence)


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float], confidence: float = 0.95) -> Interval:
    """Interval of ``values[s] - baseline[s]`` over the seeds ``s`` both have.

    Pairing by seed removes what the seed shares (initial weights, task draws), so a difference is
    measured more precisely than by comparing two unpaired intervals.
    """
    common = sorted(set(values) & set(baseline))
    if not common:
        raise ValueError(f"paired_difference: no seed in common (values {sorted(values)}, baseline {sorted(baseline)})")
    return t_interval([values[s] - baseline[s] for s in common], confidence)


def paired_p_value(values: Mapping[int, float], baseline: Mapping[int, float]) -> float:
    """Two-sided paired t-test of ``values[s] - baseline[s]`` over common seeds; NaN with fewer than two seeds or
    no spread in the differences (nothing to test)."""
    common = sorted(set(values) & set(baseline))
    differences = np.array([values[s] - baseline[s] for s in common])
    if len(differences) < 2 or not np.any(differences != differences[0]):
        return float("nan")
    return float(stats.ttest_rel([values[s] for s in common], [baseline[s] for s in common]).pvalue)


def holm(p_values: Mapping[str, float]) -> dict:
    """Holm's step-down adjustment of a family of p-values (the family-wise error rate held at the level a test
    uses): sorted ascending, p_(i) * (m - i + 1), made non-decreasing, capped at 1. NaN values stay NaN and do
    not count towards m."""
    tested = sorted((p, name) for name, p in p_values.items() if not math.isnan(p))
    m = len(tested)
    adjusted = {name: float("nan") for name in p_values}
    running = 0.0
    for rank, (p, name) in enumerate(tested):
        running = max(running, min(1.0, p * (m - rank)))
        adjusted[name] = running
    return adjusted


__all__ = ["Interval", "holm", "paired_difference", "paired_p_value", "t_interval"]

"""The leaderboard of an ablation folder: every variant over its seeds, against a baseline, with a correction for
comparing many variants to it.

Per variant: final validation success and its mean over the run's evaluations (95% Student-t intervals over
seeds), the paired differences to the baseline over common seeds with paired t-test p-values adjusted by Holm's
method across the variants (one family per measure), the share of an iteration spent on advantages, and the
wall time of a run (its iterations and evaluations).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from proxmo.results.contract import (ITERATION_SECONDS, METRICS_FILE, SUMMARY_FILE, VAL, Summary, default_baseline,
                                     parse_variant_run, timing_key)
from proxmo.results.stats import Interval, holm, paired_difference, paired_p_value, t_interval
from proxmo.results.table import check_same_tasks, markdown_table

MEASURES = ("final", "auc")
"""final: the last evaluation; auc: the mean over the run's evaluations."""


@dataclass(frozen=True)
class Entry:
    variant: str
    seed: int
    final: float
    auc: float
    eval_key: str
    adv_fraction: Optional[float]
    wall_seconds: float


@dataclass(frozen=True)
class LeaderRow:
    variant: str
    seeds: List[int]
    value: Dict[str, Interval]  # measure -> interval over seeds
    difference: Dict[str, Optional[Interval]]  # measure -> paired difference to the baseline
    p_value: Dict[str, float]
    p_holm: Dict[str, float]
    adv_fraction: Optional[float]
    wall_minutes: Interval
    is_baseline: bool = False


def wall_seconds(records) -> float:
    """Seconds a run spent in its iterations and evaluations (sampled, greedy, random agent), from its records."""
    evaluations = timing_key(VAL).removesuffix("_s")
    total = 0.0
    for record in records:
        for key, value in record.get("metrics", {}).items():
            if key == ITERATION_SECONDS or (key.startswith(evaluations) and key.endswith("_s")):
                total += float(value)
    return total


def read_entries(folder: str | Path) -> List[Entry]:
    """One entry per finished run ``<variant>__s<seed>`` under ``folder`` (runs without an evaluation are left out)."""
    from proxmo.train.tracking import read_metrics

    entries = []
    for run in sorted(Path(folder).iterdir()):
        parsed = parse_variant_run(run.name)
        if parsed is None or not (run / SUMMARY_FILE).is_file():
            continue
        summary = Summary.read(run)
        if not summary.values():
            continue
        records = read_metrics(run) if (run / METRICS_FILE).is_file() else []
        entries.append(Entry(parsed[0], parsed[1], summary.objective("final"), summary.objective("auc"),
                             summary.eval_tasks_hash, summary.adv_fraction, wall_seconds(records)))
    return entries


def leaderboard(entries: List[Entry], baseline: Optional[str] = None, confidence: float = 0.95) -> List[LeaderRow]:
    """Rows sorted by mean final success (best first); the baseline (default: the contract's rule) is compared
    with no one and every other variant with it."""
    if not entries:
        raise ValueError("leaderboard: no finished run with an evaluation")
    check_same_tasks(entries)
    variants: Dict[str, Dict[int, Entry]] = {}
    for entry in entries:
        variants.setdefault(entry.variant, {})[entry.seed] = entry
    baseline = baseline or default_baseline(list(variants))
    if baseline not in variants:
        raise ValueError(f"baseline: no runs of {baseline!r}; variants are {list(variants)}")
    base = {m: {s: getattr(e, m) for s, e in variants[baseline].items()} for m in MEASURES}
    p_values = {m: {} for m in MEASURES}
    partial = []
    for name, seeds in variants.items():
        value = {m: t_interval([getattr(e, m) for e in seeds.values()], confidence) for m in MEASURES}
        difference: Dict[str, Optional[Interval]] = {m: None for m in MEASURES}
        if name != baseline and set(seeds) & set(variants[baseline]):  # no seed in common: nothing to pair
            for m in MEASURES:
                mine = {s: getattr(e, m) for s, e in seeds.items()}
                difference[m] = paired_difference(mine, base[m], confidence)
                p_values[m][name] = paired_p_value(mine, base[m])
        fractions = [e.adv_fraction for e in seeds.values() if e.adv_fraction is not None]
        partial.append((name, sorted(seeds), value, difference, sum(fractions) / len(fractions) if fractions else None,
                        t_interval([e.wall_seconds / 60 for e in seeds.values()], confidence)))
    adjusted = {m: holm(p_values[m]) for m in MEASURES}
    rows = [LeaderRow(name, seeds, value, difference,
                      {m: p_values[m].get(name, float("nan")) for m in MEASURES},
                      {m: adjusted[m].get(name, float("nan")) for m in MEASURES}, fraction, wall, name == baseline)
            for name, seeds, value, difference, fraction, wall in partial]
    return sorted(rows, key=lambda row: -row.value["final"].mean)


def _p(value: float) -> str:
    return "-" if value != value else (f"{value:.3f}" if value >= 0.001 else "<0.001")


def leaderboard_table(rows: List[LeaderRow], baseline: str) -> str:
    """The leaderboard as markdown: success in percent with 95% intervals, differences to the baseline with their
    raw and Holm-adjusted p-values ("-" where a variant shares no seed with the baseline)."""
    lines = []
    for row in rows:
        lines.append({
            "estimator": row.variant, "seeds": len(row.seeds) if len(row.seeds) > 1 else f"1 (seed {row.seeds[0]})",
            "final success": row.value["final"].format(),
            f"final - {baseline}": row.difference["final"].format() if row.difference["final"] else "-",
            "p final (Holm)": f"{_p(row.p_value['final'])} ({_p(row.p_holm['final'])})" if row.difference["final"] else "-",
            "mean over evaluations": row.value["auc"].format(),
            f"mean - {baseline}": row.difference["auc"].format() if row.difference["auc"] else "-",
            "p mean (Holm)": f"{_p(row.p_value['auc'])} ({_p(row.p_holm['auc'])})" if row.difference["auc"] else "-",
            "advantage share": f"{100 * row.adv_fraction:.2f}%" if row.adv_fraction is not None else "-",
            "minutes per run": row.wall_minutes.format(scale=1.0),
        })
    return markdown_table(lines).rstrip("\n")


__all__ = ["Entry", "LeaderRow", "leaderboard", "leaderboard_table", "read_entries"]

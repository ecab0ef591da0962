"""The comparison table of variants over seeds: final and best validation success, kept apart, with intervals."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

from proxmo.results.contract import SUCCESS, Summary, by_category
from proxmo.results.stats import Interval, paired_difference, t_interval


@dataclass(frozen=True)
class RunSummary:
    """What one finished run contributes to a comparison."""

    variant: str
    seed: int
    final: float
    """Validation success at the last evaluation."""
    best: float
    """The best validation success over the run's evaluations (optimistic: the maximum of noisy values)."""
    eval_key: str
    """Hash of the evaluation task list and settings (runs compare only on the same one)."""
    categories: Mapping[str, float] = field(default_factory=dict)
    """Final validation success per category."""
    adv_fraction: Optional[float] = None
    """Mean share of an iteration spent computing advantages."""

    @classmethod
    def from_summary(cls, variant: str, seed: int, summary: Summary | Mapping[str, Any]) -> "RunSummary":
        """From a run's :class:`~proxmo.results.contract.Summary` (or the dict of its ``summary.json``)."""
        if not isinstance(summary, Summary):
            summary = Summary.from_dict(summary)
        if not summary.values():
            raise ValueError(f"{variant} seed {seed}: the run has no evaluation to compare")
        final = [e for e in summary.evaluations if e.get(SUCCESS) is not None][-1]
        return cls(variant, seed, summary.final(), summary.best(), summary.eval_tasks_hash, by_category(final),
                   summary.adv_fraction)


@dataclass
class VariantRow:
    """One variant over its seeds."""

    variant: str
    seeds: List[int]
    final: Interval
    best: Interval
    final_by_seed: Dict[int, float]
    difference: Optional[Interval]
    """Paired difference of final success to the baseline over common seeds (None for the baseline)."""
    categories: Dict[str, Interval]
    adv_fraction: Optional[float]


def check_same_tasks(runs: Sequence[Any]) -> None:
    """Refuse runs (with ``variant``, ``seed`` and ``eval_key``) evaluated on different task lists."""
    keys = {run.eval_key for run in runs}
    if len(keys) > 1:
        by_key: Dict[str, List[str]] = {}
        for run in runs:
            by_key.setdefault(run.eval_key, []).append(f"{run.variant}/seed{run.seed}")
        raise ValueError("runs were evaluated on different task lists, so their numbers do not compare: "
                         + "; ".join(f"{key or '(no key)'}: {', '.join(names)}" for key, names in by_key.items()))


def compare_variants(runs: Sequence[RunSummary], baseline: Optional[str] = None,
                     confidence: float = 0.95) -> List[VariantRow]:
    """Rows in the order variants first appear; refuses runs evaluated on different task lists."""
    if not runs:
        raise ValueError("runs: nothing to compare")
    check_same_tasks(runs)
    variants: Dict[str, Dict[int, RunSummary]] = {}
    for run in runs:
        seeds = variants.setdefault(run.variant, {})
        if run.seed in seeds:
            raise ValueError(f"{run.variant} seed {run.seed}: two runs of the same variant and seed")
        seeds[run.seed] = run
    if baseline is not None and baseline not in variants:
        raise ValueError(f"baseline: no runs of {baseline!r}; variants are {list(variants)}")
    base = {s: r.final for s, r in variants[baseline].items()} if baseline is not None else {}
    rows = []
    for name, seeds in variants.items():
        finals = {s: r.final for s, r in sorted(seeds.items())}
        categories = sorted({c for r in seeds.values() for c in r.categories})
        fractions = [r.adv_fraction for r in seeds.values() if r.adv_fraction is not None]
        rows.append(VariantRow(
            variant=name,
            seeds=sorted(seeds),
            final=t_interval(list(finals.values()), confidence),
            best=t_interval([r.best for r in seeds.values()], confidence),
            final_by_seed=finals,
            difference=None if baseline in (None, name) else paired_difference(finals, base, confidence),
            categories={c: t_interval([r.categories[c] for r in seeds.values() if c in r.categories], confidence)
                        for c in categories},
            adv_fraction=sum(fractions) / len(fractions) if fractions else None,
        ))
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]], title: str = "") -> str:
    """A markdown table of ``rows`` (the keys of the first row are the columns; None is an empty cell), under a
    ``## title`` heading when given."""
    if not rows:
        return f"{title}\n\n(no results)\n" if title else "(no results)\n"
    names = list(rows[0].keys())
    lines = [f"## {title}", ""] if title else []
    lines.append("| " + " | ".join(names) + " |")
    lines.append("|" + "---|" * len(names))
    for row in rows:
        lines.append("| " + " | ".join("" if row.get(n) is None else str(row.get(n)) for n in names) + " |")
    return "\n".join(lines) + "\n"


def comparison_table(rows: Sequence[VariantRow], baseline: Optional[str] = None) -> str:
    """Success in percent: final mean [95% CI], the paired difference to the baseline, best (apart), per seed."""
    lines = []
    for row in rows:
        lines.append({
            "variant": row.variant, "seeds": len(row.seeds), "final success": row.final.format(),
            f"final - {baseline}" if baseline else "difference": row.difference.format() if row.difference else "-",
            "best success (optimistic)": row.best.format(),
            "final per seed": ", ".join(f"{100 * v:.1f}" for v in row.final_by_seed.values()),
            "advantage time": f"{100 * row.adv_fraction:.2f}%" if row.adv_fraction is not None else "-",
        })
    return markdown_table(lines).rstrip("\n")


__all__ = ["RunSummary", "VariantRow", "check_same_tasks", "compare_variants", "comparison_table", "markdown_table"]

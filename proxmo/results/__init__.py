"""Results a reviewer accepts: the run contract (``contract``: metric, tag and role names, run names, the summary,
final / best / objective / baseline), per-seed values, means with Student-t intervals, paired differences to a
baseline. The statistics (scipy) load on first use, so the training job reads the contract without them."""

from importlib import import_module
from typing import Any

_LAZY = {"Interval": "stats", "paired_difference": "stats", "t_interval": "stats", "RunSummary": "table",
         "VariantRow": "table", "compare_variants": "table", "comparison_table": "table",
         "markdown_table": "table"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"proxmo.results.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'proxmo.results' has no attribute {name!r}")


__all__ = ["Interval", "RunSummary", "VariantRow", "compare_variants", "comparison_table", "markdown_table", "paired_difference",
           "t_interval"]

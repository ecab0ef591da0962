"""Results a reviewer accepts: per-seed values, means with Student-t intervals, paired differences to a baseline."""

from proxmo.results.stats import Interval, paired_difference, t_interval
from proxmo.results.table import RunSummary, VariantRow, compare_variants, markdown_table

__all__ = ["Interval", "RunSummary", "VariantRow", "compare_variants", "markdown_table", "paired_difference",
           "t_interval"]

"""Statistics over seeds: Student-t intervals, paired differences, and a table that refuses unlike runs."""

import math

import numpy as np
import pytest

from proxmo.results import RunSummary, compare_variants, comparison_table, paired_difference, t_interval


def test_t_interval_matches_the_textbook_formula():
    values = [0.50, 0.56, 0.63]
    interval = t_interval(values)
    sd = np.std(values, ddof=1)
    assert interval.mean == pytest.approx(np.mean(values))
    assert interval.half_width == pytest.approx(4.302653 * sd / math.sqrt(3), rel=1e-6)  # t(0.975, 2)
    assert interval.n == 3 and interval.low < interval.mean < interval.high
    wider = t_interval(values, confidence=0.99)
    assert wider.low < interval.low and wider.high > interval.high


def test_one_value_has_no_interval():
    single = t_interval([0.4])
    assert single.mean == 0.4 and math.isnan(single.low) and single.format() == "40.0"
    with pytest.raises(ValueError, match="at least one"):
        t_interval([])
    with pytest.raises(ValueError, match="finite"):
        t_interval([0.1, float("nan")])


def test_pairing_by_seed_removes_what_seeds_share():
    # Seeds differ a lot, the variant is better by about 5 points on every seed.
    baseline = {0: 0.20, 1: 0.50, 2: 0.80}
    variant = {0: 0.26, 1: 0.54, 2: 0.85, 7: 0.99}  # seed 7 has no partner and is left out
    paired = paired_difference(variant, baseline)
    assert paired.n == 3 and paired.mean == pytest.approx(0.05) and paired.excludes_zero()
    unpaired = t_interval([variant[s] for s in (0, 1, 2)])
    assert unpaired.half_width > 10 * paired.half_width
    with pytest.raises(ValueError, match="no seed in common"):
        paired_difference({5: 0.1}, baseline)


def _run(variant, seed, final, key="k", best=None):
    return RunSummary(variant, seed, final, best if best is not None else final, key, {"Pick": final}, 0.002)


def test_table_keeps_every_seed_and_reports_final_and_best_apart():
    runs = [_run("grpo", s, v) for s, v in enumerate([0.2, 0.3, 0.4])]
    runs += [_run("proxmo", s, v, best=v + 0.1) for s, v in enumerate([0.3, 0.35, 0.5])]
    rows = compare_variants(runs, baseline="grpo")
    assert [r.variant for r in rows] == ["grpo", "proxmo"]
    assert rows[0].difference is None
    assert rows[1].difference.mean == pytest.approx(np.mean([0.1, 0.05, 0.1]))
    assert rows[1].final_by_seed == {0: 0.3, 1: 0.35, 2: 0.5}
    assert rows[1].best.mean == pytest.approx(rows[1].final.mean + 0.1)
    table = comparison_table(rows, baseline="grpo")
    assert "| proxmo | 3 |" in table and "final - grpo" in table and "30.0, 35.0, 50.0" in table


def test_table_refuses_runs_evaluated_on_different_tasks_or_doubled_seeds():
    with pytest.raises(ValueError, match="different task lists.*proxmo/seed1"):
        compare_variants([_run("grpo", 0, 0.2, key="a"), _run("proxmo", 1, 0.3, key="b")])
    with pytest.raises(ValueError, match="same variant and seed"):
        compare_variants([_run("grpo", 0, 0.2), _run("grpo", 0, 0.3)])
    with pytest.raises(ValueError, match="baseline"):
        compare_variants([_run("proxmo", 0, 0.2)], baseline="grpo")


def test_a_run_summary_comes_from_the_job_summary_file():
    summary = {"evaluations": [{"step": 0, "val/success": 0.2}, {"step": 5, "val/success": 0.6, "val/success/Pick": 1.0},
                               {"step": 10, "val/success": 0.5, "val/success/Pick": 0.75}],
               "eval_tasks_hash": "abc", "adv_fraction": 0.003}
    run = RunSummary.from_summary("proxmo", 2, summary)
    assert (run.final, run.best, run.eval_key, run.categories, run.adv_fraction) == (0.5, 0.6, "abc", {"Pick": 0.75}, 0.003)
    with pytest.raises(ValueError, match="no evaluation"):
        RunSummary.from_summary("proxmo", 2, {"evaluations": []})

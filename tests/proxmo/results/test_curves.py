"""Learning curves: the points taken from a run's records, the bands over seeds, and the PNG files."""

import pytest

from proxmo.results.curves import band, evaluation_curves, plot_run, plot_variants
from proxmo.results.stats import t_interval


def test_evaluation_curves_take_validation_metrics_by_step():
    records = [
        {"step": 0, "metrics": {"val/random/success": 0.1}},
        {"step": 1, "metrics": {"train/loss": 0.3}},
        {"step": 2, "metrics": {"val/success": 0.2, "val/success/pick": 0.5}},
        {"step": 4, "metrics": {"val/success": 0.4}},
        {"step": 4, "metrics": {"val/success": 0.45}},  # a replayed point: the last one counts
    ]
    curves = evaluation_curves(records)
    assert curves == {"val/random/success": [(0, 0.1)], "val/success": [(2, 0.2), (4, 0.45)],
                      "val/success/pick": [(2, 0.5)]}


def test_band_is_the_t_interval_over_seeds_at_common_steps():
    seeds = [[(0, 0.1), (5, 0.5), (10, 0.6)], [(0, 0.2), (5, 0.4)], [(0, 0.3), (5, 0.6), (10, 0.9)]]
    rows = band(seeds)
    assert [row[0] for row in rows] == [0, 5]  # step 10 is missing from one seed
    expected = t_interval([0.5, 0.4, 0.6])
    assert rows[1][1:] == pytest.approx((expected.mean, expected.low, expected.high))
    assert band([[(1, 0.3)]]) == [(1, 0.3, 0.3, 0.3)]  # one seed: no band
    assert band([]) == []


def test_plots_are_png_files(tmp_path):
    curves = {"val/success": [(0, 0.2), (5, 0.4)], "val/success_se": [(0, 0.05), (5, 0.05)],
              "val/greedy/success": [(0, 0.1), (5, 0.5)], "val/random/success": [(0, 0.15)],
              "val/success/pick": [(0, 0.3), (5, 0.6)], "val/success/clean": [(0, 0.1), (5, 0.2)]}
    run_png = plot_run(curves, tmp_path / "run.png", title="r")
    variants_png = plot_variants({"grpo": [curves["val/success"], [(0, 0.1), (5, 0.3)]],
                                  "proxmo": [curves["val/greedy/success"]]}, tmp_path / "variants.png")
    for path in (run_png, variants_png):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000

"""The leaderboard of an ablation folder: intervals over seeds, paired differences, Holm-adjusted p-values."""

import json

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from proxmo.cli import app
from proxmo.results.contract import Summary
from proxmo.results.leaderboard import leaderboard, leaderboard_table, read_entries
from proxmo.results.stats import holm, paired_p_value


def test_holm_matches_the_step_down_rule():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": float("nan")})
    # sorted 0.01, 0.03, 0.04 with m = 3: 0.03, 0.06, then max(0.06, 0.04) = 0.06
    assert adjusted["a"] == pytest.approx(0.03) and adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06) and np.isnan(adjusted["d"])
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}


def test_the_paired_p_value_is_scipys_paired_t_test():
    mine, base = {0: 0.5, 1: 0.6, 2: 0.55, 3: 0.7}, {0: 0.4, 1: 0.58, 2: 0.5, 3: 0.6, 9: 0.1}
    expected = stats.ttest_rel([0.5, 0.6, 0.55, 0.7], [0.4, 0.58, 0.5, 0.6]).pvalue
    assert paired_p_value(mine, base) == pytest.approx(expected)
    assert np.isnan(paired_p_value({0: 0.5}, {0: 0.4}))  # one seed: nothing to test


def _run(folder, variant, seed, values, iteration_s=2.0):
    run = folder / f"{variant}__s{seed}"
    run.mkdir(parents=True)
    evaluations = [{"step": float(10 * i), "val/success": v} for i, v in enumerate(values)]
    summary = Summary(iterations=10 * (len(values) - 1), evaluations=evaluations, eval_tasks_hash="k", adv_fraction=0.01)
    (run / "summary.json").write_text(summary.to_json())
    records = [{"step": i + 1, "metrics": {"timing/iteration_s": iteration_s}} for i in range(30)]
    records += [{"step": 10 * i, "metrics": {"timing/val_s": 6.0, "val/success": v}} for i, v in enumerate(values)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")


def test_a_folder_ranks_its_variants_against_the_baseline(tmp_path):
    for seed, (g, a, b) in enumerate([(0.40, 0.55, 0.38), (0.45, 0.62, 0.47), (0.50, 0.64, 0.49)]):
        _run(tmp_path, "grpo", seed, [0.2, g])
        _run(tmp_path, "strong", seed, [0.2, a], iteration_s=3.0)
        _run(tmp_path, "same", seed, [0.2, b])
    (tmp_path / "alfworld_games").mkdir()  # other folders are not runs
    rows = leaderboard(read_entries(tmp_path))
    assert [r.variant for r in rows] == ["strong", "grpo", "same"]  # by mean final success
    strong = rows[0]
    assert strong.value["final"].mean == pytest.approx(np.mean([0.55, 0.62, 0.64]))
    assert strong.value["auc"].mean == pytest.approx(np.mean([0.375, 0.41, 0.42]))
    assert strong.difference["final"].mean == pytest.approx(np.mean([0.15, 0.17, 0.14]))
    raw = {r.variant: r.p_value["final"] for r in rows if r.variant != "grpo"}
    assert strong.p_holm["final"] == pytest.approx(holm(raw)["strong"]) and strong.p_holm["final"] >= raw["strong"]
    assert strong.wall_minutes.mean == pytest.approx((30 * 3.0 + 2 * 6.0) / 60)
    table = leaderboard_table(rows, "grpo")
    assert "| strong | 3 | 60.3" in table and "final - grpo" in table and "p final (Holm)" in table


def test_the_command_prints_the_leaderboard_and_refuses_an_empty_folder(tmp_path):
    for seed in range(2):
        _run(tmp_path, "grpo", seed, [0.2, 0.4 + seed / 10])
        _run(tmp_path, "hgpo", seed, [0.3, 0.5 + seed / 20])
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "| hgpo | 2 |" in result.output and "final - grpo" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["leaderboard", str(empty)])
    assert result.exit_code == 2 and "no finished run" in result.output


def test_a_variant_without_a_seed_in_common_with_the_baseline_is_listed_unpaired(tmp_path):
    _run(tmp_path, "grpo", 0, [0.2, 0.4])
    _run(tmp_path, "grpo", 1, [0.2, 0.5])
    _run(tmp_path, "late", 7, [0.2, 0.6])
    rows = {row.variant: row for row in leaderboard(read_entries(tmp_path))}
    assert rows["late"].difference["final"] is None and np.isnan(rows["late"].p_value["final"])
    assert rows["grpo"].is_baseline and not rows["late"].is_baseline
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path)])
    assert "final - grpo" in result.output  # the baseline, not the first row without a difference
    assert "| late | 1 (seed 7) | 60.0 | - | - |" in leaderboard_table(list(rows.values()), "grpo")

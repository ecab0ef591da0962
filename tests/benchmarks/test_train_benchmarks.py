"""The loop-speed and learning benchmarks run the real job end to end with tiny budgets and print their tables."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY_ALFWORLD = ["run.iterations=1", "rollout.n_groups=1", "rollout.group_size=2", "rollout.max_steps=3",
                 "env.options.games={train: 3, eval: 2, max_receptacles: 3, distractors: 0}", "eval.tasks=2",
                 "eval.episodes_per_task=1", "eval.batch=2"]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_speed_benchmark_smoke(capsys):
    module = _load("train_speed")
    small = ["rollout.n_groups=1", "rollout.group_size=2", "rollout.max_steps=3"]
    assert module.main(["--iterations", "2", "--presets", "configs/alfworld_demo.yaml", "--", *small,
                        "env.options.games={train: 3, eval: 2, max_receptacles: 3, distractors: 0}"]) == 0
    assert module.main(["--iterations", "2", "--presets", "configs/webshop_demo.yaml", "--", *small,
                        "env.options.num_products=300", "env.options.num_goals=700"]) == 0
    table = capsys.readouterr().out
    assert "| alfworld_demo |" in table and "| webshop_demo |" in table and "steps/s (whole run)" in table


@pytest.mark.integration
def test_alfworld_learning_benchmark_smoke(capsys):
    module = _load("alfworld_learning")
    assert module.main(["--seeds", "0", "1", "--", *TINY_ALFWORLD]) == 0
    out = capsys.readouterr().out
    assert "| default | 0 |" in out and "| default | 1 |" in out and "mean gain over 2 seeds" in out and "95% CI" in out
    assert module.main(["--seeds", "0", "--game-sets", "default", "7", "--", *TINY_ALFWORLD]) == 0
    out = capsys.readouterr().out
    assert "| 7 | 0 |" in out and "mean gain over 2 runs (seeds x game sets)" in out


@pytest.mark.integration
def test_dashboard_benchmark_runs_on_a_small_store():
    import os

    before = os.environ.get("MLFLOW_TRACKING_URI")
    result = _load("dashboard").main(["--runs", "3", "--seeds", "2", "--trials", "4"])
    assert os.environ.get("MLFLOW_TRACKING_URI") == before
    assert result["runs"] == 1 + 4 + 1 + 4 + 3 + 1
    assert all(result[key] >= 0 for key in result if key.endswith("_s"))


@pytest.mark.integration
def test_logprob_memory_benchmark_smoke():
    rows = _load("logprob_memory").main(["--vocab", "2000", "--batch", "2", "--response", "16", "--chunks", "0", "8"])
    assert [row["chunk"] for row in rows] == [0, 8] and all(row["extra_mib"] >= 0 for row in rows)


@pytest.mark.integration
def test_workers_benchmark_smoke(capsys):
    rows = _load("workers").main(["--iterations", "2", "--", "rollout.n_groups=2", "rollout.group_size=2",
                                  "rollout.max_steps=3",
                                  "env.options.games={train: 3, eval: 2, max_receptacles: 3, distractors: 0}"])
    assert [row["workers"] for row in rows] == [1, 2] and all(row["steps_per_s"] > 0 for row in rows)
    assert "| 2 |" in capsys.readouterr().out


def test_graph_aliasing_benchmark_smoke(capsys):
    result = _load("graph_aliasing").main(["--batches", "1", "--groups", "2", "configs/alfworld_demo.yaml",
                                           "rollout.group_size=4", "rollout.max_steps=6", "eval.at_start=false",
                                           "env.options.games={train: 3, eval: 2, max_receptacles: 3, distractors: 0}"])
    assert set(result["counts"]) == {"failed", "won"}
    assert "| failed |" in capsys.readouterr().out

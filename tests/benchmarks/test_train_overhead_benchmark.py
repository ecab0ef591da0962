"""The training-overhead benchmark runs the real job once per estimator and prints its table."""

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "train_overhead.py"


def test_train_overhead_benchmark_smoke(capsys):
    spec = importlib.util.spec_from_file_location("train_overhead", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    overrides = ["model.hidden_size=32", "model.num_layers=1", "model.vocab_size=320", "rollout.n_groups=1",
                 "rollout.group_size=2", "rollout.max_steps=3", "env.options={num_products: 300, num_goals: 700}"]
    assert module.main(["--iterations", "1", "--estimators", "grpo,proxmo", *overrides]) == 0
    table = capsys.readouterr().out
    assert "| grpo |" in table and "| proxmo |" in table and "advantages / iteration" in table

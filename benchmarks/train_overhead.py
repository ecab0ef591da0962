"""What each estimator costs inside a real training iteration: the time of every phase, per estimator.

Runs the training job (same config, same seed) once per estimator and reports the mean seconds of
the rollout, advantage, log-prob and update phases over the iterations, and the advantage phase's
share of the iteration. The paper claims ProxMO adds about 1% wall time per step over GRPO.

    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py                       # WebShop demo, 3 iterations each
    OMP_NUM_THREADS=1 python benchmarks/train_overhead.py --config configs/alfworld_demo.yaml --iterations 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Dict, List

os.environ.setdefault("OMP_NUM_THREADS", "1")

from proxmo.results.contract import BATCH_STEPS, PHASES, timing_key  # noqa: E402
from proxmo.train.config import load_config  # noqa: E402
from proxmo.train.job import train  # noqa: E402

TIMED = (*PHASES, "iteration")


def measure(config_path: str, estimator: str, iterations: int, output_dir: str, overrides: List[str]) -> Dict[str, float]:
    config = load_config(config_path, [
        f"advantage.estimator={estimator}", f"run.iterations={iterations}", "eval.every=0", "eval.tasks=1",
        f"run.output_dir={output_dir}", f"run.name={estimator}", "run.tracker=none", *overrides,
    ])
    result = train(config, progress=False)
    means = {}
    for phase in TIMED:
        values = [m[timing_key(phase)] for m in result.history if timing_key(phase) in m]
        if values:
            means[phase] = statistics.mean(values)
    means["rows"] = statistics.mean(m[BATCH_STEPS] for m in result.history)
    return means


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "webshop_demo.yaml"))
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--estimators", default="grpo,gigpo,proxmo", help="comma-separated")
    parser.add_argument("overrides", nargs="*", help="extra dotted overrides for every run")
    args = parser.parse_args(argv)
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for estimator in args.estimators.split(","):
            rows[estimator] = measure(args.config, estimator, args.iterations, folder, args.overrides)
    print(f"config {Path(args.config).name}, {args.iterations} iterations per estimator, mean seconds per iteration\n")
    print("| estimator | rows | rollout | advantages | update | iteration | advantages / iteration |")
    print("|---|---|---|---|---|---|---|")
    for estimator, m in rows.items():
        print(f"| {estimator} | {m['rows']:.0f} | {m['rollout']:.2f} | {m['adv'] * 1000:.1f} ms | {m['update']:.2f} | "
              f"{m['iteration']:.2f} | {100 * m['adv'] / m['iteration']:.3f}% |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Environment steps per second of the training loop for each demo preset, and where the time goes.

Runs the real job (``proxmo.train.job.train``) for a number of iterations with evaluation off and
reports, per preset: environment steps per second end to end (rollout + advantages + update), and
the mean seconds of every phase per iteration. One torch thread, as on the 2-core CI machine.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py                          # both demo presets
    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --iterations 60 --presets configs/alfworld_demo.yaml
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

import torch  # noqa: E402

from proxmo.results.contract import ITERATION_SECONDS, PHASES, environment_steps, timing_key  # noqa: E402
from proxmo.train.config import load_config  # noqa: E402
from proxmo.train.job import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("configs/alfworld_demo.yaml", "configs/webshop_demo.yaml")


def measure(preset: str, iterations: int, output_dir: str, overrides: List[str]) -> Dict[str, float]:
    config = load_config(ROOT / preset, [
        f"run.iterations={iterations}", "eval.every=0", "eval.tasks=1", "eval.at_start=false",
        "eval.random_baseline=false", "eval.greedy=false", "eval.episodes_per_task=1",
        f"run.output_dir={output_dir}", f"run.name={Path(preset).stem}", "run.tracker=none", *overrides,
    ])
    result = train(config, progress=False)
    history = result.history
    steps = sum(environment_steps(m) for m in history)
    seconds = sum(m[ITERATION_SECONDS] for m in history)
    row = {"steps": steps / len(history), "iteration": seconds / len(history), "steps_per_s": steps / seconds,
           "first_third": _rate(history[: max(1, len(history) // 3)]), "last_third": _rate(history[-max(1, len(history) // 3):])}
    for phase in PHASES:
        values = [m[timing_key(phase)] for m in history if timing_key(phase) in m]
        row[phase] = statistics.mean(values) if values else 0.0
    return row


def _rate(history) -> float:
    return sum(environment_steps(m) for m in history) / sum(m[ITERATION_SECONDS] for m in history)


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("overrides", nargs="*", help="dotted overrides for every preset")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    rows = {}
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets:
            rows[preset] = measure(preset, args.iterations, folder, args.overrides)
    print(f"{args.iterations} iterations per preset, evaluation off, {torch.get_num_threads()} torch thread(s); "
          "seconds per iteration\n")
    print("| preset | env steps / iteration | rollout | advantages | old log-probs | update | iteration "
          "| steps/s (whole run) | first third | last third |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset, r in rows.items():
        print(f"| {Path(preset).stem} | {r['steps']:.0f} | {r['rollout']:.2f} | {1000 * r['adv']:.1f} ms | "
              f"{r['old_logprob']:.2f} | {r['update']:.2f} | {r['iteration']:.2f} | {r['steps_per_s']:.0f} | "
              f"{r['first_third']:.0f} | {r['last_third']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

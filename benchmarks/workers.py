"""One worker against several: the ALFWorld demo's training loop on 1 and on N workers, measured side by side.

Each setting runs the real command (``python -m proxmo.train configs/alfworld_demo.yaml run.workers=W``) in a
fresh process, one after the other in the same benchmark run (``--repeats`` times, alternating), without
evaluations, and reports the training loop's environment steps per second (the steps played over the
iterations' seconds; the median over repeats), the mean iteration time, and the wall time from start to exit
(which includes starting Ray and the workers). Episodes get shorter as the policy learns and differ between
settings (each worker samples from its own stream), which moves steps per second by 10-20% from run to run:
``optim.lr=1e-12`` keeps the policy as it starts, so that every run plays the same kind of episodes. Generated games and a
53k-parameter model: the speed-up of a tiny model on CPU cores, not of a GPU job.

    OMP_NUM_THREADS=1 python benchmarks/workers.py                       # 1 and 2 workers, 60 iterations
    OMP_NUM_THREADS=1 python benchmarks/workers.py --repeats 3 -- optim.lr=1e-12     # the policy held still
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from proxmo.results.contract import ITERATION_SECONDS, STEPS_PER_SECOND
from proxmo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def run(workers: int, iterations: int, output_dir: str, config: str, overrides: List[str], repeat: int = 0
        ) -> Dict[str, float]:
    name = f"workers{workers}-{repeat}"
    command = [sys.executable, "-m", "proxmo.train", config, f"run.workers={workers}", f"run.iterations={iterations}",
               "eval.every=0", "eval.at_start=false", "eval.greedy=false", "eval.random_baseline=false",
               f"run.name={name}", f"run.output_dir={output_dir}", "run.tracker=jsonl", *overrides, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    metrics = [r["metrics"] for r in read_metrics(Path(output_dir) / name) if ITERATION_SECONDS in r["metrics"]]
    seconds = sum(m[ITERATION_SECONDS] for m in metrics)
    steps = sum(m[STEPS_PER_SECOND] * m[ITERATION_SECONDS] for m in metrics)
    return {"workers": workers, "steps_per_s": steps / seconds, "iteration_s": seconds / len(metrics), "wall_s": wall}


def main(argv=None) -> List[Dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iterations", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--config", default="configs/alfworld_demo.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides for every run (after --)")
    args = parser.parse_args(argv)
    runs: Dict[int, List[Dict[str, float]]] = {w: [] for w in args.workers}
    with tempfile.TemporaryDirectory(prefix="proxmo-workers-") as folder:
        for repeat in range(args.repeats):
            for w in args.workers:
                runs[w].append(run(w, args.iterations, folder, args.config, args.overrides, repeat))
    rows = [{key: statistics.median(r[key] for r in runs[w]) for key in runs[w][0]} for w in args.workers]
    base = rows[0]["steps_per_s"]
    print(f"{args.config}, {args.iterations} iterations, no evaluation, median of {args.repeats} run(s) each; "
          f"{' '.join(args.overrides)}")
    print("| workers | env steps / s | speed-up | s / iteration | wall s | steps / s of each run |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        each = ", ".join(f"{r['steps_per_s']:.0f}" for r in runs[int(row["workers"])])
        print(f"| {int(row['workers'])} | {row['steps_per_s']:.0f} | {row['steps_per_s'] / base:.2f}x | "
              f"{row['iteration_s']:.2f} | {row['wall_s']:.0f} | {each} |")
    return rows


if __name__ == "__main__":
    main()

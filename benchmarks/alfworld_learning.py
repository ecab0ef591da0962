"""Does the ALFWorld demo learn, for every seed, within its time budget? Runs `make run`'s job once per seed.

Each seed runs the real command (``python -m proxmo.train configs/alfworld_demo.yaml run.seed=S``) in a
fresh process, timed from start to exit, one at a time so that the timings are not shared. For each
seed it prints the random agent's success, the sampled success at the first and the last evaluation
(144 episodes on unseen generated games), the gain with its standard error, the best evaluation (kept
apart: the best of several evaluations is an optimistic number), greedy success, the training loop's
environment steps per second averaged over the whole run, and the wall time. Then the mean gain over
seeds with a 95% Student-t interval. Generated games and a 53k-parameter model: not the paper's setting.

    OMP_NUM_THREADS=1 python benchmarks/alfworld_learning.py                 # seeds 0 1 2
    OMP_NUM_THREADS=1 python benchmarks/alfworld_learning.py --seeds 0 1 2 3 4 -- advantage.estimator=grpo
    OMP_NUM_THREADS=1 python benchmarks/alfworld_learning.py --game-sets default 1 2   # 3 seeds x 3 game sets

``--game-sets`` runs every seed on each set of generated games: ``default`` is the preset's, a number is
``env.options.games.seed`` (games the demo was not tuned on).
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from proxmo.results import t_interval
from proxmo.results.contract import (EPISODES, GREEDY, ITERATION_SECONDS, RANDOM, SUCCESS, SUCCESS_SE, TRAIN, Summary,
                                     quantity_key, success_key)
from proxmo.train.tracking import read_metrics

ROOT = Path(__file__).resolve().parents[1]


def run_seed(seed: int, output_dir: str, config: str, overrides: List[str], games: str = "default") -> Dict[str, float]:
    name = f"seed{seed}" if games == "default" else f"games{games}-seed{seed}"
    game_set = [] if games == "default" else [f"env.options.games.seed={int(games)}"]
    command = [sys.executable, "-m", "proxmo.train", config, f"run.seed={seed}", f"run.name={name}",
               f"run.output_dir={output_dir}", "run.tracker=jsonl", *game_set, *overrides, "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    run_dir = Path(output_dir) / name
    summary = Summary.read(run_dir)
    train = [r["metrics"] for r in read_metrics(run_dir) if ITERATION_SECONDS in r["metrics"]]
    steps = sum(m[quantity_key(TRAIN, "episodes")] * m[quantity_key(TRAIN, "episode_length")] for m in train)
    seconds = sum(m[ITERATION_SECONDS] for m in train)
    first, last = summary.first_eval, summary.final_eval
    return {
        "seed": seed, "games": games, "random": summary.random_baseline.get(success_key(RANDOM), float("nan")),
        "first": first[SUCCESS], "last": summary.final(), "se": math.hypot(first[SUCCESS_SE], last[SUCCESS_SE]),
        "best": summary.best(), "greedy": last.get(success_key(GREEDY), float("nan")),
        "episodes": last[EPISODES], "iterations": len(train), "steps_per_s": steps / seconds, "wall_s": wall,
    }


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--game-sets", nargs="+", default=["default"],
                        help="'default' (the preset's games) and/or env.options.games.seed values")
    parser.add_argument("--config", default="configs/alfworld_demo.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides for every seed")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for games in args.game_sets:
            for seed in args.seeds:
                rows.append(run_seed(seed, folder, args.config, args.overrides, games))
                r = rows[-1]
                print(f"games {games}, seed {seed}: {100 * r['first']:.1f} -> {100 * r['last']:.1f} in "
                      f"{r['wall_s']:.0f} s", flush=True)
    print(f"\n{args.config} {' '.join(args.overrides)}; {int(rows[0]['episodes'])} evaluation episodes per evaluation; "
          "success in %, gain ± one standard error\n")
    print("| games | seed | random agent | first (sampled) | last (sampled) | gain | best (sampled) | last (greedy) "
          "| iterations | steps/s | wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        gain = 100 * (r["last"] - r["first"])
        print(f"| {r['games']} | {r['seed']} | {100 * r['random']:.1f} | {100 * r['first']:.1f} | {100 * r['last']:.1f} | "
              f"{gain:+.1f} ± {100 * r['se']:.1f} | {100 * r['best']:.1f} | {100 * r['greedy']:.1f} | "
              f"{r['iterations']} | {r['steps_per_s']:.0f} | {r['wall_s']:.0f} s |")
    gains = [100 * (r["last"] - r["first"]) for r in rows]
    gain = t_interval(gains)
    if gain.n > 1:
        what = f"{gain.n} seeds" if len(args.game_sets) == 1 else f"{gain.n} runs (seeds x game sets)"
        print(f"\nmean gain over {what}: {gain.mean:+.1f} points, 95% CI [{gain.low:+.1f}, {gain.high:+.1f}]")
    print(f"smallest gain {min(gains):+.1f}; longest run {max(r['wall_s'] for r in rows):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

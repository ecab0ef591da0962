"""How close to success GraphGPO's state graph puts the steps of failed episodes, on the untrained demo policy.

GraphGPO's nodes are observation texts: two states with the same text are one node. This script plays a few
batches with the demo's untrained policy, builds each batch's graph exactly as the estimator does, and counts, in
the task groups that have a success, the steps of failed and of won episodes by the graph distance from the
observation they led to to success, with the observations most often found close to success on failed episodes.
Generated games and a 53k-parameter model: not the paper's setting.

    OMP_NUM_THREADS=1 python benchmarks/graph_aliasing.py                      # 3 batches of 16 groups x 8
    OMP_NUM_THREADS=1 python benchmarks/graph_aliasing.py --batches 1 -- configs/alfworld_hard.yaml
"""

from __future__ import annotations

import argparse
import collections
import tempfile
from typing import Dict, List

import numpy as np

from proxmo.advantage.graphgpo import distances_to_success, next_nodes
from proxmo.advantage.step import anchor_pairs
from proxmo.train.config import load_config
from proxmo.train.job import Trainer
from proxmo.train.sampling import collect_batch

MAX_DISTANCE = 5


def measure(config_path: str, batches: int, groups: int, overrides: List[str]) -> Dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="proxmo-graph-") as folder:
        config = load_config(config_path, ["run.tracker=none", f"run.output_dir={folder}", "run.name=graph",
                                           f"rollout.n_groups={groups}", *overrides])
        trainer = Trainer(config, progress=False)
        counts = {"failed": np.zeros(MAX_DISTANCE + 2, dtype=np.int64), "won": np.zeros(MAX_DISTANCE + 2, np.int64)}
        close: collections.Counter = collections.Counter()
        try:
            trainer.actor.model.eval()
            for _ in range(batches):
                rollout, _, _ = collect_batch(trainer._train_pool(), trainer.actor, trainer.sample_tasks,
                                              trainer._settings(config.rollout.temperature), trainer.generator,
                                              trainer.local_rollout)
                batch = rollout.step_batch().prepared
                pairs = anchor_pairs(batch)
                target, node_group = next_nodes(batch, pairs)
                distance = distances_to_success(pairs.row_pair, target, node_group, batch.n_groups, len(pairs.group))
                reached = distance[target]
                has_success = np.zeros(batch.n_groups, dtype=bool)
                np.logical_or.at(has_success, batch.group, batch.won)
                for label, rows in (("failed", ~batch.won & has_success[batch.group]), ("won", batch.won)):
                    bins = np.minimum(reached[rows], MAX_DISTANCE + 1).astype(np.int64)
                    counts[label] += np.bincount(bins, minlength=MAX_DISTANCE + 2)
                for i in np.flatnonzero(~batch.won & has_success[batch.group] & (reached <= 2)):
                    close[str(batch.next_anchor[i])] += 1
        finally:
            trainer.close()
    return {"counts": counts, "close": close}


def main(argv=None) -> Dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--groups", type=int, default=16)
    parser.add_argument("config", nargs="?", default="configs/alfworld_demo.yaml")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    result = measure(args.config, args.batches, args.groups, args.overrides)
    print(f"{args.config}: {args.batches} batches of {args.groups} groups, untrained policy; steps of the groups "
          "with a success, by the graph distance from the observation they led to to success")
    print("| episodes | steps | " + " | ".join(f"d = {d}" for d in range(MAX_DISTANCE + 1)) + f" | d > {MAX_DISTANCE} |")
    print("|---|---|" + "---|" * (MAX_DISTANCE + 2))
    for label, row in result["counts"].items():
        total = int(row.sum())
        shares = " | ".join(f"{100 * v / max(total, 1):.0f}%" for v in row)
        print(f"| {label} | {total} | {shares} |")
    print("\nobservations most often reached within 2 steps of success by failed episodes:")
    for text, count in result["close"].most_common(6):
        print(f"  {count:5d}  {text[:90]}")
    return result


if __name__ == "__main__":
    main()

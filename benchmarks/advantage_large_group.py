"""ProxMO on one episode group with thousands of distinct anchors: time and peak memory (numpy allocations, traced).

The soft baselines are computed in row blocks, so the memory stays bounded where a whole m x m similarity (and
the softmax over it) would need several times 8 m^2 bytes.

    OMP_NUM_THREADS=1 python benchmarks/advantage_large_group.py --rows 6000 12000 20000
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np

from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages


def distinct_anchor_group(rows: int) -> StepBatch:
    """One group of ``rows`` steps (trajectories of 10), every anchor text different, half the trajectories won."""
    traj = np.arange(rows) // 10
    return StepBatch(group=np.zeros(rows, int), traj=traj, t=np.arange(rows) % 10,
                     reward=np.where(np.arange(rows) % 10 == 9, traj % 2 * 10.0, 0.0), invalid=np.zeros(rows, bool),
                     won=(traj % 2).astype(bool), anchor=[f"room {i} item {i * 7 % 13}" for i in range(rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[6000, 12000, 20000])
    args = parser.parse_args()
    print(f"{'rows':>7} {'seconds':>8} {'peak MiB':>9} {'whole m x m MiB':>16}")
    for rows in args.rows:
        batch = distinct_anchor_group(rows)
        tracemalloc.start()
        start = time.perf_counter()
        result = compute_advantages(batch, AdvantageConfig(estimator="proxmo"))
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert np.all(np.isfinite(result.advantages))
        print(f"{rows:>7} {seconds:>8.1f} {peak / 2**20:>9.0f} {8 * rows * rows / 2**20:>16.0f}")


if __name__ == "__main__":
    main()

"""A run's evaluation: the same episodes at every evaluation, played by the policy (sampled, and greedily when
asked) or by a uniformly random agent, and the evaluations a resumed run logged before its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch

import envs
from proxmo.policy import UniformPolicy
from proxmo.results.contract import GREEDY, RANDOM, SUCCESS, VAL, success_key, timing_key
from proxmo.rollout import Rollout, collect
from proxmo.train.config import TrainConfig
from proxmo.train.distributed import Shard, worker_seed
from proxmo.train.metrics import rollout_metrics
from proxmo.train.setup import EnvSetup, rollout_settings
from proxmo.train.tracking import read_metrics

PoolFactory = Callable[..., envs.EnvPool]
"""``pool_for(options, n_groups, group_size)``: a pool of the run's environment on its backend."""


class Evaluation:
    """``eval.episodes_per_task`` episodes of every evaluation task, the same ones at every evaluation (their random
    stream starts from ``run.seed + 1`` each time), played ``eval.batch`` at a time. On several workers each plays
    its share of the episodes (from a stream of its own) and the metrics are those of all of them."""

    def __init__(self, config: TrainConfig, setup: EnvSetup, pool_for: PoolFactory,
                 shard: Optional[Shard] = None) -> None:
        self.config, self.setup, self.pool_for = config, setup, pool_for
        self.shard = shard or Shard(0, 1)
        self.spec = envs.spec(setup.name)

    def policy(self, policy) -> Dict[str, float]:
        """The policy at the evaluation temperature (``val/...``), and greedily with ``eval.greedy``
        (``val/greedy/...``): success overall and per category, with its standard error."""
        metrics = self.play(policy, self.config.eval.temperature, VAL)
        if metrics and self.config.eval.greedy:
            metrics.update(self.play(policy, 0.0, GREEDY))
        return metrics

    def random(self) -> Dict[str, float]:
        """A uniformly random agent over the same candidate actions (``val/random/...``); choose mode only."""
        if self.config.rollout.action_mode != "choose":
            return {}
        return self.play(UniformPolicy(), 1.0, RANDOM)

    def play(self, policy, temperature: float, source: str) -> Dict[str, float]:
        """The metrics of ``source`` over the evaluation episodes played by ``policy`` at ``temperature``."""
        c = self.config
        tasks = [task for task in self.setup.eval_tasks for _ in range(c.eval.episodes_per_task)]
        if not tasks:
            return {}
        shard = self.shard
        own_first, own_last = shard.share(len(tasks))
        settings = rollout_settings(c, self.spec, temperature)
        # same episodes at every evaluation
        generator = torch.Generator().manual_seed(worker_seed(c.run.seed + 1, shard.rank))
        merged = Rollout()
        if hasattr(policy, "model"):
            policy.model.eval()
        start = time.perf_counter()
        if own_last > own_first:
            mine = tasks[own_first:own_last]
            batch = min(c.eval.batch, len(mine))
            with self.pool_for(self.setup.eval_options, n_groups=batch, group_size=1) as pool:
                for first in range(0, len(mine), batch):
                    chunk = list(mine[first : first + batch])
                    padded = chunk + [chunk[0]] * (batch - len(chunk))  # the pool has a fixed size
                    part = collect(pool, policy, padded, settings, generator, traj_offset=own_first + first)
                    merged.episodes.extend(part.episodes[: len(chunk)])
        if shard.world > 1:
            merged = Rollout(episodes=[e for episodes in shard.gather(merged.episodes) for e in episodes])
        metrics = rollout_metrics(merged, source)
        metrics[timing_key(source.replace("/", "_"))] = time.perf_counter() - start
        return metrics


def logged_evaluations(run_dir: Path, until: int) -> Tuple[List[Dict[str, float]], Dict[str, float]]:
    """The evaluations (each with its ``step``) and the random agent's evaluation that the run in ``run_dir`` logged
    up to step ``until``, from its metrics file: what a resumed run reports besides what follows."""
    by_step: Dict[int, Dict[str, float]] = {}
    baseline: Dict[str, float] = {}
    for record in read_metrics(run_dir):
        step, metrics = int(record["step"]), record["metrics"]
        if step > until:
            continue
        if success_key(RANDOM) in metrics:
            baseline.update({k: v for k, v in metrics.items() if k.startswith(RANDOM + "/")})
        evaluation = {k: v for k, v in metrics.items() if k.startswith(VAL + "/") and not k.startswith(RANDOM + "/")}
        if SUCCESS in evaluation or step in by_step:
            by_step.setdefault(step, {"step": float(step)}).update(evaluation)
    return [by_step[step] for step in sorted(by_step)], baseline


__all__ = ["Evaluation", "PoolFactory", "logged_evaluations"]

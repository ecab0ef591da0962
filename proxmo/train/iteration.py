"""One iteration of a training job: K task groups played -> advantages -> the update -> the iteration's metrics.

:class:`Iterations` is the part of :class:`~proxmo.train.job.Trainer` that trains; the trainer builds what it uses
(the policy and the actor that plays, the optimizer, the random streams, this worker's :class:`~proxmo.train.
distributed.Shard`). On several workers each plays its share of the groups, every worker estimates the advantages
of the whole batch and keeps its own rows', the update sums the workers' gradients, and the metrics are those of
every worker's episodes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List

import numpy as np
import torch

import envs
from envs.backends import BUILD_PROGRESS_FROM
from proxmo.advantage import compute_advantages
from proxmo.results import contract
from proxmo.results.contract import ACTOR, ADVANTAGE, metric_key
from proxmo.rollout import Rollout, RolloutSettings
from proxmo.train.distributed import batch_rows, merge_batches
from proxmo.train.metrics import Timings, rollout_metrics
from proxmo.train.sampling import collect_batch
from proxmo.train.setup import rollout_settings
from proxmo.train.sharding import sync_actor
from proxmo.train.update import Sequences, UpdateBatch, ppo_update, sequence_logprobs

logger = logging.getLogger(__name__)


def _cost(step) -> int:
    """What a step costs the update: the tokens of its forward pass (its prompt and its response, or all of its
    candidates)."""
    if step.candidate_ids is not None:
        return len(step.prompt_ids) + sum(len(c) for c in step.candidate_ids)
    return len(step.prompt_ids) + len(step.response_ids)


class Iterations:
    """Playing and training, for :class:`~proxmo.train.job.Trainer`."""

    def _pool_for(self, options: Dict[str, Any], n_groups: int, group_size: int) -> envs.EnvPool:
        """A pool of this run's environment on the configured backend (local or Ray actors)."""
        c = self.config.env
        return envs.EnvPool(self.setup.name, options, n_groups=n_groups, group_size=group_size, backend=c.backend,
                            envs_per_actor=c.envs_per_actor, ray_address=c.ray_address)

    def _train_pool(self):
        if self._pool is None:
            r = self.local_rollout
            self._pool = self._pool_for(self.setup.train_options, r.n_groups, r.group_size)
        return self._pool

    def _build_train_pool(self) -> None:
        """Build the training environments before the first iteration; a large batch says so while it builds."""
        r = self.local_rollout
        count = r.n_groups * r.group_size
        if not self.progress or count < BUILD_PROGRESS_FROM:
            self._train_pool()
            return
        from rich.console import Console

        with Console(stderr=True).status(f"building {count:,} environments ({self.setup.name})"):
            self._train_pool()

    def _settings(self, temperature: float) -> RolloutSettings:
        return rollout_settings(self.config, self.spec, temperature)

    def sample_tasks(self) -> List[Any]:
        """K training tasks, distinct when the split has enough; on several workers, this worker's share of them
        (every worker draws the same K)."""
        k, tasks = self.config.rollout.n_groups, self.setup.train_tasks
        if k <= len(tasks):
            chosen = self.task_rng.sample(tasks, k)
        else:
            chosen = [self.task_rng.choice(tasks) for _ in range(k)]
        first, last = self.group_share
        return chosen[first:last]

    def iteration(self, index: int) -> Dict[str, float]:
        """Collect, estimate advantages, update; returns the iteration's metrics."""
        c = self.config
        timings = Timings()
        start = time.perf_counter()
        settings = self._settings(c.rollout.temperature)
        self.actor.model.eval()
        with timings("rollout"):
            rollout, played, metrics = collect_batch(self._train_pool(), self.actor, self.sample_tasks, settings,
                                                     self.generator, self.local_rollout)
        steps = rollout.trained_steps()
        shared = self.shard.world > 1
        if shared:  # the metrics of every worker's episodes; no update unless some worker has steps
            metrics = self._shared_metrics(played, metrics)
            have = self.shard.gather(bool(steps))
            # a sharded pass needs every worker: no update unless all have steps
            if not (all(have) if self.sharded else any(have)):
                steps = []
        if not steps:
            logger.warning("iteration %d: every episode aborted; no update", index)
            metrics.update(timings.metrics(time.perf_counter() - start))
            return metrics
        with timings("adv"):
            if shared:  # the whole batch's advantages on every worker; each keeps its own rows'
                parts = self.shard.gather(batch_rows(rollout.step_batch()) if steps else None)
                result = compute_advantages(merge_batches([p for p in parts if p is not None]), c.advantage)
                offset = sum(len(p["group"]) for p in parts[: self.shard.rank] if p is not None)
                own = result.advantages[offset : offset + len(steps)]
            else:
                result = compute_advantages(rollout.step_batch(), c.advantage)
                own = result.advantages
        counts = [len(steps), sum(len(s.response_ids) for s in steps), sum(len(s.prompt_ids) for s in steps),
                  len(played.steps)]
        trained_here = steps
        if shared:  # the update's rows moved between workers so that each trains about the same amount
            moved = self.shard.rebalance(list(zip(steps, own.tolist())), [_cost(s) for s in steps])
            trained_here, own = [s for s, _ in moved], np.array([a for _, a in moved], dtype=own.dtype)
        advantages = torch.from_numpy(own).float()
        sequences = self._sequences(trained_here)
        old = None
        if sequences.candidate_level:  # the behaviour policy's log pi(choice), exactly as acting computed it
            old = [torch.tensor([s.logprob], dtype=torch.float32) for s in trained_here]
        elif c.optim.ppo_epochs * c.optim.mini_batches > 1:  # one step: the old log-probs are the current ones
            with timings("old_logprob"):
                old = sequence_logprobs(self.policy, sequences, c.optim.micro_batch_size, self.shard)
        ref = None
        if self.reference is not None:
            with timings("ref_logprob"):
                ref = sequence_logprobs(self.reference, sequences, c.optim.micro_batch_size, self.shard)
        with timings("update"):
            update_stats = ppo_update(self.policy, self.optimizer, UpdateBatch(sequences, advantages, old, ref), c.optim,
                                      self.update_generator, shard=self.shard if shared else None)
            self.policy.sync_rollout_weights()  # a separate rollout engine samples with the new weights
            if self.sharded:
                sync_actor(self.policy.model, self.actor.model)
        metrics.update({metric_key(ACTOR, k): v for k, v in update_stats.items()})
        metrics.update({metric_key(ADVANTAGE, k): v for k, v in result.diagnostics.items()})
        # every worker holds the whole batch's advantages; the counts are summed over workers
        metrics[metric_key(ADVANTAGE, "abs_mean")] = float(torch.from_numpy(result.advantages).float().abs().mean())
        if shared:
            parts = self.shard.gather(counts)
            # how unevenly the workers played: the most steps any worker brought to the batch, against the mean
            metrics[contract.WORKER_IMBALANCE] = max(p[0] for p in parts) * len(parts) / max(sum(p[0] for p in parts), 1)
            counts = [sum(column) for column in zip(*parts)]
        trained, response_tokens, prompt_tokens, played_steps = counts
        total = time.perf_counter() - start
        metrics[contract.BATCH_STEPS] = float(trained)
        metrics[metric_key(contract.BATCH, "response_tokens")] = float(response_tokens)
        metrics[metric_key(contract.BATCH, "prompt_tokens_mean")] = float(prompt_tokens / trained)
        metrics.update(timings.metrics(total))
        metrics[contract.ITERATION_SECONDS] = total
        metrics[contract.STEPS_PER_SECOND] = played_steps / total
        self._status = f"success {metrics.get(contract.TRAIN_SUCCESS, 0.0):.2f}  {played_steps / total:.0f} steps/s"
        return metrics

    def _shared_metrics(self, played, own: Dict[str, float]) -> Dict[str, float]:
        """The training metrics over every worker's episodes (dynamic sampling: the mean kept fraction and the most
        extra collections of any worker)."""
        parts = self.shard.gather((played.episodes, own))
        metrics = rollout_metrics(Rollout(episodes=[e for episodes, _ in parts for e in episodes]), contract.TRAIN)
        if contract.KEPT_FRACTION in own:
            metrics[contract.KEPT_FRACTION] = sum(m[contract.KEPT_FRACTION] for _, m in parts) / len(parts)
            metrics[contract.EXTRA_COLLECTIONS] = max(m[contract.EXTRA_COLLECTIONS] for _, m in parts)
        return metrics

    def _sequences(self, steps) -> Sequences:
        """What the update trains: token sequences, or in choose mode the candidate distributions."""
        r = self.config.rollout
        candidate_level = all(s.candidate_ids is not None for s in steps)
        return Sequences(
            [s.prompt_ids for s in steps],
            [s.response_ids for s in steps],
            temperature=r.temperature,
            candidate_ids=[s.candidate_ids for s in steps] if candidate_level else None,
            choice=[s.choice for s in steps] if candidate_level else None,
            length_normalize=r.length_normalize,
        )


__all__ = ["Iterations"]

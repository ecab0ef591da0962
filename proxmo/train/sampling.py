"""Dynamic sampling (DAPO; verl-agent's group filter): train only on groups whose episodes' returns differ.

A group whose episodes all have the same return gives every group-relative estimator nothing to learn from
(its episode term is zero). With ``rollout.dynamic_sampling`` such groups are dropped and the batch is refilled
by collecting more groups (new tasks), up to ``rollout.max_collections`` collections per iteration; after the
last one the batch is filled with that collection's dropped groups, unfiltered. Returns are compared before
the invalid-action penalty, as verl-agent does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from proxmo.results import contract
from proxmo.rollout import Rollout, collect
from proxmo.train.metrics import rollout_metrics


@dataclass(frozen=True)
class DynamicBatch:
    batch: Rollout  # the groups trained on (n_groups of them)
    collected: Rollout  # everything played this iteration
    collections: int
    groups_seen: int
    groups_with_spread: int

    @property
    def kept_fraction(self) -> float:
        return self.groups_with_spread / self.groups_seen if self.groups_seen else 0.0


def groups_in_order(rollout: Rollout) -> List[int]:
    return list(dict.fromkeys(e.group for e in rollout.episodes))


def with_spread(rollout: Rollout) -> List[int]:
    """The groups (in order) whose finished episodes do not all have the same return."""
    returns: Dict[int, set] = {}
    for episode in rollout.episodes:
        if not episode.aborted:
            returns.setdefault(episode.group, set()).add(episode.reward)
    return [g for g in groups_in_order(rollout) if len(returns.get(g, ())) > 1]


def shift_groups(rollout: Rollout, offset: int) -> Rollout:
    """The rollout with every group id moved by ``offset`` (collections of one iteration must not share ids)."""
    for record in (*rollout.episodes, *rollout.steps):
        record.group += offset
    return rollout


def only_groups(rollout: Rollout, groups: List[int]) -> Rollout:
    keep = set(groups)
    return Rollout(steps=[s for s in rollout.steps if s.group in keep],
                   episodes=[e for e in rollout.episodes if e.group in keep])


def dynamic_batch(collect_once: Callable[[int], Rollout], n_groups: int, max_collections: int) -> DynamicBatch:
    """Collect until ``n_groups`` groups with a spread of returns are kept, or ``max_collections`` collections.

    ``collect_once(c)`` plays collection ``c`` (fresh tasks, trajectory ids distinct from earlier collections)
    and returns its rollout with group ids 0..n_groups-1; they are shifted here to c * n_groups + g.
    """
    collected = Rollout()
    kept: List[int] = []
    seen = spread_count = 0
    collections = 0
    for c in range(max_collections):
        part = shift_groups(collect_once(c), c * n_groups)
        collections += 1
        collected.steps.extend(part.steps)
        collected.episodes.extend(part.episodes)
        spread = with_spread(part)
        seen += len(groups_in_order(part))
        spread_count += len(spread)
        kept.extend(spread)
        if len(kept) >= n_groups:
            break
        if c == max_collections - 1:  # the last try: fill with this collection's other groups, unfiltered
            with_spread_here = set(spread)
            dropped = [g for g in groups_in_order(part) if g not in with_spread_here]
            kept.extend(dropped[: n_groups - len(kept)])
    kept = kept[:n_groups]
    return DynamicBatch(batch=only_groups(collected, kept), collected=collected, collections=collections,
                        groups_seen=seen, groups_with_spread=spread_count)


def collect_batch(pool, policy, sample_tasks: Callable[[], List[Any]], settings, generator,
                  rollout_config) -> Tuple[Rollout, Rollout, Dict[str, float]]:
    """One iteration's collection: the batch to train on, everything played, and the training metrics (over
    everything played; with dynamic sampling also the kept fraction and the extra collections)."""
    if not rollout_config.dynamic_sampling:
        rollout = collect(pool, policy, sample_tasks(), settings, generator)
        return rollout, rollout, rollout_metrics(rollout, contract.TRAIN)
    dynamic = dynamic_batch(lambda c: collect(pool, policy, sample_tasks(), settings, generator,
                                              traj_offset=c * pool.n_slots),
                            rollout_config.n_groups, rollout_config.max_collections)
    metrics = rollout_metrics(dynamic.collected, contract.TRAIN)
    metrics[contract.KEPT_FRACTION] = dynamic.kept_fraction
    metrics[contract.EXTRA_COLLECTIONS] = float(dynamic.collections - 1)
    return dynamic.batch, dynamic.collected, metrics

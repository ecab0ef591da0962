"""Metrics of a rollout (success per category, reward, length, invalid rate, WebShop score) and phase timers."""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

import numpy as np

from proxmo.results.contract import fraction_key, quantity_key, success_key, timing_key
from proxmo.rollout import Rollout


def rollout_metrics(rollout: Rollout, prefix: str) -> Dict[str, float]:
    """Per-episode means over the episodes that did not abort, overall and per category."""
    episodes = [e for e in rollout.episodes if not e.aborted]
    metrics: Dict[str, float] = {quantity_key(prefix, "episodes"): float(len(episodes))}
    aborted = len(rollout.episodes) - len(episodes)
    metrics[quantity_key(prefix, "aborted")] = float(aborted)
    if not episodes:
        return metrics
    success = float(np.mean([e.won for e in episodes]))
    metrics[success_key(prefix)] = success
    # Standard error of a success rate over independent episodes: what a difference must beat.
    metrics[quantity_key(prefix, "success_se")] = float(np.sqrt(success * (1 - success) / len(episodes)))
    metrics[quantity_key(prefix, "reward")] = float(np.mean([e.reward for e in episodes]))
    metrics[quantity_key(prefix, "episode_length")] = float(np.mean([e.length for e in episodes]))
    steps = sum(e.length for e in episodes)
    metrics[quantity_key(prefix, "invalid_rate")] = sum(e.invalid_steps for e in episodes) / steps if steps else 0.0
    scores = [e.score for e in episodes if e.score is not None]
    if scores:
        metrics[quantity_key(prefix, "score")] = float(np.mean(scores))
    rates = [e.goal_condition_rate for e in episodes if e.goal_condition_rate is not None]
    if rates:
        metrics[quantity_key(prefix, "goal_condition_rate")] = float(np.mean(rates))
    by_category: Dict[str, List[bool]] = {}
    for episode in episodes:
        if episode.category is not None:
            by_category.setdefault(str(episode.category), []).append(episode.won)
    for category, wins in sorted(by_category.items()):
        metrics[success_key(prefix, category)] = float(np.mean(wins))
    return metrics


class Timings:
    """Wall-clock seconds of named phases; ``with timings("rollout"): ...`` adds to ``timing/rollout_s``."""

    def __init__(self) -> None:
        self.seconds: Dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start

    def metrics(self, total: Optional[float] = None) -> Dict[str, float]:
        result = {timing_key(name): value for name, value in self.seconds.items()}
        if total:
            for name, value in self.seconds.items():
                result[fraction_key(name)] = value / total
        return result

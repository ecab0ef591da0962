"""A tiny deterministic text environment for the pool tests, registered as ``"toy"`` on import.

Task ``t`` (an int in ``0..n_tasks-1``) lasts ``1 + t % 3`` ordinary steps. Special actions:
``"win"`` ends the episode won (reward 1), ``"raise"`` raises inside the environment, and
``"exit"`` kills the process it runs in (only ever sent to Ray actors).
"""

from __future__ import annotations

import os
import random
from typing import Any, List, Optional, Tuple

import envs

Info = dict


class ToyEnv:
    """Counts steps toward a task-dependent horizon; observations record the task and history.

    ``reset(None)`` picks a task from a generator seeded by ``seed`` and by how many toy
    environments this process has built, so the envs of a pool pick different tasks.
    """

    built = 0

    def __init__(self, n_tasks: int = 6, seed: int = 0) -> None:
        self.n_tasks = n_tasks
        self._rng = random.Random(seed * 1000 + ToyEnv.built)
        ToyEnv.built += 1
        self._task: Optional[int] = None
        self._t = 0

    def tasks(self) -> List[int]:
        return list(range(self.n_tasks))

    def _info(self, won: bool = False) -> Info:
        return {
            "task": self._task,
            "category": "even" if self._task % 2 == 0 else "odd",
            "admissible_commands": ["go", "win"],
            "won": won,
            "t": self._t,
        }

    def reset(self, task: Optional[Any] = None) -> Tuple[str, Info]:
        if task is None:
            task = self._rng.randrange(self.n_tasks)
        if not 0 <= int(task) < self.n_tasks:
            raise ValueError(f"toy: no task {task!r}")
        self._task, self._t = int(task), 0
        return f"task {self._task}: start", self._info()

    def step(self, action: str) -> Tuple[str, float, bool, Info]:
        if self._task is None:
            raise RuntimeError("toy: step before reset")
        if action == "raise":
            raise RuntimeError("toy env exploded")
        if action == "exit":
            os._exit(1)
        self._t += 1
        if action == "win":
            return f"task {self._task}: won at {self._t}", 1.0, True, self._info(won=True)
        done = self._t >= 1 + self._task % 3
        return f"task {self._task}: {action} at {self._t}", 0.0, done, self._info()

    def close(self) -> None:
        self._task = None


envs.register("toy", ToyEnv)

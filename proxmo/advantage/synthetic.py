"""Synthetic ALFWorld-like batches: for benchmarks, tests and trying the estimators without an environment.

Each episode group is one household (receptacles with objects); its rollouts walk between
receptacles, open them and pick things up, so that observations repeat inside a group the way they
do in real ALFWorld batches. Successful rollouts end early with reward 10; the others run on.
"""

from __future__ import annotations

from typing import List

import numpy as np

from proxmo.advantage.batch import StepBatch

RECEPTACLES = ["cabinet", "countertop", "drawer", "fridge", "microwave", "shelf", "sinkbasin", "stoveburner", "garbagecan", "diningtable", "sidetable", "toaster"]
OBJECTS = ["apple", "bread", "butterknife", "cup", "dishsponge", "egg", "fork", "knife", "ladle", "lettuce", "mug", "peppershaker", "plate", "pot", "potato", "soapbottle", "spatula", "spoon", "tomato", "saltshaker"]
TASKS = ["put a clean {o} in {r}", "heat some {o} and put it in {r}", "cool some {o} and put it in {r}", "put two {o} in {r}", "look at {o} under the desklamp", "put a {o} in {r}"]
CLOSABLE = {"cabinet", "drawer", "fridge", "microwave"}


def _household(rng: np.random.Generator) -> tuple[str, list]:
    places = []
    for name in rng.choice(RECEPTACLES, size=rng.integers(5, 10), replace=False):
        for k in range(1, int(rng.integers(1, 4)) + 1):
            contents = [f"{o} {rng.integers(1, 4)}" for o in rng.choice(OBJECTS, size=rng.integers(0, 6), replace=False)]
            places.append((f"{name} {k}", name in CLOSABLE, contents))
    task = rng.choice(TASKS).format(o=rng.choice(OBJECTS), r=rng.choice(RECEPTACLES))
    seen = ", ".join(f"a {p[0]}" for p in places)
    intro = f"-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, you see {seen}.\n\nYour task is to: {task}."
    return intro, places


def _contents(items: List[str]) -> str:
    if not items:
        return "nothing"
    if len(items) == 1:
        return f"a {items[0]}"
    return ", ".join(f"a {i}" for i in items[:-1]) + f", and a {items[-1]}"


def _observation(rng: np.random.Generator, places: list, holding: list) -> str:
    place, closable, items = places[rng.integers(len(places))]
    roll = rng.random()
    if roll < 0.08:
        return "Nothing happens."
    if closable and roll < 0.4:
        return f"You open the {place}. The {place} is open. In it, you see {_contents(items)}."
    if closable and roll < 0.55:
        return f"You arrive at {place}. The {place} is closed."
    if items and roll < 0.7 and not holding:
        holding.append(items[rng.integers(len(items))])
        return f"You pick up the {holding[0]} from the {place}."
    return f"You arrive at {place}. On the {place}, you see {_contents(items)}."


def alfworld_like_batch(n_groups: int = 16, group_size: int = 8, max_steps: int = 50, seed: int = 0) -> StepBatch:
    """A batch of ``n_groups`` x ``group_size`` rollouts (about 20 steps each on average, at most ``max_steps``)."""
    rng = np.random.default_rng(seed)
    group, traj, t, reward, invalid, won, anchor = [], [], [], [], [], [], []
    trajectory = 0
    for g in range(n_groups):
        intro, places = _household(rng)
        success_rate = rng.random()
        for _ in range(group_size):
            success = rng.random() < success_rate
            length = int(rng.integers(3, max_steps + 1)) if success else int(rng.choice([max_steps, rng.integers(3, max_steps + 1)], p=[0.2, 0.8]))
            length = min(length, int(rng.integers(8, 30)) if rng.random() < 0.6 else length)
            holding: list = []
            observation = intro
            for step in range(length):
                group.append(g)
                traj.append(trajectory)
                t.append(step)
                anchor.append(observation)
                reward.append(10.0 if success and step == length - 1 else 0.0)
                invalid.append(bool(rng.random() < 0.05))
                won.append(success)
                observation = _observation(rng, places, holding)
            trajectory += 1
    return StepBatch(group=group, traj=traj, t=t, reward=reward, invalid=invalid, won=won, anchor=anchor)


def random_batch(rng: np.random.Generator, n_groups: int = 3, group_size: int = 4, max_steps: int = 6, vocabulary: int = 6) -> StepBatch:
    """A small batch with heavy anchor repetition, single-character tokens and empty anchors: for tests."""
    words = ["cabinet 1", "cabinet 2", "you see a mug 1", "nothing happens", "the fridge is open", "a", "x 7 y", "", "apple 2 on countertop 1", "Café_crème n°2 — naïve"]
    words = words[: max(vocabulary, 2)]
    group, traj, t, reward, invalid, won, anchor = [], [], [], [], [], [], []
    trajectory = 0
    for g in range(n_groups):
        for _ in range(int(rng.integers(1, group_size + 1))):
            success = bool(rng.random() < 0.5)
            length = int(rng.integers(1, max_steps + 1))
            for step in range(length):
                group.append(g)
                traj.append(trajectory)
                t.append(step)
                reward.append(float(rng.choice([0.0, 0.0, 1.0, -0.5])) + (10.0 if success and step == length - 1 else 0.0))
                invalid.append(bool(rng.random() < 0.2))
                won.append(success)
                anchor.append(str(rng.choice(words)) + (" " + str(rng.choice(words)) if rng.random() < 0.5 else ""))
            trajectory += 1
    return StepBatch(group=group, traj=traj, t=t, reward=reward, invalid=invalid, won=won, anchor=anchor)

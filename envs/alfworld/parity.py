"""Lock-step parity between two engines: the same commands, compared text, admissible commands and `won` at every step."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Protocol, Tuple

from envs.alfworld.game import Game

Observation = Tuple[str, List[str], bool]


class Engine(Protocol):
    def reset(self) -> Observation: ...

    def step(self, command: str) -> Observation: ...


@dataclass
class Mismatch:
    game: str
    walk: str
    step: int
    command: str
    expected: Observation
    got: Observation

    def __str__(self) -> str:
        only_expected = sorted(set(self.expected[1]) - set(self.got[1]))[:5]
        only_got = sorted(set(self.got[1]) - set(self.expected[1]))[:5]
        return (f"{self.game} [{self.walk}] step {self.step} after {self.command!r}:\n"
                f"  reference: {self.expected[0]!r} won={self.expected[2]}\n  engine:    {self.got[0]!r} won={self.got[2]}\n"
                f"  commands only in reference {only_expected}, only in engine {only_got}")


@dataclass
class ParityReport:
    walks: int = 0
    steps: int = 0
    won_walks: int = 0
    lost_walks: int = 0
    mismatches: List[Mismatch] = field(default_factory=list)
    seconds: dict = field(default_factory=lambda: {"reference": 0.0, "engine": 0.0})

    def add(self, other: "ParityReport") -> None:
        self.walks += other.walks
        self.steps += other.steps
        self.won_walks += other.won_walks
        self.lost_walks += other.lost_walks
        self.mismatches += other.mismatches
        for key in self.seconds:
            self.seconds[key] += other.seconds[key]


Chooser = Callable[[int, Observation], Optional[str]]


def walkthrough_chooser(game: Game) -> Chooser:
    commands = list(game.walkthrough or [])
    return lambda k, _: commands[k] if k < len(commands) else None


def biased_random_chooser(game: Game, seed: int, horizon: int) -> Chooser:
    """Random commands biased towards useful ones (mentioning the task's objects, or not moving), with a few invalid ones."""
    rng = random.Random(seed)
    spec = game.spec
    keys = [k for k in (spec.object_target, spec.parent_target, spec.toggle_target) if k]

    def choose(k: int, observation: Observation) -> Optional[str]:
        if k >= horizon:
            return None
        admissible = observation[1]
        roll = rng.random()
        if roll < 0.03:
            return "jump around"
        if roll < 0.5:
            pool = [c for c in admissible if any(key in c.replace(" ", "") for key in keys)]
        elif roll < 0.75:
            pool = [c for c in admissible if not c.startswith(("go to", "look", "inventory", "help"))]
        else:
            pool = admissible
        return rng.choice(pool or admissible)

    return choose


def guided_chooser(game: Game, engine, seed: int, horizon: int, guidance: float = 0.7) -> Chooser:
    """Mostly the expert's next move (read from the python engine's state), sometimes a random one: walks that often win late."""
    from envs.alfworld.expert import NoPlan, next_command

    rng = random.Random(seed)
    explore = biased_random_chooser(game, seed + 1, horizon)

    def choose(k: int, observation: Observation) -> Optional[str]:
        if k >= horizon:
            return None
        if rng.random() < guidance:
            try:
                return next_command(engine)
            except NoPlan:
                pass
        return explore(k, observation)

    return choose


def lockstep(reference: Engine, engine: Engine, game: Game, walk: str, choose: Chooser) -> ParityReport:
    """Play one walk through both engines; stop at the first difference, a win, or when ``choose`` says so."""
    report = ParityReport(walks=1)

    def timed(name: str, call):
        start = time.perf_counter()
        result = call()
        report.seconds[name] += time.perf_counter() - start
        return result

    expected = timed("reference", reference.reset)
    got = timed("engine", engine.reset)
    command, k = "<reset>", 0
    while True:
        if expected != got:
            report.mismatches.append(Mismatch(str(game.path), walk, k, command, expected, got))
            return report
        if expected[2]:
            report.won_walks += 1
            return report
        command = choose(k, expected)
        if command is None:
            report.lost_walks += 1
            return report
        expected = timed("reference", lambda: reference.step(command))
        got = timed("engine", lambda: engine.step(command))
        k += 1
        report.steps += 1

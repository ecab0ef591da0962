"""ALFWorld as a text environment of the project's protocol, on the python engine or the real TextWorld one."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from envs.base import Info
from envs.alfworld.categories import TASK_TYPES
from envs.alfworld.engine import AlfredEngine
from envs.alfworld.game import Game, find_games, load_game, split_folder

ENGINES = ("python", "textworld")
WIN_REWARD = 10.0


class AlfworldEnv:
    """One ALFWorld player: ``reset(task=game_file)`` starts a game, ``step(command)`` plays it.

    Reward is 10 on the winning step, else 0; an episode ends when won or after ``max_steps``
    steps. ``info`` carries ``admissible_commands`` (sorted, without ``help``), ``won``, ``task``
    and ``game`` (the game file), ``category`` (Pick, Look, Clean, Heat, Cool, Pick2), ``step`` and,
    on the python engine, ``goal_condition_success_rate``.

    Args:
        engine: ``"python"`` (fast, many per process) or ``"textworld"`` (the real engine, one per process).
        game: play this game file (or trial folder) only.
        split: ``train``, ``valid_seen`` or ``valid_unseen`` under ``data``.
        data: folder of the games (``json_2.1.1/<split>`` or ``<split>`` inside); default ``$ALFWORLD_DATA``.
        task_types: keep only these task types.
        max_steps: the episode cap (50 in the reference runs).
        seed: seeds the choice of game when ``reset`` is given no task.
        info_commands: list ``look``, ``inventory`` and ``examine ...`` among the admissible commands. They
            change nothing in the world; leaving them out shortens the action set a small policy explores.
    """

    def __init__(self, engine: str = "python", game: Optional[str | os.PathLike] = None, split: str = "train",
                 data: Optional[str | os.PathLike] = None, task_types: Optional[Sequence[str]] = None,
                 max_steps: int = 50, seed: Optional[int] = None, info_commands: bool = True) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine: expected one of {ENGINES}, got {engine!r}")
        if max_steps < 1:
            raise ValueError(f"max_steps: must be >= 1, got {max_steps}")
        if task_types is not None:
            unknown = [t for t in task_types if t not in TASK_TYPES]
            if unknown:
                raise ValueError(f"task_types: unknown {unknown}; choose from {list(TASK_TYPES)}")
        if game is not None:
            self._games = [str(load_game(game).path)]
        else:
            folder = split_folder(split, data)
            self._games = [str(p) for p in find_games(folder, task_types)]
            if not self._games:
                raise FileNotFoundError(f"data: no solvable games in {folder}")
        self.engine_kind = engine
        self.max_steps = max_steps
        self.info_commands = info_commands
        self._rng = random.Random(seed)
        self._loaded: Dict[str, Tuple[Game, AlfredEngine]] = {}
        self._textworld = None
        self._game: Optional[Game] = None
        self._engine = None
        self._steps = 0
        self._done = True

    def tasks(self) -> List[str]:
        return list(self._games)

    def _start(self, game_file: str) -> Tuple[str, List[str], bool]:
        if self.engine_kind == "python":
            if game_file not in self._loaded:
                game = load_game(game_file)
                self._loaded[game_file] = (game, AlfredEngine(game.spec))
            self._game, self._engine = self._loaded[game_file]
        else:
            from envs.alfworld.textworld_engine import TextWorldEngine

            self._game = load_game(game_file)
            if self._textworld is None:
                self._textworld = TextWorldEngine()
            self._textworld.load(self._game.path)
            self._engine = self._textworld
        return self._engine.reset()

    def _info(self, admissible: List[str], won: bool) -> Info:
        info: Info = {
            "admissible_commands": [c for c in admissible if c != "help" and (self.info_commands or not is_info_command(c))],
            "won": won,
            "task": str(self._game.path),
            "game": str(self._game.path),
            "category": self._game.category,
            "step": self._steps,
        }
        if isinstance(self._engine, AlfredEngine):
            satisfied, total = self._engine.goal_conditions()
            info["goal_condition_success_rate"] = satisfied / total
        return info

    def reset(self, task: Optional[str | os.PathLike] = None) -> Tuple[str, Info]:
        game_file = str(task) if task is not None else self._rng.choice(self._games)
        observation, admissible, won = self._start(game_file)
        self._steps, self._done = 0, won
        return observation, self._info(admissible, won)

    def step(self, action: str) -> Tuple[str, float, bool, Info]:
        if self._engine is None:
            raise RuntimeError("env: call reset() before step()")
        if self._done:
            raise RuntimeError("env: the episode is over; call reset()")
        observation, admissible, won = self._engine.step(action)
        self._steps += 1
        self._done = won or self._steps >= self.max_steps
        return observation, WIN_REWARD if won else 0.0, self._done, self._info(admissible, won)

    def close(self) -> None:
        if self._textworld is not None:
            self._textworld.close()
            self._textworld = None


INFO_COMMANDS = ("look", "inventory")


def is_info_command(command: str) -> bool:
    """Whether ``command`` only reports (look, inventory, examine ...) and changes nothing."""
    return command in INFO_COMMANDS or command.startswith("examine ")


def fixture_games() -> List[Path]:
    """The small set of generated games shipped with the package (a few per task type)."""
    return find_games(Path(__file__).parent / "fixtures")

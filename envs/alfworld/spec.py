"""What a trainer needs to know about ALFWorld: its splits, the task line of a game, and games generated on demand."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Sequence

from envs.alfworld.categories import CATEGORIES
from envs.alfworld.generate import Knobs, generate
from envs.base import EnvSpec, Info, ResultColumn

_TASK = re.compile(r"Your task is to:\s*(.+?)\s*$", re.S)


def task_text(observation: str, info: Info) -> str:
    """The task sentence of a game's first observation, without its final full stop."""
    match = _TASK.search(observation)
    return match.group(1).rstrip(".") if match else ""


@dataclass(frozen=True)
class GameCounts:
    """Games generated for a run when no data folder is given (``env.options.games``)."""

    train: int = 48
    eval: int = 24
    seed: int = 0
    max_receptacles: int = Knobs.max_receptacles
    distractors: int = Knobs.distractors

    @classmethod
    def parse(cls, value: Mapping[str, Any]) -> "GameCounts":
        known = {f.name for f in fields(cls)}
        for key, number in dict(value).items():
            if key not in known:
                raise ValueError(f"env.options.games.{key}: unknown setting; known: {sorted(known)}")
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise ValueError(f"env.options.games.{key}: expected an integer >= 0, got {number!r}")
        counts = cls(**dict(value))
        if counts.train < 1 or counts.eval < 1:
            raise ValueError("env.options.games: train and eval must each be >= 1")
        return counts

    def folder_name(self) -> str:
        # Every setting that changes the games is in the name: a run never reuses games of other settings.
        return f"seed{self.seed}_r{self.max_receptacles}_d{self.distractors}_n{self.train}-{self.eval}"


def _has_split(split: str, data: Any) -> bool:
    from envs.alfworld.game import split_folder

    try:
        split_folder(split, data)
    except FileNotFoundError:
        return False
    return True


def prepare(options: Dict[str, Any], workdir: Path, splits: Sequence[str]) -> Dict[str, Any]:
    """Generate the games of ``options["games"]`` under ``workdir`` when neither ``data`` nor ALFWORLD_DATA has them.

    The first split gets ``games.train`` games, the others ``games.eval``. A marker written last tells a
    complete folder, so an interrupted generation is redone.
    """
    options = dict(options)
    counts = GameCounts.parse(options.pop("games", None) or {})
    if "data" in options or all(_has_split(split, None) for split in splits):
        return options

    folder = Path(workdir) / "alfworld_games" / counts.folder_name()
    if not (folder / ".complete").exists():
        _generate_once(folder, counts, list(dict.fromkeys(splits)))
    options["data"] = str(folder)
    return options


def game_key(task: Any) -> str:
    """A game's identity: the hash of its game file, so that copies of the same game in other folders agree."""
    path = Path(str(task))
    data = path.read_bytes() if path.is_file() else str(task).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _generate_once(folder: Path, counts: "GameCounts", splits: Sequence[str]) -> None:
    """Write the games into a private folder, then move it into place in one rename.

    Jobs that start together (an ablation's Ray tasks) may all find the folder missing: each generates
    its own copy (the same games: generation is deterministic), the first rename wins, and the others
    drop theirs, so no job ever reads a half-written folder.
    """
    import os
    import shutil
    import tempfile


    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        knobs = Knobs(max_receptacles=counts.max_receptacles, distractors=counts.distractors)
        for index, split in enumerate(splits):
            for _ in generate(partial, split, counts.train if index == 0 else counts.eval, counts.seed, knobs=knobs):
                pass
        (partial / ".complete").touch()
        if folder.exists() and not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)  # left by an interrupted generation of the older kind
        try:
            os.rename(partial, folder)
        except OSError:
            if not (folder / ".complete").exists():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def check_games(options: Mapping[str, Any]) -> None:
    """Fail early on a bad ``games`` option."""
    GameCounts.parse(options.get("games") or {})


ALFWORLD = EnvSpec(
    intro="You are an expert agent acting in a household (ALFWorld).",
    train_split="train",
    eval_split="valid_unseen",
    defaults={"engine": "python"},
    task_text=task_text,
    prepare=prepare,
    prepare_options=frozenset({"games"}),
    check_options=check_games,
    task_key=game_key,
    location_options=frozenset({"data"}),
    categories=CATEGORIES,
    result_columns=(*(ResultColumn(category, category=category) for category in CATEGORIES), ResultColumn("All")),
    play_options=lambda: {"game": str(_first_fixture())},
)


def _first_fixture() -> Path:
    from envs.alfworld.env import fixture_games  # the engine loads only when a game is played

    return fixture_games()[0]

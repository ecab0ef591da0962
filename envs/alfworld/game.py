"""ALFWorld game files: loading one (generated or official json_2.1.x), and finding the games of a split."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional

from envs.alfworld.categories import CATEGORY, category_of
from envs.alfworld.engine import GameSpec

GAME_FILE = "game.tw-pddl"
SPLITS = ("train", "valid_seen", "valid_unseen")
_TASK_LINE = re.compile(r'"Your task is to: (.*?)"')
# Templates the python engine reproduces; a game whose grammar lacks one is refused, not played wrong.
REQUIRED_TEMPLATES = (
    "You arrive at {r.name}. #examineReceptacle.feedback#",
    "You pick up the {o.name} from the {r.name}.",
    "You move the {o.name} to the {r.name}.",
    "The {r.name} is open. In it, you see",
    "You heat the {o.name} using the {r.name}.",
    "move (object) to (receptacle)",
)


class UnsupportedGame(ValueError):
    """The game file exists but the python engine cannot play it faithfully."""


@dataclass(frozen=True)
class Game:
    """One game: its file, task type, category and what the engine needs."""

    path: Path
    task_type: str
    category: str
    spec: GameSpec
    walkthrough: Optional[List[str]]


def load_game(path: str | os.PathLike) -> Game:
    """Read ``game.tw-pddl`` and the ``traj_data.json`` beside it (or a trial folder holding both)."""
    path = Path(path)
    if path.is_dir():
        path = path / GAME_FILE
    if not path.is_file():
        raise FileNotFoundError(f"game: no game file at {path} (expected a {GAME_FILE} or a trial folder holding one)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"game: {path} is not valid JSON ({error.msg})") from None
    traj_path = path.parent / "traj_data.json"
    if not traj_path.is_file():
        raise FileNotFoundError(f"game: {traj_path} is missing (the task parameters live there)")
    traj = json.loads(traj_path.read_text())
    grammar = data.get("grammar", "")
    if "put {o.name}" in grammar or "put (object) in/on (receptacle)" in grammar:
        raise UnsupportedGame(
            f"game: {path} uses the json_2.1.1 wording 'put X in/on Y'; the python engine plays the "
            "'move X to Y' games of alfworld >= 0.4 (regenerate the game files, or use engine='textworld')"
        )
    missing = [t for t in REQUIRED_TEMPLATES if t not in grammar]
    if missing:
        raise UnsupportedGame(f"game: {path} has a grammar the python engine does not know (missing {missing[0]!r}); "
                              "use engine='textworld'")
    match = _TASK_LINE.search(grammar)
    if match is None:
        raise ValueError(f"game: {path} has no 'Your task is to:' line in its grammar")
    params = traj.get("pddl_params", {})
    task_type = traj.get("task_type", "")
    category_of(task_type)  # validates the task type
    spec = GameSpec(
        pddl_problem=data["pddl_problem"],
        task_type=task_type,
        task_desc=match.group(1),
        object_target=params.get("object_target", ""),
        parent_target=params.get("parent_target", ""),
        toggle_target=params.get("toggle_target", ""),
        object_sliced=bool(params.get("object_sliced", False)),
    )
    return Game(path=path, task_type=task_type, category=CATEGORY[task_type], spec=spec,
                walkthrough=data.get("walkthrough"))


def find_games(root: str | os.PathLike, task_types: Optional[Iterable[str]] = None) -> List[Path]:
    """Solvable game files under ``root``, sorted; movable-receptacle and sliced tasks are skipped (as ALFWorld does)."""
    wanted = set(task_types) if task_types is not None else set(CATEGORY)
    games = []
    for folder, _, files in os.walk(root):
        if GAME_FILE not in files or "movable" in folder or "Sliced" in folder:
            continue
        task_type = Path(folder).parent.name.split("-", 1)[0]
        if task_type not in wanted:
            continue
        with open(os.path.join(folder, GAME_FILE)) as handle:
            if json.load(handle).get("solvable", False):
                games.append(Path(folder) / GAME_FILE)
    return sorted(games)


def split_folder(split: str, data: Optional[str | os.PathLike] = None) -> Path:
    """The folder of a split: ``DATA/json_2.1.1/<split>`` (official layout) or ``DATA/<split>``.

    ``data`` defaults to ``$ALFWORLD_DATA``.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    root = data if data is not None else os.environ.get("ALFWORLD_DATA")
    if not root:
        raise FileNotFoundError(
            "data: no ALFWorld data folder; pass data=DIR, set ALFWORLD_DATA, or generate games with "
            "`proxmo games generate --out DIR --split train --count 100`"
        )
    root = Path(os.path.expandvars(str(root))).expanduser()
    for candidate in (root / "json_2.1.1" / split, root / split):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"data: no {split!r} split under {root} (looked for json_2.1.1/{split} and {split})")

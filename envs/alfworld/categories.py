"""ALFWorld's six task types and the category names used in results tables."""

from __future__ import annotations

from pathlib import Path

TASK_TYPES = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

CATEGORY = {
    "pick_and_place_simple": "Pick",
    "look_at_obj_in_light": "Look",
    "pick_clean_then_place_in_recep": "Clean",
    "pick_heat_then_place_in_recep": "Heat",
    "pick_cool_then_place_in_recep": "Cool",
    "pick_two_obj_and_place": "Pick2",
}

CATEGORIES = tuple(CATEGORY[t] for t in TASK_TYPES)


def category_of(task_type: str) -> str:
    """The results-table category (Pick, Look, Clean, Heat, Cool, Pick2) of a task type."""
    try:
        return CATEGORY[task_type]
    except KeyError:
        raise ValueError(f"task_type: unknown ALFWorld task type {task_type!r}; known: {list(TASK_TYPES)}") from None


def category_of_path(game_file: str | Path) -> str:
    """The category from a game's folder name (``<task_type>-<Obj>-<MRecep>-<Parent>-<scene>/trial_*/``)."""
    for part in reversed(Path(game_file).parts):
        task_type = part.split("-", 1)[0]
        if task_type in CATEGORY:
            return CATEGORY[task_type]
    raise ValueError(f"game: cannot tell the task type from the path {str(game_file)!r}")

"""ALFWorld: generated games in the official format, a fast pure-Python engine, and the real TextWorld engine."""

from envs.base import register
from envs.alfworld.categories import CATEGORIES, CATEGORY, TASK_TYPES, category_of, category_of_path
from envs.alfworld.engine import AlfredEngine, GameSpec
from envs.alfworld.env import AlfworldEnv, fixture_games, is_info_command
from envs.alfworld.spec import ALFWORLD
from envs.alfworld.game import Game, UnsupportedGame, find_games, load_game, split_folder

register("alfworld", AlfworldEnv, ALFWORLD)

__all__ = [
    "AlfredEngine", "AlfworldEnv", "CATEGORIES", "CATEGORY", "Game", "GameSpec", "TASK_TYPES", "UnsupportedGame",
    "category_of", "category_of_path", "find_games", "fixture_games", "is_info_command", "load_game", "split_folder",
]

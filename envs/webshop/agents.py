"""Scripted shoppers for the built-in shop: an oracle that buys the goal's product, and a random agent.

The oracle reads the goal (privileged): it searches with the instruction's words (the price clause
dropped), pages through the results to the goal's product, clicks the goal's option values and buys.
If the product is not among the results it goes back and searches the product's title. The random
agent clicks uniformly among the admissible actions and searches a few random instruction words.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Protocol

from envs.base import Info
from envs.webshop import pages
from envs.webshop.catalog import Goal
from envs.webshop.env import WebShopEnv


class Agent(Protocol):
    """Something that picks the next action."""

    def begin(self) -> None:
        """Forget the previous episode."""
        ...

    def act(self, observation: str, info: Info) -> str: ...


def oracle_query(goal: Goal) -> str:
    """The oracle's search: the instruction without its price clause."""
    return goal.instruction.split(", and price")[0]


class OracleAgent:
    """Buys the goal's target product with the goal's options; scores 1.0 on every goal."""

    def __init__(self, env: WebShopEnv) -> None:
        self.env = env
        self.used_title_search = False
        self._searched = 0

    def begin(self) -> None:
        self.used_title_search = False
        self._searched = 0

    def act(self, observation: str, info: Info) -> str:
        page, goal = self.env.page, self.env.goal
        if page.kind == "search":
            return self._search(goal)
        if page.kind == "results":
            return self._pick_result(page, goal)
        if page.kind == "item":
            return self._shop_item(goal)
        return f"click[{pages.PREV.lower()}]"

    def _search(self, goal: Goal) -> str:
        self._searched += 1
        if self._searched == 1:
            return f"search[{oracle_query(goal)}]"
        self.used_title_search = True
        return f"search[{self.env.shop.catalog.by_asin[goal.asin].title}]"

    def _pick_result(self, page: pages.Page, goal: Goal) -> str:
        if goal.asin in page.clickables:
            return f"click[{goal.asin.lower()}]"
        if pages.NEXT in page.clickables:
            return f"click[{pages.NEXT.lower()}]"
        return f"click[{pages.BACK_TO_SEARCH.lower()}]"

    def _shop_item(self, goal: Goal) -> str:
        item = self.env.item
        if item is None or item.asin != goal.asin:
            return f"click[{pages.PREV.lower()}]"
        selected = self.env.selected_options
        for group, value in goal.options.items():
            if selected.get(group) != value:
                return f"click[{value}]"
        return f"click[{pages.BUY_NOW.lower()}]"


class RandomAgent:
    """Uniform over the admissible actions; a search uses 2-5 random words of the instruction."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def begin(self) -> None:
        pass

    def act(self, observation: str, info: Info) -> str:
        action = self._rng.choice(info["admissible_commands"])
        if action != pages.SEARCH_PLACEHOLDER:
            return action
        words = info["instruction"].split(", and price")[0].split()
        picked = self._rng.sample(words, k=min(len(words), self._rng.randint(2, 5)))
        return f"search[{' '.join(picked)}]"


@dataclass(frozen=True)
class Episode:
    """How one episode went."""

    task: int
    steps: int
    searches: int
    reward: float
    score: float
    won: bool


def run_episode(env: WebShopEnv, agent: Agent, task: Optional[int] = None) -> Episode:
    """Play one episode of ``env`` with ``agent`` (on goal ``task``, or one the env picks)."""
    agent.begin()
    observation, info = env.reset(task)
    done, reward, steps, searches = False, 0.0, 0, 0
    while not done:
        action = agent.act(observation, info)
        searches += action.startswith("search[")
        observation, reward, done, info = env.step(action)
        steps += 1
    return Episode(info["task"], steps, searches, reward, info["score"], info["won"])

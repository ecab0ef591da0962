"""The WebShop text environment: a goal, a shop to browse, and the published score for a purchase.

One episode: the search page shows the goal's instruction; the agent searches, pages through the
results, opens items, picks options, reads sub-pages and buys. Buying ends the episode with reward
``success_reward`` (10) when the score is 1.0 and 0 otherwise; after ``max_steps`` actions without
a purchase the episode ends with reward 0 (``info["truncated"] = True``). With
``reward_mode="score"`` a purchase earns ``success_reward * score`` instead (a denser signal for
small policies; ``won`` still means a score of 1.0).

An action that is not available on the current page (or does not parse) leaves the page unchanged,
counts as a step and sets ``info["invalid"] = True``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Dict, List, Optional, Tuple

from envs.base import Info
from envs.webshop import pages
from envs.webshop.catalog import NUM_GOALS, NUM_PRODUCTS, Catalog, Goal, Product, generate, score_goal
from envs.webshop.search import SearchIndex
from envs.webshop.scoring import check_reward_mode, purchase_reward

_ACTION = re.compile(r"^\s*(search|click)\[(.*)\]\s*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Shop:
    """A catalog with its search index (shared by every environment built from the same config)."""

    catalog: Catalog
    index: SearchIndex


@lru_cache(maxsize=4)
def load_shop(seed: int = 0, num_products: int = NUM_PRODUCTS, num_goals: int = NUM_GOALS) -> Shop:
    """Generate (once per process and config) the catalog and its BM25 index."""
    catalog = generate(seed=seed, num_products=num_products, num_goals=num_goals)
    return Shop(catalog, SearchIndex(catalog.products))


@dataclass
class _Session:
    """Where the shopper is: the page, the last search and the item's chosen options."""

    goal: Goal
    page: pages.Page
    query: str = ""
    results: Tuple[Product, ...] = ()
    results_page: int = 1
    item: Optional[Product] = None
    selected: Dict[str, str] = field(default_factory=dict)
    steps: int = 0
    done: bool = False
    score: float = 0.0


class WebShopEnv:
    """A self-contained WebShop with the real one's text interface and scoring.

    Args:
        split: ``"train"`` (goals 500 and up) or ``"test"`` (goals 0-499).
        num_products: catalog size.
        num_goals: how many goals to generate (test + train).
        seed: catalog and goal seed; the same seed gives the same shop.
        max_steps: actions per episode before it ends without a purchase.
        goal: play this goal index whenever ``reset()`` is called without a task.
        success_reward: reward for a purchase scoring 1.0.
        reward_mode: ``"success"`` (the reference runs: ``success_reward`` only for a score of 1.0) or
            ``"score"`` (``success_reward * score`` for any purchase).
        show_instruction: keep the instruction on the search page (the RL prompt may strip it).
        episode_seed: seeds the choice of goal when ``reset()`` gets no task.
    """

    def __init__(
        self,
        split: str = "train",
        num_products: int = NUM_PRODUCTS,
        num_goals: int = NUM_GOALS,
        seed: int = 0,
        max_steps: int = 15,
        goal: Optional[int] = None,
        success_reward: float = 10.0,
        reward_mode: str = "success",
        show_instruction: bool = True,
        episode_seed: Optional[int] = None,
    ) -> None:
        self.shop = load_shop(seed, num_products, num_goals)
        self.split = split
        self._tasks = self.shop.catalog.split(split)
        self._task_set = frozenset(self._tasks)
        if not self._tasks:
            raise ValueError(f"webshop: split {split!r} has no goals with num_goals={num_goals}")
        if goal is not None:
            self._check_task(goal)
        self.fixed_goal = goal
        self.max_steps = max_steps
        self.success_reward = success_reward
        self.reward_mode = check_reward_mode(reward_mode)
        self.show_instruction = show_instruction
        self._rng = random.Random(episode_seed if episode_seed is not None else seed)
        self._session: Optional[_Session] = None

    # -- protocol -------------------------------------------------------------------------------
    def tasks(self) -> List[int]:
        """The goal indices of this environment's split."""
        return list(self._tasks)

    def reset(self, task: Optional[Any] = None) -> Tuple[str, Info]:
        """Start an episode on goal ``task`` (or the configured goal, or a random one of the split)."""
        if task is None:
            task = self.fixed_goal if self.fixed_goal is not None else self._rng.choice(self._tasks)
        index = self._check_task(task)
        goal = self.shop.catalog.goals[index]
        self._session = _Session(goal=goal, page=self._search_page(goal))
        return self._observation(), self._info(invalid=False)

    def step(self, action: str) -> Tuple[str, float, bool, Info]:
        """Take ``search[query]`` or ``click[label]``; see the module docstring for invalid actions."""
        session = self._require_session()
        if session.done:
            return self._observation(), 0.0, True, self._info(invalid=True)
        session.steps += 1
        valid = self._apply(action)
        reward = 0.0
        if session.done:
            reward = purchase_reward(session.score, self.success_reward, self.reward_mode)
        truncated = not session.done and session.steps >= self.max_steps
        if truncated:
            session.done = True
        info = self._info(invalid=not valid)
        info["truncated"] = truncated
        return self._observation(), reward, session.done, info

    def close(self) -> None:
        self._session = None

    # -- read-only views (agents, tests) ------------------------------------------------------------
    @property
    def goal(self) -> Goal:
        """The current episode's goal."""
        return self._require_session().goal

    @property
    def page(self) -> pages.Page:
        """The current page."""
        return self._require_session().page

    @property
    def item(self) -> Optional[Product]:
        """The product whose page (or sub-page) is open, if any."""
        return self._require_session().item

    @property
    def selected_options(self) -> Dict[str, str]:
        """Option group -> value chosen on the open item."""
        return dict(self._require_session().selected)

    # -- internals ----------------------------------------------------------------------------------
    def _check_task(self, task: Any) -> int:
        index = int(task)
        if index not in self._task_set:
            raise ValueError(f"webshop: goal {task!r} is not in the {self.split!r} split")
        return index

    def _require_session(self) -> _Session:
        if self._session is None:
            raise RuntimeError("webshop: call reset() before step()")
        return self._session

    def _search_page(self, goal: Goal) -> pages.Page:
        page = pages.search_page(goal.instruction)
        if self.show_instruction:
            return page
        return pages.Page(page.kind, ("WebShop", "Search"), page.clickables, page.has_search_bar)

    def _observation(self) -> str:
        return self._require_session().page.text

    def _info(self, invalid: bool) -> Info:
        session = self._require_session()
        return {
            "admissible_commands": [] if session.done else session.page.commands(),
            "task": session.goal.index,
            "category": session.goal.category,
            "instruction": session.goal.instruction,
            "won": session.done and session.score == 1.0,
            "score": session.score,
            "invalid": invalid,
            "page": session.page.kind,
            "steps": session.steps,
        }

    def _apply(self, action: str) -> bool:
        """Carry out ``action``; return whether it was valid."""
        match = _ACTION.match(action)
        if match is None:
            return False
        verb, argument = match.group(1).lower(), match.group(2).strip()
        if verb == "search":
            return self._search(argument)
        return self._click(argument.lower())

    def _search(self, query: str) -> bool:
        session = self._require_session()
        if not session.page.has_search_bar or not query:
            return False
        by_asin = self.shop.catalog.by_asin
        session.query = query
        session.results = tuple(by_asin[a] for a in self.shop.index.search(query))
        session.results_page = 1
        session.page = pages.results_page(session.results, 1)
        return True

    def _click(self, label: str) -> bool:
        session = self._require_session()
        labels = {c.lower(): c for c in session.page.clickables}
        if label not in labels:
            return False
        shown = labels[label]
        if shown == pages.BACK_TO_SEARCH:
            session.page, session.item, session.selected = self._search_page(session.goal), None, {}
        elif shown == pages.PREV:
            self._go_back()
        elif shown == pages.NEXT:
            self._show_results(session.results_page + 1)
        elif session.page.kind == "results":
            self._open_item(self.shop.catalog.by_asin[shown])
        elif shown == pages.BUY_NOW:
            self._buy()
        elif shown in pages.SUB_PAGES:
            session.page = pages.sub_page(self._current_item(), shown.lower())
        else:
            self._choose_option(shown)
        return True

    def _current_item(self) -> Product:
        item = self._require_session().item
        assert item is not None, "an item page always has an item"
        return item

    def _show_results(self, page: int) -> None:
        session = self._require_session()
        session.results_page = page
        session.page = pages.results_page(session.results, page)

    def _go_back(self) -> None:
        session = self._require_session()
        if session.page.kind == "results":
            self._show_results(session.results_page - 1)
        elif session.page.kind == "item":
            session.item, session.selected = None, {}
            self._show_results(session.results_page)
        else:  # a sub-page goes back to its item, options kept
            session.page = pages.item_page(self._current_item())

    def _open_item(self, product: Product) -> None:
        session = self._require_session()
        session.item, session.selected = product, {}
        session.page = pages.item_page(product)

    def _choose_option(self, value: str) -> None:
        session = self._require_session()
        for group, values in self._current_item().options.items():
            if value in values:
                session.selected[group] = value
                return

    def _buy(self) -> None:
        session = self._require_session()
        breakdown = score_goal(session.goal, self._current_item(), tuple(session.selected.values()))
        session.score = breakdown.score
        session.done = True
        session.page = pages.done_page(session.score)


def make_webshop(server_url: Optional[str] = None, **config: Any) -> Any:
    """The ``envs.make("webshop", ...)`` factory: the built-in shop, or a real server's adapter.

    With ``server_url`` the environment talks to a running WebShop server over HTTP (see
    ``envs.webshop.remote``); otherwise it is the in-process shop configured by ``config``.
    """
    if server_url is not None:  # the built-in shop's own options (its catalog size, ...) do not apply to a server
        from envs.webshop.remote import RemoteWebShopEnv, remote_options

        return RemoteWebShopEnv(server_url, **{k: v for k, v in config.items() if k in remote_options()})
    return WebShopEnv(**config)

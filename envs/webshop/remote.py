"""Optional adapter to a real WebShop behind an HTTP text interface (for users who run one).

The server is the widely used JSON wrapper around WebShop's ``WebAgentTextEnv`` (AgentGym's
``agentenv-webshop``, started with ``webshop --port 36001``); it answers:

* ``POST /create`` -> the new environment's id (an integer);
* ``POST /reset`` ``{"env_idx", "session_id"}`` -> ``[observation, null]`` (``session_id`` = goal index);
* ``POST /step`` ``{"env_idx", "action"}`` -> ``{"state", "reward", "done", "info"}``, the reward
  being the purchase score in [0, 1];
* ``GET /available_actions?env_idx=`` -> ``{"has_search_bar", "clickables"}``;
* ``GET /instruction_text?env_idx=`` -> the goal instruction;
* ``POST /close`` ``{"env_idx"}`` -> ``{"closed"}``.

Only the standard library is used (``urllib``). Nothing here runs unless a server URL is given:
``envs.make("webshop", server_url="http://127.0.0.1:36001", split="test")``.
"""

from __future__ import annotations

import functools
import inspect
import json
import random
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

from envs.base import Info
from envs.webshop.catalog import NUM_TEST_GOALS
from envs.webshop.pages import SEARCH_PLACEHOLDER
from envs.webshop.scoring import check_reward_mode, purchase_reward


def check_server_url(url: Any) -> str:
    """``url`` if it is an http(s) address with a host, else a ValueError naming ``server_url``."""
    parsed = urllib.parse.urlparse(str(url or ""))
    if not isinstance(url, str) or parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"server_url: expected the http(s) address of a WebShop server, e.g. "
                         f"http://127.0.0.1:36001, got {url!r}")
    return url


@functools.lru_cache(maxsize=None)
def remote_options() -> frozenset:
    """The options the server adapter takes (the built-in shop's own, such as ``num_products``, do not apply)."""
    return frozenset(p for p in inspect.signature(RemoteWebShopEnv.__init__).parameters if p != "self")


class RemoteWebShopEnv:
    """The ``TextEnv`` protocol over a WebShop server's HTTP text interface.

    Args:
        server_url: base URL of the server, e.g. ``http://127.0.0.1:36001``.
        split: ``"test"`` (goals 0-499) or ``"train"`` (500 to ``num_goals - 1``).
        num_goals: how many goals the server holds (needed for the train split).
        max_steps: actions before an episode ends without a purchase.
        goal: play this goal whenever ``reset()`` gets no task.
        success_reward: reward when the server's score is 1.0.
        reward_mode: ``"success"`` or ``"score"``, as for :class:`~envs.webshop.WebShopEnv`.
        timeout_s: HTTP timeout per request.
        episode_seed: seeds the choice of goal when ``reset()`` gets no task.
    """

    def __init__(
        self,
        server_url: str,
        split: str = "test",
        num_goals: Optional[int] = None,
        max_steps: int = 15,
        goal: Optional[int] = None,
        success_reward: float = 10.0,
        reward_mode: str = "success",
        timeout_s: float = 30.0,
        episode_seed: int = 0,
    ) -> None:
        self.base = check_server_url(server_url).rstrip("/")
        self.split = split
        self.num_goals = num_goals
        self.max_steps = max_steps
        self.fixed_goal = goal
        self.success_reward = success_reward
        self.reward_mode = check_reward_mode(reward_mode)
        self.timeout_s = timeout_s
        self._rng = random.Random(episode_seed)
        self._env_idx: Optional[int] = None
        self._task: Optional[int] = None
        self._steps = 0
        self._done = False
        self._score = 0.0

    def tasks(self) -> List[int]:
        """Goal indices of the split (0-499 for test; 500 to ``num_goals - 1`` for train)."""
        if self.split == "test":
            return list(range(NUM_TEST_GOALS))
        if self.split == "train":
            if self.num_goals is None:
                raise ValueError("webshop remote: give num_goals (the server's goal count) for the train split")
            return list(range(NUM_TEST_GOALS, self.num_goals))
        raise ValueError(f"webshop remote: split must be 'train' or 'test', got {self.split!r}")

    def reset(self, task: Optional[Any] = None) -> Tuple[str, Info]:
        if task is None:
            task = self.fixed_goal if self.fixed_goal is not None else self._rng.choice(self.tasks())
        if self._env_idx is None:
            self._env_idx = int(self._post("/create", {}))
        self._task, self._steps, self._done, self._score = int(task), 0, False, 0.0
        answer = self._post("/reset", {"env_idx": self._env_idx, "session_id": self._task})
        observation = answer[0] if isinstance(answer, list) else str(answer)
        return observation, self._info(invalid=False)

    def step(self, action: str) -> Tuple[str, float, bool, Info]:
        if self._env_idx is None:
            raise RuntimeError("webshop remote: call reset() before step()")
        if self._done:  # a finished episode stays finished until reset()
            return "", 0.0, True, self._info(invalid=True)
        available = self._actions()
        is_search = action.strip().lower().startswith("search[")
        invalid = not (is_search and available.get("has_search_bar")) and action not in _commands(available)
        answer = self._post("/step", {"env_idx": self._env_idx, "action": action})
        self._steps += 1
        self._done = bool(answer.get("done", False))
        if self._done:
            self._score = float(answer.get("reward") or 0.0)
        truncated = not self._done and self._steps >= self.max_steps
        self._done = self._done or truncated
        reward = purchase_reward(self._score, self.success_reward, self.reward_mode) if self._done and not truncated else 0.0
        info = self._info(invalid=invalid)
        info["truncated"] = truncated
        return str(answer.get("state", "")), reward, self._done, info

    def close(self) -> None:
        if self._env_idx is not None:
            try:
                self._post("/close", {"env_idx": self._env_idx})
            finally:
                self._env_idx = None

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, path: str, payload: Dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return json.loads(response.read().decode())

    def _get(self, path: str, **params: Any) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
            return json.loads(response.read().decode())

    def _actions(self) -> Dict[str, Any]:
        return self._get("/available_actions", env_idx=self._env_idx)

    def _admissible(self) -> List[str]:
        return [] if self._done else _commands(self._actions())

    def _info(self, invalid: bool) -> Info:
        return {
            "admissible_commands": self._admissible(),
            "task": self._task,
            "category": "webshop",
            "instruction": self._get("/instruction_text", env_idx=self._env_idx),
            "won": self._done and self._score == 1.0,
            "score": self._score,
            "invalid": invalid,
            "steps": self._steps,
        }


def _commands(available: Dict[str, Any]) -> List[str]:
    """Admissible commands from the server's ``{"has_search_bar", "clickables"}``."""
    search = [SEARCH_PLACEHOLDER] if available.get("has_search_bar") else []
    return search + [f"click[{c}]" for c in available.get("clickables", []) if c != "search"]

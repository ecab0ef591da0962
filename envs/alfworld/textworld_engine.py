"""The real engine: ALFWorld's TextWorld PDDL environment with ALFWorld's name wrapper, behind the python engine's interface."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

_OPEN = {"count": 0}


class TextWorldEngine:
    """Plays game files with TextWorld's PDDL engine (Fast Downward), as ALFWorld does.

    The planner library is process-wide, so only one instance may be open per process; switch
    games with ``load``. About 15-18 steps/s and 0.8 s per reset on a 2-core machine: use it for
    parity checks and for users who want the original, the python engine for training.
    """

    def __init__(self, game_file: Optional[str | os.PathLike] = None, planner: bool = False) -> None:
        if _OPEN["count"]:
            raise RuntimeError("engine: only one TextWorld PDDL environment can be open per process "
                               "(close the other, or use engine='python', or spread environments over Ray actors)")
        import textworld
        from alfworld.agents.environment.alfred_tw_env import AlfredDemangler
        from textworld.envs import PddlEnv

        infos = textworld.EnvInfos(won=True, admissible_commands=True, policy_commands=planner)
        self._env = AlfredDemangler(PddlEnv(infos), shuffle=False)
        _OPEN["count"] += 1
        self._closed = False
        self.policy_commands: List[str] = []
        if game_file is not None:
            self.load(game_file)

    def load(self, game_file: str | os.PathLike) -> None:
        self._env.load(str(game_file))

    def reset(self) -> Tuple[str, List[str], bool]:
        state = self._env.reset()
        self.policy_commands = list(state.get("policy_commands") or [])
        return state.feedback, list(state["admissible_commands"]), bool(state["won"])

    def step(self, command: str) -> Tuple[str, List[str], bool]:
        state, _, _ = self._env.step(command)
        return state.feedback, list(state["admissible_commands"]), bool(state["won"])

    def close(self) -> None:
        if not self._closed:
            self._env.close()
            _OPEN["count"] -= 1
            self._closed = True

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

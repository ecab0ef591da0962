"""The text-environment protocol every environment follows, and the registry behind `envs.make`."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple, runtime_checkable

Info = Dict[str, Any]


@runtime_checkable
class TextEnv(Protocol):
    """A multi-turn text environment.

    ``reset(task)`` starts an episode on a task instance (an ALFWorld game file, a WebShop goal
    index...) or, with ``task=None``, on one the environment picks; it returns the observation
    text and an info dict with at least:

    * ``admissible_commands``: list[str], the actions the agent may take now (no ``help``);
    * ``task``: the id of the task instance (what an episode group shares);
    * ``category``: the task category used in per-category results (e.g. ``Pick``);
    * ``won``: bool.

    ``step(action)`` returns ``(observation, reward, done, info)`` with the same keys in ``info``.
    """

    def reset(self, task: Optional[Any] = None) -> Tuple[str, Info]: ...

    def step(self, action: str) -> Tuple[str, float, bool, Info]: ...

    def tasks(self) -> List[Any]:
        """The task instances this environment can be reset to (e.g. the game files of its split)."""
        ...

    def close(self) -> None: ...


_REGISTRY: Dict[str, Callable[..., TextEnv]] = {}


def register(name: str, factory: Callable[..., TextEnv]) -> None:
    """Make ``envs.make(name, **config)`` call ``factory(**config)``."""
    _REGISTRY[name] = factory


def registered() -> List[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def factory(name: str) -> Callable[..., TextEnv]:
    """The function that builds the registered environment ``name``."""
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"env: unknown environment {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def make(name: str, **config: Any) -> TextEnv:
    """Build a registered environment: ``make("alfworld", engine="python", game=path)``."""
    return factory(name)(**config)


def _load_builtin() -> None:
    # Importing an environment's package registers it; imported lazily so `envs` stays light.
    import importlib

    for module in ("envs.alfworld", "envs.webshop"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name != module:
                raise

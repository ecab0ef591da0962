"""The text-environment protocol every environment follows, and the registry behind `envs.make`."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Protocol, Sequence, Tuple, runtime_checkable

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


def _no_task(observation: str, info: Info) -> str:
    return str(info.get("instruction", "") or "")


def _all_admissible(admissible: Sequence[str], task: str) -> List[str]:
    return list(admissible)


def _unchanged(options: Dict[str, Any], workdir: Path, splits: Sequence[str]) -> Dict[str, Any]:
    return dict(options)


@dataclass(frozen=True)
class ResultColumn:
    """One column of a results table: a quantity of the final evaluation's episodes, in the table's unit."""

    label: str
    quantity: str = "success"
    """``success`` (overall, or of ``category``), or another per-episode mean such as ``score``."""
    category: Optional[str] = None
    scale: float = 100.0
    """Percent by default."""


@dataclass(frozen=True)
class EnvSpec:
    """What an agent and a trainer need to know about an environment, besides how to build it.

    The training job reads everything environment-specific from here, so that adding an environment
    is a package under ``envs/`` and one :func:`register` call.
    """

    intro: str = "You are an expert agent acting in a text environment."
    """First line of a chat model's prompt: who the agent is and where."""
    train_split: str = "train"
    eval_split: str = "test"
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Factory options of the reference runs; a run's own options are applied on top."""
    task_text: Callable[[str, Info], str] = _no_task
    """The task of an episode from its first observation and info (empty: the prompt has no task line)."""
    candidates: Callable[[Sequence[str], str], List[str]] = _all_admissible
    """The concrete actions a policy may choose from, given the admissible commands and the task text."""
    prepare: Callable[[Dict[str, Any], Path, Sequence[str]], Dict[str, Any]] = _unchanged
    """``prepare(options, workdir, splits)``: a run's options made into factory options, preparing the splits'
    data under ``workdir`` when needed (e.g. generating games). Called once per run, before any model work."""
    prepare_options: FrozenSet[str] = frozenset()
    """Options that ``prepare`` consumes (they are not factory arguments)."""
    options: Optional[FrozenSet[str]] = None
    """The factory's option names; None: read from its signature (anything goes if it takes ``**kwargs``)."""
    check_options: Callable[[Mapping[str, Any]], None] = lambda options: None
    """Raises (naming ``env.options.<key>``) for bad option values that can be told before any work."""
    task_key: Callable[[Any], str] = str
    """A stable identity of a task, the same wherever its data lives (keys of evaluation task lists)."""
    location_options: FrozenSet[str] = frozenset()
    """Options that say where data lives rather than what it is (left out of evaluation keys)."""
    corpus: Callable[[Info], List[str]] = lambda info: []
    """Extra texts of an episode worth training a tokenizer on (e.g. a WebShop instruction)."""
    categories: Tuple[str, ...] = ()
    """The task categories of its episodes (``info["category"]``), in the order results tables list them."""
    result_columns: Tuple[ResultColumn, ...] = (ResultColumn("success"),)
    """Its columns in a results table of methods (the paper's table), in order."""
    play_options: Callable[[], Dict[str, Any]] = dict
    """Options ``proxmo play`` starts from when none are given (e.g. a bundled game)."""


_REGISTRY: Dict[str, Callable[..., TextEnv]] = {}
_SPECS: Dict[str, EnvSpec] = {}


def register(name: str, factory: Callable[..., TextEnv], spec: Optional[EnvSpec] = None) -> None:
    """Make ``envs.make(name, **config)`` call ``factory(**config)``; ``spec`` tells trainers about it.

    Registering another factory under a taken name raises (registering the same one again, as a module
    reload does, is allowed).
    """
    known = _REGISTRY.get(name)
    if known is not None and _qualified(known) != _qualified(factory):
        raise ValueError(f"env: {name!r} is already registered (to {_qualified(known)}); pick another name")
    _REGISTRY[name] = factory
    _SPECS[name] = spec or EnvSpec()


def _qualified(function: Callable[..., Any]) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


def spec(name: str) -> EnvSpec:
    """The :class:`EnvSpec` of the registered environment ``name``."""
    factory(name)
    return _SPECS[name]


def option_names(name: str) -> Optional[FrozenSet[str]]:
    """Every option a run may give environment ``name`` (None when its factory takes any keyword)."""
    env_spec = spec(name)
    if env_spec.options is not None:
        return env_spec.options | env_spec.prepare_options
    parameters = inspect.signature(factory(name)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return frozenset(names) | env_spec.prepare_options


def check_options(name: str, options: Mapping[str, Any], where: str = "env.options") -> None:
    """Raise naming ``<where>.<key>`` for an option environment ``name`` does not take."""
    allowed = option_names(name)
    if allowed is None:
        return
    for key in options:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: {name} has no option {key!r}; its options are {sorted(allowed)}")


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

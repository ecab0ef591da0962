"""The two backends of the environment pool, running the same per-environment code (:class:`EnvBatch`): every
environment in this process (:class:`LocalBackend`), or in Ray actors, ``envs_per_actor`` contiguous slots per
actor, one remote call per actor that has work (:class:`RayBackend`). A failed environment or a dead actor never
crashes a batch: its episodes end *aborted* and it is replaced."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from envs.base import Info, TextEnv
from envs.cluster import start_ray

logger = logging.getLogger(__name__)

Factory = Callable[..., TextEnv]

# What a worker answers for one environment: ("ok", value) or ("error", "<text>").
Outcome = Tuple[str, Any]


ACTOR_NUM_CPUS = 0.0
"""CPUs one environment actor reserves by default. Environment steps are light next to the policy,
and any reservation would let a big pool (16 actors x 0.25 = 4 CPUs) starve or block the training
job on a 2-core machine, so none is reserved; pass ``actor_num_cpus`` to spread actors by CPU."""


ACTOR_START_TIMEOUT_S = 120.0
"""How long the pool waits for its actors to build their environments before it gives up."""


BUILD_PROGRESS_FROM = 256
"""A batch of at least this many environments logs its building progress (every tenth built)."""


def aborted_info(error: str, task: Any = None, category: Any = None) -> Info:
    """The info dict of an episode that ended because its environment or actor failed."""
    return {
        "aborted": True,
        "error": error,
        "won": False,
        "task": task,
        "category": category,
        "admissible_commands": [],
    }


def describe_error(error: BaseException) -> str:
    """A one-line text for an exception: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class EnvBatch:
    """A list of environments built from one factory; the unit of work of both backends.

    Used in-process by the local backend and as the class of a Ray actor by the ray backend.
    Every call handles a batch of ``(index, argument)`` requests and answers one :data:`Outcome`
    per request; an environment that raises is reported as an error and rebuilt on its next use.
    """

    def __init__(self, factory: Factory, config: Mapping[str, Any], count: int) -> None:
        self._factory = factory
        self._config = dict(config)
        self._envs: List[Optional[TextEnv]] = []
        step = max(1, count // 10)
        for index in range(count):  # a large batch says how far it is (every tenth)
            self._envs.append(self._build())
            if count >= BUILD_PROGRESS_FROM and ((index + 1) % step == 0 or index + 1 == count):
                logger.info("built %d of %d environments", index + 1, count)

    def _build(self) -> TextEnv:
        return self._factory(**self._config)

    def _env(self, index: int) -> TextEnv:
        env = self._envs[index]
        if env is None:  # replaced after a failure
            env = self._envs[index] = self._build()
        return env

    def _discard(self, index: int) -> None:
        """Drop a failed environment (closing it if it still can), so the next use builds a new one."""
        env, self._envs[index] = self._envs[index], None
        if env is not None:
            try:
                env.close()
            except Exception:  # it already failed; closing is best effort
                pass

    def _guarded(self, index: int, call: Callable[[TextEnv], Any]) -> Outcome:
        try:
            return ("ok", call(self._env(index)))
        except Exception as error:  # any environment failure aborts only this episode
            self._discard(index)
            return ("error", describe_error(error))

    def reset_many(self, requests: Sequence[Tuple[int, Any]]) -> List[Outcome]:
        """Reset environment ``index`` to ``task`` for every ``(index, task)``; answers ``(obs, info)``."""
        return [self._guarded(index, lambda env, t=task: tuple(env.reset(task=t))) for index, task in requests]

    def step_many(self, requests: Sequence[Tuple[int, str]]) -> List[Outcome]:
        """Step environment ``index`` with ``action`` for every ``(index, action)``; answers the 4-tuple."""
        return [self._guarded(index, lambda env, a=action: tuple(env.step(a))) for index, action in requests]

    def close_all(self) -> None:
        """Close every environment (best effort)."""
        for index in range(len(self._envs)):
            self._discard(index)

    def pid(self) -> int:
        """The process id the environments run in (lets tests and operators find an actor's process)."""
        return os.getpid()


@dataclass
class BatchAnswer:
    """What a backend returns for one batched call."""

    outcomes: Dict[int, Outcome] = field(default_factory=dict)
    """One outcome per requested slot."""
    lost: Dict[int, str] = field(default_factory=dict)
    """Slots whose environment was lost with its actor (requested or not), with the error text."""


class LocalBackend:
    """All environments in this process, in one :class:`EnvBatch`."""

    def __init__(self, factory: Factory, config: Mapping[str, Any], n_slots: int) -> None:
        self._batch = EnvBatch(factory, config, n_slots)

    def call(self, method: str, requests: Mapping[int, Any]) -> BatchAnswer:
        """Run ``method`` ("reset_many" or "step_many") on the requested slots."""
        items = sorted(requests.items())
        outcomes = getattr(self._batch, method)(items)
        return BatchAnswer(outcomes=dict(zip((slot for slot, _ in items), outcomes)))

    def close(self) -> None:
        self._batch.close_all()


class RayBackend:
    """Environments in Ray actors, ``envs_per_actor`` contiguous slots each; one remote call per actor."""

    def __init__(
        self,
        factory: Factory,
        config: Mapping[str, Any],
        n_slots: int,
        envs_per_actor: int,
        num_cpus: float = ACTOR_NUM_CPUS,
        start_timeout_s: float = ACTOR_START_TIMEOUT_S,
    ) -> None:
        import ray

        self._ray = ray
        self._actor_class = ray.remote(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)(EnvBatch)
        self._factory = factory
        self._config = dict(config)
        self._n_slots = n_slots
        self._per_actor = envs_per_actor
        n_actors = -(-n_slots // envs_per_actor)
        self.actors: List[Any] = [self._start_actor(a) for a in range(n_actors)]
        """The actor handles, actor ``a`` holding slots ``a * envs_per_actor`` onwards."""
        self._wait_ready(start_timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        """Wait until every actor has built its environments, so a bad config fails here, clearly."""
        try:
            self._ray.get([actor.pid.remote() for actor in self.actors], timeout=timeout_s)
        except self._ray.exceptions.GetTimeoutError as error:
            message = (
                f"env pool: {len(self.actors)} environment actors did not start within {timeout_s:g} s "
                "(not enough free CPUs for actor_num_cpus? see ray.available_resources())"
            )
            self._kill_all()
            raise RuntimeError(message) from error
        except self._ray.exceptions.RayError as error:
            self._kill_all()
            lines = str(error).strip().splitlines() or [""]  # the last line names the factory's own error
            raise RuntimeError(f"env pool: could not start the environment actors: {lines[-1].strip()}") from error

    def _slots_of(self, actor: int) -> range:
        return range(actor * self._per_actor, min((actor + 1) * self._per_actor, self._n_slots))

    def _start_actor(self, actor: int) -> Any:
        return self._actor_class.remote(self._factory, self._config, len(self._slots_of(actor)))

    def _restart(self, actor: int, error: str) -> Dict[int, str]:
        """Replace a failed actor with a fresh one; answers the slots it held, with the error text."""
        logger.warning("env pool: actor %d failed (%s); restarting it with fresh environments", actor, error)
        try:
            self._ray.kill(self.actors[actor], no_restart=True)
        except Exception:  # already dead
            pass
        self.actors[actor] = self._start_actor(actor)
        return {slot: f"actor {actor} died: {error}" for slot in self._slots_of(actor)}

    def call(self, method: str, requests: Mapping[int, Any]) -> BatchAnswer:
        """Run ``method`` on the requested slots: one remote call per actor, gathered together."""
        by_actor: Dict[int, List[Tuple[int, Any]]] = {}
        for slot, argument in sorted(requests.items()):
            by_actor.setdefault(slot // self._per_actor, []).append((slot, argument))
        refs = {
            actor: getattr(self.actors[actor], method).remote([(slot % self._per_actor, arg) for slot, arg in items])
            for actor, items in by_actor.items()
        }
        answer = BatchAnswer()
        for actor, ref in refs.items():
            slots = [slot for slot, _ in by_actor[actor]]
            try:
                answer.outcomes.update(zip(slots, self._ray.get(ref)))
            except self._ray.exceptions.RayError as error:
                logger.debug("env pool: actor %d failed", actor, exc_info=error)
                lost = self._restart(actor, describe_error(error))
                answer.lost.update(lost)
                answer.outcomes.update((slot, ("error", lost[slot])) for slot in slots)
        return answer

    def close(self) -> None:
        """Close the environments (briefly waiting for it) and end the actors."""
        closing = [actor.close_all.remote() for actor in self.actors]
        try:
            self._ray.wait(closing, num_returns=len(closing), timeout=5.0)
        except Exception:  # actors that are already gone have nothing to close
            pass
        self._kill_all()

    def _kill_all(self) -> None:
        """End every actor at once, without asking the environments to close."""
        for actor in self.actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # already dead
                pass
        self.actors = []


def start_pool_ray(address: Optional[str], init_kwargs: Optional[Mapping[str, Any]]) -> bool:
    """:func:`envs.cluster.start_ray`; a local start takes 2 CPUs unless ``init_kwargs`` say otherwise."""
    kwargs: Dict[str, Any] = dict(init_kwargs or {})
    if address is None:
        kwargs.setdefault("num_cpus", 2)
    return start_ray(address, **kwargs)


__all__ = ["ACTOR_NUM_CPUS", "ACTOR_START_TIMEOUT_S", "BUILD_PROGRESS_FROM", "BatchAnswer", "EnvBatch", "LocalBackend",
           "Outcome", "RayBackend", "aborted_info", "describe_error", "start_pool_ray"]

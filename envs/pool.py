"""The grouped environment pool: K groups x n environments, each group playing one task instance.

A group rollout needs ``n_groups * group_size`` environments where the ``group_size`` members of a
group play the same task instance. :class:`EnvPool` owns them, addressed by *slot*
``g * group_size + i`` (group ``g``, member ``i``), and steps them in batches.

Two backends run the same per-environment code (:class:`_EnvBatch`), so for the same actions they
give the same trajectories:

* ``"local"``: every environment lives in this process;
* ``"ray"``: environments live in Ray actors, ``envs_per_actor`` contiguous slots per actor, and
  each ``reset``/``step`` makes one remote call per actor that has work, not one per environment.

Failures never crash a batch. An environment that raises, or an actor that dies (its process
killed, an out-of-memory kill...), ends the episodes it was running as *aborted*: ``done=True``,
``reward=0.0`` and ``info = {"aborted": True, "error": "<text>", "won": False, ...}``, with a
warning in the log. The broken environment (or the whole actor) is replaced by a fresh one, so the
next ``reset`` works as usual.

Ray workers must be able to import the environment's factory: the pool sends the registered factory
to the actors (pickled by reference to its module). Environments in an installed package (``envs``)
always are; Ray also puts the driver's working directory on the workers' ``sys.path``; anything else
(a factory in a test folder run from elsewhere) needs ``runtime_env={"env_vars": {"PYTHONPATH": ...}}``
in ``ray_init_kwargs`` or in the caller's own ``ray.init``.
"""

from __future__ import annotations

import logging
import numbers
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Literal, Mapping, NamedTuple, Optional, Sequence, Tuple

from envs.base import Info, TextEnv, factory as registered_factory
from envs.cluster import start_ray

logger = logging.getLogger(__name__)

Backend = Literal["local", "ray"]
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


class StepResult(NamedTuple):
    """One environment's answer to a step; unpacks like the protocol's 4-tuple."""

    observation: str
    reward: float
    done: bool
    info: Info


class EnvPoolError(ValueError):
    """Raised for misuse of the pool (wrong number of tasks, unknown or finished slots, a closed pool)."""


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


def _describe(error: BaseException) -> str:
    """A one-line text for an exception: its type and the first line of its message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class _EnvBatch:
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
            return ("error", _describe(error))

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
class _BatchAnswer:
    """What a backend returns for one batched call."""

    outcomes: Dict[int, Outcome] = field(default_factory=dict)
    """One outcome per requested slot."""
    lost: Dict[int, str] = field(default_factory=dict)
    """Slots whose environment was lost with its actor (requested or not), with the error text."""


class _LocalBackend:
    """All environments in this process, in one :class:`_EnvBatch`."""

    def __init__(self, factory: Factory, config: Mapping[str, Any], n_slots: int) -> None:
        self._batch = _EnvBatch(factory, config, n_slots)

    def call(self, method: str, requests: Mapping[int, Any]) -> _BatchAnswer:
        """Run ``method`` ("reset_many" or "step_many") on the requested slots."""
        items = sorted(requests.items())
        outcomes = getattr(self._batch, method)(items)
        return _BatchAnswer(outcomes=dict(zip((slot for slot, _ in items), outcomes)))

    def close(self) -> None:
        self._batch.close_all()


class _RayBackend:
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
        self._actor_class = ray.remote(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)(_EnvBatch)
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

    def call(self, method: str, requests: Mapping[int, Any]) -> _BatchAnswer:
        """Run ``method`` on the requested slots: one remote call per actor, gathered together."""
        by_actor: Dict[int, List[Tuple[int, Any]]] = {}
        for slot, argument in sorted(requests.items()):
            by_actor.setdefault(slot // self._per_actor, []).append((slot, argument))
        refs = {
            actor: getattr(self.actors[actor], method).remote([(slot % self._per_actor, arg) for slot, arg in items])
            for actor, items in by_actor.items()
        }
        answer = _BatchAnswer()
        for actor, ref in refs.items():
            slots = [slot for slot, _ in by_actor[actor]]
            try:
                answer.outcomes.update(zip(slots, self._ray.get(ref)))
            except self._ray.exceptions.RayError as error:
                logger.debug("env pool: actor %d failed", actor, exc_info=error)
                lost = self._restart(actor, _describe(error))
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


def _start_ray(address: Optional[str], init_kwargs: Optional[Mapping[str, Any]]) -> bool:
    """:func:`envs.cluster.start_ray`; a local start takes 2 CPUs unless ``init_kwargs`` say otherwise."""
    kwargs: Dict[str, Any] = dict(init_kwargs or {})
    if address is None:
        kwargs.setdefault("num_cpus", 2)
    return start_ray(address, **kwargs)


class EnvPool:
    """``n_groups`` groups of ``group_size`` environments; slot ``g * group_size + i`` is member ``i`` of group ``g``.

    Typical use::

        with EnvPool("alfworld", {"engine": "python"}, n_groups=4, group_size=8) as pool:
            observations, infos = pool.reset(tasks)          # one task id per group, or None
            while pool.active:
                results = pool.step({slot: policy(observations[slot]) for slot in pool.active})
                for slot, (obs, reward, done, info) in results.items():
                    ...

    Args:
        env_name: a name registered with ``envs.register`` (``envs.make(env_name, **env_config)``).
        env_config: keyword arguments of the environment factory.
        n_groups: number of groups K (>= 1).
        group_size: environments per group n (>= 1).
        backend: ``"local"`` (in-process) or ``"ray"`` (environment actors).
        envs_per_actor: environments one Ray actor holds (ray backend; the last actor may hold fewer).
        ray_address: the address of a Ray cluster to join when Ray is not yet initialised.
        ray_init_kwargs: extra ``ray.init`` arguments when the pool initialises Ray itself.
        actor_num_cpus: CPUs each Ray actor reserves (default none, see :data:`ACTOR_NUM_CPUS`).
        actor_start_timeout_s: how long to wait for the Ray actors to build their environments.
    """

    def __init__(
        self,
        env_name: str,
        env_config: Optional[Mapping[str, Any]],
        n_groups: int,
        group_size: int,
        backend: Backend = "local",
        envs_per_actor: int = 8,
        ray_address: Optional[str] = None,
        ray_init_kwargs: Optional[Mapping[str, Any]] = None,
        actor_num_cpus: float = ACTOR_NUM_CPUS,
        actor_start_timeout_s: float = ACTOR_START_TIMEOUT_S,
    ) -> None:
        _check_sizes(n_groups=n_groups, group_size=group_size, envs_per_actor=envs_per_actor)
        if backend not in ("local", "ray"):
            raise ValueError(f"env pool: backend must be 'local' or 'ray', got {backend!r}")
        if actor_num_cpus < 0:
            raise ValueError(f"env pool: actor_num_cpus must be >= 0, got {actor_num_cpus}")
        factory = registered_factory(env_name)
        self.env_name = env_name
        self.n_groups = n_groups
        self.group_size = group_size
        self.backend_name: Backend = backend
        self._owns_ray = False
        self._active: set[int] = set()
        self._tasks: List[Any] = [None] * self.n_slots
        self._categories: List[Any] = [None] * self.n_slots
        self._closed = False
        self._backend: _LocalBackend | _RayBackend
        if backend == "local":
            self._backend = _LocalBackend(factory, env_config or {}, self.n_slots)
        else:
            self._owns_ray = _start_ray(ray_address, ray_init_kwargs)
            try:
                self._backend = _RayBackend(
                    factory, env_config or {}, self.n_slots, envs_per_actor, actor_num_cpus, actor_start_timeout_s
                )
            except BaseException:
                self._shutdown_ray()
                raise

    # -- shape -------------------------------------------------------------------------------

    @property
    def n_slots(self) -> int:
        """Total number of environments, ``n_groups * group_size``."""
        return self.n_groups * self.group_size

    @property
    def active(self) -> List[int]:
        """The slots whose episodes are running (reset and not yet done), in ascending order."""
        return sorted(self._active)

    def group_of(self, slot: int) -> int:
        """The group a slot belongs to."""
        self._check_slot(slot)
        return slot // self.group_size

    def slots_of(self, group: int) -> range:
        """The slots of group ``group``."""
        if not 0 <= group < self.n_groups:
            raise EnvPoolError(f"env pool: unknown group {group!r}; groups are 0..{self.n_groups - 1}")
        return range(group * self.group_size, (group + 1) * self.group_size)

    # -- episodes ----------------------------------------------------------------------------

    def reset(self, tasks: Optional[Sequence[Any]] = None) -> Tuple[List[str], List[Info]]:
        """Start a new episode in every slot; every member of group ``g`` plays ``tasks[g]``.

        With ``tasks=None`` (or a ``None`` entry for a group) the group's first member picks a task
        (``reset(None)``) and the other members are reset to its ``info["task"]``, so the whole group
        plays one instance. A slot whose reset fails is reported aborted (observation ``""``,
        ``info["aborted"]``) and is not active; a dead actor is restarted and its resets tried once more.

        Returns:
            ``(observations, infos)``, both of length ``n_slots``, indexed by slot.
        """
        self._check_open()
        group_tasks = self._group_tasks(tasks)
        self._active.clear()
        results: Dict[int, Tuple[str, Info]] = {}
        leaders = {self.slots_of(g)[0]: None for g in range(self.n_groups) if group_tasks[g] is None}
        results.update(self._reset_slots(leaders)[0])
        for leader in leaders:
            group_tasks[leader // self.group_size] = self._chosen_task(results, leader)
        followers = {
            slot: group_tasks[g]
            for g in range(self.n_groups)
            for slot in self.slots_of(g)
            if slot not in results and group_tasks[g] is not _NO_TASK
        }
        follower_results, lost = self._reset_slots(followers)
        results.update(follower_results)
        # A first member reset earlier on an actor that has died since must be reset again.
        stale = {
            slot: group_tasks[slot // self.group_size]
            for slot in lost
            if slot in leaders and group_tasks[slot // self.group_size] is not _NO_TASK
        }
        results.update(self._reset_slots(stale)[0])
        for g in range(self.n_groups):
            for slot in self.slots_of(g):
                if slot not in results:  # its group's first member failed: no instance to share
                    results[slot] = ("", aborted_info(f"the first member of group {g} failed to reset"))
        self._record_resets(results, group_tasks)
        return [results[s][0] for s in range(self.n_slots)], [results[s][1] for s in range(self.n_slots)]

    def step(self, actions: Mapping[int, str]) -> Dict[int, StepResult]:
        """Step the named active slots, one action each, in one batch.

        Args:
            actions: ``{slot: action}``; every slot must be active (reset and not done).

        Returns:
            ``{slot: StepResult(observation, reward, done, info)}`` for every named slot, plus any
            other active slot whose episode was aborted in this call because its actor died.
            Slots that come back ``done`` leave :attr:`active`.
        """
        self._check_open()
        self._check_actions(actions)
        answer = self._backend.call("step_many", {int(slot): action for slot, action in actions.items()})
        results: Dict[int, StepResult] = {}
        for slot, (status, value) in answer.outcomes.items():
            results[slot] = self._step_result(slot, status, value)
        for slot, error in answer.lost.items():
            if slot in self._active and slot not in results:
                results[slot] = self._aborted(slot, error)
        for slot, result in results.items():
            if result.done:
                self._active.discard(slot)
        return results

    def close(self) -> None:
        """Close every environment, end the actors, and shut Ray down if this pool started it."""
        if self._closed:
            return
        self._closed = True
        self._active.clear()
        try:
            self._backend.close()
        finally:
            self._shutdown_ray()

    def __enter__(self) -> "EnvPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _group_tasks(self, tasks: Optional[Sequence[Any]]) -> List[Any]:
        """One task per group (``None``: the group's first member picks), checking the count."""
        if tasks is None:
            return [None] * self.n_groups
        if isinstance(tasks, (str, bytes, Mapping)) or not hasattr(tasks, "__iter__"):
            raise EnvPoolError(f"env pool: reset takes a list with one task per group, got {type(tasks).__name__}")
        group_tasks = list(tasks)
        if len(group_tasks) != self.n_groups:
            raise EnvPoolError(
                f"env pool: reset needs one task per group: got {len(group_tasks)} tasks for {self.n_groups} groups"
            )
        return group_tasks

    def _reset_slots(self, requests: Mapping[int, Any]) -> Tuple[Dict[int, Tuple[str, Info]], set[int]]:
        """Reset the requested slots; slots lost with a dead actor are tried once more.

        Returns:
            ``(results, lost)``: ``slot -> (observation, info)`` for every requested slot, and every
            slot (requested or not) whose environment was lost with an actor meanwhile.
        """
        if not requests:
            return {}, set()
        answer = self._backend.call("reset_many", requests)
        lost = set(answer.lost)
        retry = {slot: requests[slot] for slot in requests if slot in answer.lost}
        if retry:
            second = self._backend.call("reset_many", retry)
            answer.outcomes.update(second.outcomes)
            lost.update(second.lost)
        results: Dict[int, Tuple[str, Info]] = {}
        for slot, (status, value) in answer.outcomes.items():
            if status == "ok":
                observation, info = value
                results[slot] = (observation, dict(info))
            else:
                logger.warning("env pool: slot %d failed to reset to task %r: %s", slot, requests[slot], value)
                results[slot] = ("", aborted_info(str(value), task=requests[slot]))
        return results, lost

    def _chosen_task(self, results: Mapping[int, Tuple[str, Info]], leader: int) -> Any:
        """The task a group's first member picked, or ``_NO_TASK`` if its reset failed."""
        info = results[leader][1]
        if info.get("aborted"):
            return _NO_TASK
        if "task" not in info:
            raise EnvPoolError(
                f"env pool: {self.env_name!r} reset(None) returned no info['task'] (slot {leader}), "
                "so the other members of its group cannot be reset to the same instance"
            )
        return info["task"]

    def _record_resets(self, results: Mapping[int, Tuple[str, Info]], tasks: Sequence[Any]) -> None:
        for slot, (_, info) in results.items():
            task = tasks[slot // self.group_size]
            self._tasks[slot] = info.get("task", None if task is _NO_TASK else task)
            self._categories[slot] = info.get("category")
            if not info.get("aborted"):
                self._active.add(slot)

    def _step_result(self, slot: int, status: str, value: Any) -> StepResult:
        if status != "ok":
            return self._aborted(slot, str(value))
        observation, reward, done, info = value
        return StepResult(observation, float(reward), bool(done), dict(info))

    def _aborted(self, slot: int, error: str) -> StepResult:
        logger.warning("env pool: episode in slot %d (task %r) aborted: %s", slot, self._tasks[slot], error)
        return StepResult("", 0.0, True, aborted_info(error, self._tasks[slot], self._categories[slot]))

    def _check_actions(self, actions: Mapping[int, str]) -> None:
        if not isinstance(actions, Mapping):
            raise EnvPoolError(f"env pool: step takes a dict {{slot: action}}, got {type(actions).__name__}")
        for slot in actions:
            self._check_slot(slot)
        finished = sorted(int(slot) for slot in actions if slot not in self._active)
        if finished:
            raise EnvPoolError(
                f"env pool: slots {finished} are not active (episode finished or not reset); active: {self.active}"
            )

    def _check_slot(self, slot: Any) -> None:
        if not isinstance(slot, numbers.Integral) or isinstance(slot, bool) or not 0 <= slot < self.n_slots:
            raise EnvPoolError(f"env pool: unknown slot {slot!r}; slots are 0..{self.n_slots - 1}")

    def _check_open(self) -> None:
        if self._closed:
            raise EnvPoolError("env pool: the pool is closed")

    def _shutdown_ray(self) -> None:
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False


_NO_TASK = object()
"""Marks a group whose first member failed to reset, so it has no task instance to share."""


def _check_sizes(**sizes: int) -> None:
    """Reject sizes that are not positive integers, naming the argument."""
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"env pool: {name} must be a positive integer, got {value!r}")

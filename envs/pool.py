"""The grouped environment pool: K groups x n environments, each group playing one task instance.

A group rollout needs ``n_groups * group_size`` environments where the ``group_size`` members of a
group play the same task instance. :class:`EnvPool` owns them, addressed by *slot*
``g * group_size + i`` (group ``g``, member ``i``), and steps them in batches.

Two backends (``envs.backends``) run the same per-environment code (:class:`~envs.backends.EnvBatch`), so for the
same actions they give the same trajectories:

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
from typing import Any, Callable, Dict, List, Literal, Mapping, NamedTuple, Optional, Sequence, Tuple

from envs.backends import (ACTOR_NUM_CPUS, ACTOR_START_TIMEOUT_S, LocalBackend, RayBackend,
                           aborted_info, start_pool_ray)
from envs.base import Info, TextEnv, factory as registered_factory

logger = logging.getLogger(__name__)

Backend = Literal["local", "ray"]
Factory = Callable[..., TextEnv]




class StepResult(NamedTuple):
    """One environment's answer to a step; unpacks like the protocol's 4-tuple."""

    observation: str
    reward: float
    done: bool
    info: Info


class EnvPoolError(ValueError):
    """Raised for misuse of the pool (wrong number of tasks, unknown or finished slots, a closed pool)."""


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
        self._backend: LocalBackend | RayBackend
        if backend == "local":
            self._backend = LocalBackend(factory, env_config or {}, self.n_slots)
        else:
            self._owns_ray = start_pool_ray(ray_address, ray_init_kwargs)
            try:
                self._backend = RayBackend(
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

"""The grouped environment pool: grouping, batched stepping, both backends, and failure handling.

The Ray tests share one Ray session (module fixture ``ray_session``). Workers find the toy
environment module (``tests.envs.toy``) because the fixture puts the repository root on
``PYTHONPATH`` before ``ray.init``: the local Ray processes it starts inherit the variable, so the
tests pass from any working directory. (A job-level ``runtime_env={"env_vars": ...}`` works too but
makes every actor start about a second slower, since prestarted workers cannot be used.)
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

import tests.envs.toy  # noqa: F401  (registers "toy")
from envs import EnvPool, EnvPoolError
from envs.backends import start_pool_ray as _start_ray

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """One small local Ray session for every Ray test of this module."""
    ray = pytest.importorskip("ray")
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), saved) if p)
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            object_store_memory=80 * 1024 * 1024,
            _temp_dir=temp_dir,
            log_to_driver=False,
        )
        yield
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        shutil.rmtree(temp_dir, ignore_errors=True)


def toy_pool(backend: str, n_groups: int = 2, group_size: int = 3) -> EnvPool:
    """A toy pool of 2 groups x 3; with Ray, 4 envs per actor so that group 1 straddles two actors."""
    return EnvPool("toy", {}, n_groups=n_groups, group_size=group_size, backend=backend, envs_per_actor=4)


@pytest.fixture(scope="module")
def ray_pool(ray_session: None) -> Iterator[EnvPool]:
    """One Ray-backed toy pool shared by the Ray tests (each test starts with a reset), to save actor starts."""
    with toy_pool("ray") as pool:
        yield pool


@pytest.fixture(params=["local", "ray"])
def pool(request: pytest.FixtureRequest) -> Iterator[EnvPool]:
    """A toy pool with each backend in turn: a fresh local one, or the shared Ray one."""
    if request.param == "ray":
        yield request.getfixturevalue("ray_pool")
        return
    with toy_pool("local") as local:
        yield local


def run_episodes(pool: EnvPool, tasks: List[int], policy) -> List[Tuple]:
    """Reset to ``tasks`` and step every active slot with ``policy(slot, t)`` until all are done."""
    observations, infos = pool.reset(tasks)
    trace: List[Tuple] = [("reset", tuple(observations), tuple(i["task"] for i in infos))]
    t = 0
    while pool.active:
        results = pool.step({slot: policy(slot, t) for slot in pool.active})
        rows = sorted((s, r.observation, r.reward, r.done, r.info["won"]) for s, r in results.items())
        trace.append(("step", t, tuple(rows)))
        t += 1
    return trace


# -- Ray started by the pool itself (first, so that it runs before the shared session exists) -----


def test_ray_pool_starts_ray_itself_and_stops_it_on_close(tmp_path: Path) -> None:
    """In a fresh process: the pool initialises Ray under RAY_TMPDIR, writes nothing at home, shuts Ray down."""
    pytest.importorskip("ray")
    home, ray_tmp = tmp_path / "home", Path(tempfile.mkdtemp(prefix="rayp", dir="/tmp"))
    home.mkdir()
    script = textwrap.dedent(
        """
        import json, ray, tests.envs.toy
        from envs import EnvPool
        with EnvPool("toy", {}, n_groups=1, group_size=2, backend="ray",
                     ray_init_kwargs={"object_store_memory": 80 * 1024 * 1024, "log_to_driver": False}) as pool:
            started = ray.is_initialized()
            _, infos = pool.reset([3])
        print(json.dumps({"started": started, "after": ray.is_initialized(), "tasks": [i["task"] for i in infos]}))
        """
    )
    env = {**os.environ, "HOME": str(home), "RAY_TMPDIR": str(ray_tmp), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_AUTH_MODE", None)  # the pool must keep the auth token out of HOME by itself
    try:
        command = [sys.executable, "-c", script]
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == {"started": True, "after": False, "tasks": [3, 3]}
        assert any(ray_tmp.rglob("session_*")), "Ray did not use RAY_TMPDIR"
        assert list(home.iterdir()) == [], "Ray wrote to the home folder"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


# -- grouping ------------------------------------------------------------------------------------


def test_every_member_of_a_group_plays_its_group_task(pool: EnvPool) -> None:
    observations, infos = pool.reset([4, 1])
    assert [info["task"] for info in infos] == [4, 4, 4, 1, 1, 1]
    assert observations == ["task 4: start"] * 3 + ["task 1: start"] * 3
    assert pool.active == list(range(6))
    assert [pool.group_of(s) for s in range(6)] == [0, 0, 0, 1, 1, 1]


def test_reset_without_tasks_shares_the_first_members_pick() -> None:
    with toy_pool("local", n_groups=3, group_size=4) as pool:
        _, infos = pool.reset(None)
        picks = [infos[pool.slots_of(g)[0]]["task"] for g in range(3)]
        for g in range(3):
            assert [infos[s]["task"] for s in pool.slots_of(g)] == [picks[g]] * 4
        assert len(set(picks)) > 1, "the toy envs should pick different tasks, or this checks nothing"


def test_a_none_entry_lets_only_that_group_pick() -> None:
    with toy_pool("local") as pool:
        _, infos = pool.reset([None, 5])
        assert len({infos[s]["task"] for s in pool.slots_of(0)}) == 1
        assert [infos[s]["task"] for s in pool.slots_of(1)] == [5, 5, 5]


def test_a_failed_reset_aborts_those_slots_only() -> None:
    with toy_pool("local") as pool:
        observations, infos = pool.reset([99, 1])  # the toy has no task 99
        assert observations[:3] == [""] * 3
        assert all(i["aborted"] and "no task 99" in i["error"] and i["task"] == 99 for i in infos[:3])
        assert pool.active == [3, 4, 5]


# -- stepping ------------------------------------------------------------------------------------


def test_only_active_slots_step_and_episodes_end_at_different_times(pool: EnvPool) -> None:
    pool.reset([0, 2])  # task 0 lasts 1 step, task 2 lasts 3
    first = pool.step({slot: "go" for slot in pool.active})
    assert [first[s].done for s in range(6)] == [True] * 3 + [False] * 3
    assert pool.active == [3, 4, 5]
    with pytest.raises(EnvPoolError, match=r"slots \[0\] are not active"):
        pool.step({0: "go", 3: "go"})
    second = pool.step({3: "win", 4: "go"})  # a member may finish early; slot 5 sits this turn out
    assert set(second) == {3, 4}
    assert second[3].reward == 1.0 and second[3].done and second[3].info["won"]
    assert second[4].observation == "task 2: go at 2"
    assert pool.active == [4, 5]
    pool.step({4: "go", 5: "go"})
    last = pool.step({5: "go"})
    assert last[5].done and pool.active == []


def test_backends_give_identical_trajectories(ray_pool: EnvPool) -> None:
    def policy(slot: int, t: int) -> str:
        return "win" if (slot + t) % 5 == 4 else f"go{slot}"

    with toy_pool("local") as local:
        expected = run_episodes(local, [2, 5], policy) + run_episodes(local, [1, 3], policy)
    assert run_episodes(ray_pool, [2, 5], policy) + run_episodes(ray_pool, [1, 3], policy) == expected
    assert len(expected) > 4


# -- failures ------------------------------------------------------------------------------------


def test_env_exception_aborts_only_its_slot(pool: EnvPool, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="envs.pool")
    pool.reset([2, 2])
    results = pool.step({0: "go", 1: "raise", 4: "go"})
    assert results[1].done and results[1].reward == 0.0
    assert results[1].info["aborted"] is True and results[1].info["won"] is False
    assert "toy env exploded" in results[1].info["error"]
    assert results[1].info["task"] == 2
    assert not results[0].done and not results[4].done and "aborted" not in results[0].info
    assert pool.active == [0, 2, 3, 4, 5]
    assert "aborted" in caplog.text and "toy env exploded" in caplog.text
    _, infos = pool.reset([3, 3])  # the failed env was replaced by a fresh one
    assert pool.active == list(range(6)) and not any(i.get("aborted") for i in infos)
    assert pool.step({1: "go"})[1].observation == "task 3: go at 1"


def _kill_actor(pool: EnvPool, index: int, timeout_s: float = 30.0) -> None:
    """Kill an actor and wait until its process is gone (``ray.kill`` returns before it is)."""
    import time

    import ray

    actor = pool._backend.actors[index]
    pid = ray.get(actor.pid.remote())
    ray.kill(actor)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"actor process {pid} still alive {timeout_s} s after ray.kill")


def test_killed_actor_aborts_its_episodes_and_the_run_goes_on(
    ray_pool: EnvPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="envs.pool")
    pool = ray_pool
    pool.reset([2, 2])
    pool.step({slot: "go" for slot in pool.active})
    _kill_actor(pool, 0)  # holds slots 0-3
    results = pool.step({slot: "go" for slot in pool.active})
    for slot in range(4):
        assert results[slot].done and results[slot].reward == 0.0
        assert results[slot].info["aborted"] is True and results[slot].info["won"] is False
        assert "died" in results[slot].info["error"] and results[slot].info["task"] == 2
    assert [results[s].observation for s in (4, 5)] == ["task 2: go at 2"] * 2
    assert pool.active == [4, 5]
    assert pool.step({4: "go", 5: "go"})[5].done and pool.active == []
    assert "restarting" in caplog.text
    trace = run_episodes(pool, [0, 1], lambda s, t: "go")  # the next episodes run normally
    assert trace[0][2] == (0, 0, 0, 1, 1, 1) and len(trace) == 3 and pool.active == []


def test_actor_process_exit_aborts_named_and_unnamed_slots_on_it(ray_pool: EnvPool) -> None:
    pool = ray_pool
    pool.reset([2, 2])
    results = pool.step({4: "exit", 0: "go"})  # slot 4 kills actor 1, which also holds slot 5
    assert set(results) == {0, 4, 5}
    assert results[4].info["aborted"] and results[5].info["aborted"] and results[5].done
    assert results[0].info.get("aborted") is None
    assert pool.active == [0, 1, 2, 3]
    _, infos = pool.reset([1, 1])
    assert pool.active == list(range(6)) and [i["task"] for i in infos] == [1] * 6


def test_reset_retries_an_actor_that_died_between_episodes(ray_pool: EnvPool) -> None:
    pool = ray_pool
    _kill_actor(pool, 1)
    _, infos = pool.reset(None)  # group 1's first member (slot 3) is on actor 0, slots 4-5 on actor 1
    assert pool.active == list(range(6)) and not any(i.get("aborted") for i in infos)
    assert [i["task"] for i in infos[3:]] == [infos[3]["task"]] * 3
    assert pool.step({4: "go"})[4].observation == f"task {infos[3]['task']}: go at 1"


def test_ray_pool_fails_clearly_when_actors_cannot_start(ray_session: None) -> None:
    with pytest.raises(RuntimeError, match="could not start the environment actors: .*bogus"):
        EnvPool("toy", {"bogus": 1}, n_groups=1, group_size=2, backend="ray")
    with pytest.raises(RuntimeError, match="did not start within"):  # asks for more CPUs than exist
        EnvPool("toy", {}, n_groups=1, group_size=2, backend="ray", actor_num_cpus=4, actor_start_timeout_s=0.5)


# -- input checks and lifecycle ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_groups": 0}, "n_groups must be a positive integer"),
        ({"group_size": -2}, "group_size must be a positive integer"),
        ({"envs_per_actor": 0}, "envs_per_actor must be a positive integer"),
        ({"backend": "dask"}, "backend must be 'local' or 'ray'"),
    ],
)
def test_bad_sizes_and_backend_are_named(kwargs: dict, message: str) -> None:
    arguments = {"n_groups": 2, "group_size": 3, "backend": "local", **kwargs}
    with pytest.raises(ValueError, match=message):
        EnvPool("toy", {}, **arguments)


def test_connecting_to_a_cluster_passes_the_address_only(monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    calls: List[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    assert _start_ray("ray://head:10001", {"namespace": "proxmo"}) is True
    assert calls == [{"address": "ray://head:10001", "namespace": "proxmo"}]


def test_bad_calls_are_named() -> None:
    with pytest.raises(KeyError, match="unknown environment 'nope'"):
        EnvPool("nope", {}, n_groups=1, group_size=1)
    pool = toy_pool("local")
    with pytest.raises(EnvPoolError, match="one task per group: got 3 tasks for 2 groups"):
        pool.reset([0, 1, 2])
    with pytest.raises(EnvPoolError, match="one task per group, got int"):
        pool.reset(7)  # type: ignore[arg-type]
    with pytest.raises(EnvPoolError, match="not active"):
        pool.step({0: "go"})  # never reset
    pool.reset([0, 1])
    with pytest.raises(EnvPoolError, match="unknown slot 6"):
        pool.step({6: "go"})
    with pytest.raises(EnvPoolError, match="unknown slot -1"):
        pool.step({-1: "go"})
    with pytest.raises(EnvPoolError, match="takes a dict"):
        pool.step(["go"] * 6)  # type: ignore[arg-type]
    pool.close()
    pool.close()  # closing twice is harmless
    with pytest.raises(EnvPoolError, match="closed"):
        pool.reset([0, 1])


# ---- ALFWorld in the pool -------------------------------------------------------------------------
def _alfworld_rollout(pool: EnvPool, tasks: List[str], walkthroughs: List[List[str]], size: int) -> Dict[int, bool]:
    """Member 0 of each group follows its game's walkthrough, the others look around; returns won per slot."""
    _, infos = pool.reset(tasks)
    assert [info["task"] for info in infos] == [t for t in tasks for _ in range(size)]
    won: Dict[int, bool] = {}
    for step in range(60):
        if not pool.active:
            break
        actions = {}
        for slot in pool.active:
            group, member = divmod(slot, size)
            plan = walkthroughs[group]
            actions[slot] = plan[step] if member == 0 and step < len(plan) else "look"
        for slot, (_, _, done, info) in pool.step(actions).items():
            if done:
                won[slot] = info["won"]
    return won


def test_alfworld_groups_on_ray_with_both_engines(ray_session):
    from envs.alfworld import fixture_games, load_game

    games = fixture_games()
    tasks = [str(games[0]), str(games[7])]
    walkthroughs = [load_game(t).walkthrough for t in tasks]
    config = {"split": "train", "data": str(games[0].parents[3]), "max_steps": 12}
    with EnvPool("alfworld", config, n_groups=2, group_size=2, backend="ray", envs_per_actor=2) as pool:
        won = _alfworld_rollout(pool, tasks, walkthroughs, 2)
    assert won == {0: True, 1: False, 2: True, 3: False}
    # the real TextWorld engine allows one per process: one per actor
    with EnvPool("alfworld", {**config, "engine": "textworld"}, n_groups=1, group_size=2, backend="ray",
                 envs_per_actor=1) as pool:
        won = _alfworld_rollout(pool, tasks[:1], walkthroughs[:1], 2)
    assert won == {0: True, 1: False}


def test_a_large_pool_says_how_far_it_is_while_it_builds(caplog):
    caplog.set_level(logging.INFO, logger="envs")  # the pool and its backends
    with EnvPool("toy", {}, n_groups=64, group_size=5):  # 320 environments
        pass
    built = [r.getMessage() for r in caplog.records if r.getMessage().startswith("built ")]
    assert built[0] == "built 32 of 320 environments" and built[-1] == "built 320 of 320 environments"
    assert len(built) == 10

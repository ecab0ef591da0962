"""Starting Ray: a local Ray without its dashboard sets up its worker processes so that Ray Train's
placement-group cleaner, which cannot reach the state API there, does not warn once a second, and records no
metrics that nothing would show."""

import logging
from typing import List

import pytest

from envs.cluster import CLEANER_LOGGER, quiet_without_dashboard, start_ray


@pytest.fixture
def init_calls(monkeypatch: pytest.MonkeyPatch) -> List[dict]:
    ray = pytest.importorskip("ray")
    calls: List[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_a_local_ray_without_dashboard_quiets_its_workers(init_calls: List[dict]) -> None:
    assert start_ray(num_cpus=2, runtime_env={"env_vars": {"A": "1"}}) is True
    (kwargs,) = init_calls
    assert kwargs["include_dashboard"] is False and kwargs["num_cpus"] == 2
    assert kwargs["runtime_env"] == {"env_vars": {"A": "1"}, "worker_process_setup_hook": quiet_without_dashboard}
    assert kwargs["_system_config"] == {"enable_metrics_collection": False}  # no dashboard to show them


def test_the_callers_ray_settings_win(init_calls: List[dict]) -> None:
    start_ray(_system_config={"enable_metrics_collection": True, "object_timeout_milliseconds": 200})
    assert init_calls[0]["_system_config"] == {"enable_metrics_collection": True, "object_timeout_milliseconds": 200}


def test_a_setup_hook_of_the_caller_and_a_dashboard_are_left_alone(init_calls: List[dict]) -> None:
    def own_hook() -> None:
        pass

    start_ray(runtime_env={"worker_process_setup_hook": own_hook})
    start_ray(include_dashboard=True)
    assert init_calls[0]["runtime_env"] == {"worker_process_setup_hook": own_hook}
    assert "runtime_env" not in init_calls[1] and "_system_config" not in init_calls[1]


def test_the_hook_silences_the_cleaner_warnings_only() -> None:
    cleaner, other = logging.getLogger(CLEANER_LOGGER), logging.getLogger("ray.train.v2._internal.execution")
    saved = cleaner.level, other.level
    try:
        cleaner.setLevel(logging.NOTSET)
        assert cleaner.isEnabledFor(logging.WARNING)
        quiet_without_dashboard()
        assert not cleaner.isEnabledFor(logging.WARNING) and cleaner.isEnabledFor(logging.ERROR)
        assert other.level == saved[1]
    finally:
        cleaner.setLevel(saved[0])

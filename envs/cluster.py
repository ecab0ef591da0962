"""Starting Ray, one way for the whole project: the environment pool's actors and the training jobs' Ray tasks
both come through here."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional


CLEANER_LOGGER = "ray.train.v2._internal.execution.controller.placement_group_cleaner"
"""Ray Train's placement-group cleaner asks Ray's state API, which goes through the dashboard, about its
controller every second, and warns on every failed try."""


LOCAL_SYSTEM_CONFIG = {"enable_metrics_collection": False}
"""Ray's own settings for a Ray started here: no metrics recorded, as there is no dashboard to show them (recording
them in every worker took about a tenth of a two-worker job's time on two cores: docs/benchmarks.md)."""


def quiet_without_dashboard() -> None:
    """Set up every worker process of a Ray started without its dashboard: the placement-group cleaner of a job
    on several workers cannot reach the state API there and would warn once a second for as long as the job
    runs (the job's own failure handling does not depend on it)."""
    logging.getLogger(CLEANER_LOGGER).setLevel(logging.ERROR)


def start_ray(address: Optional[str] = None, **init_kwargs: Any) -> bool:
    """Initialise Ray unless it already is; answers whether this call started it (and so should shut it down).

    With ``address`` Ray joins that cluster. Without one it joins ``RAY_ADDRESS`` if set, else starts here:
    without its dashboard and with its auth token kept out of the home folder (``RAY_AUTH_MODE=disabled`` unless
    set); its temporary folder is ``RAY_TMPDIR`` or ``_temp_dir``; its worker processes are set up by
    :func:`quiet_without_dashboard` unless ``runtime_env`` names a setup hook, and it records no metrics
    (:data:`LOCAL_SYSTEM_CONFIG`, unless ``_system_config`` says otherwise). ``init_kwargs`` go to ``ray.init``
    (resources, ``runtime_env``...).
    """
    import ray

    if ray.is_initialized():
        return False
    kwargs = dict(init_kwargs)
    if address is not None:
        kwargs["address"] = address
    else:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        kwargs.setdefault("include_dashboard", False)
        if not kwargs["include_dashboard"]:
            runtime_env = dict(kwargs.get("runtime_env") or {})
            runtime_env.setdefault("worker_process_setup_hook", quiet_without_dashboard)
            kwargs["runtime_env"] = runtime_env
            kwargs["_system_config"] = {**LOCAL_SYSTEM_CONFIG, **(kwargs.get("_system_config") or {})}
    ray.init(**kwargs)
    return True


@contextmanager
def ray_running(address: Optional[str] = None, **init_kwargs: Any) -> Iterator[None]:
    """Ray is up for the block: started by :func:`start_ray` and shut down after, unless it already ran."""
    started = start_ray(address, **init_kwargs)
    try:
        yield
    finally:
        if started:
            import ray

            ray.shutdown()


__all__ = ["ray_running", "start_ray"]

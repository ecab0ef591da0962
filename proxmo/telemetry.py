"""Nothing leaves the machine unless the user asks: the usage reporting of the tools the platform runs is off.

MLflow, Prefect's server, Ray, Hugging Face and Streamlit each report usage to their makers by default (MLflow
resolves its telemetry host as soon as it is imported). Every entry point of the platform (the ``proxmo``
command, ``python -m proxmo.train``, the flows, tasks and dashboards) calls :func:`keep_local` first, which
turns each off through its own documented variable, unless the variable is already set (the user's choice
stands) or ``PROXMO_TELEMETRY=1`` opts in to the tools' defaults.
"""

from __future__ import annotations

import os

OPT_IN = "PROXMO_TELEMETRY"

LOCAL_ONLY = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
}
"""Each tool's own switch for its usage reporting, set to off."""


def keep_local() -> None:
    """Turn the tools' usage reporting off in this process and the processes it starts (see the module docstring)."""
    if os.environ.get(OPT_IN, "").strip().lower() in ("1", "true", "yes"):
        return
    for name, value in LOCAL_ONLY.items():
        os.environ.setdefault(name, value)


__all__ = ["LOCAL_ONLY", "OPT_IN", "keep_local"]

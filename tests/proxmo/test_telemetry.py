"""A local run sends nothing off the machine: every entry point turns the tools' usage reporting off, unless the
user set a tool's own switch or opted in with PROXMO_TELEMETRY=1."""

import json
import os
import subprocess
import sys

import pytest

from proxmo.telemetry import LOCAL_ONLY, OPT_IN

CHECK = """
import json, os, sys
import {module}
import mlflow.telemetry.utils as mlflow_telemetry
from prefect.settings import get_current_settings
print(json.dumps({{"env": {{k: os.environ.get(k) for k in {names}}},
                  "mlflow_off": mlflow_telemetry.is_telemetry_disabled(),
                  "prefect_analytics": get_current_settings().server.analytics_enabled}}))
"""


def _probe(module, **extra):
    env = {k: v for k, v in os.environ.items() if k not in LOCAL_ONLY and k != OPT_IN and not k.startswith("CI")}
    env.update(extra)
    code = CHECK.format(module=module, names=list(LOCAL_ONLY))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", ["proxmo.cli", "flows.sweep", "tasks.training", "dashboards.serve"])
def test_every_entry_point_turns_usage_reporting_off(module):
    seen = _probe(module)
    assert seen["env"] == LOCAL_ONLY
    assert seen["mlflow_off"] is True and seen["prefect_analytics"] is False


def test_the_users_own_switch_and_the_opt_in_stand():
    assert _probe("proxmo.cli", RAY_USAGE_STATS_ENABLED="1")["env"]["RAY_USAGE_STATS_ENABLED"] == "1"
    opted_in = _probe("proxmo.cli", **{OPT_IN: "1"})
    assert all(value is None for value in opted_in["env"].values())

"""The advantage benchmark runs end to end on a tiny batch and both implementations agree."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "advantage.py"


def test_benchmark_runs_and_agrees_with_the_release_style_code():
    out = subprocess.run([sys.executable, str(SCRIPT), "--groups", "2", "--repeats", "1", "--release-repeats", "1"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    for estimator in ("grpo", "gigpo", "proxmo"):
        assert re.search(rf"^\s*{estimator}\s+alfworld-like\s+2\s", out, re.M), out
    difference = float(re.search(r"largest difference between the two implementations: (\S+)", out).group(1))
    assert difference < 1e-5
    assert "ProxMO at" in out
    from proxmo.advantage import ESTIMATORS

    zoo = out.split("Every estimator at its defaults", 1)[1]
    for estimator in ESTIMATORS:  # the second table times every registered estimator
        assert re.search(rf"^\s*{estimator}\s+\d", zoo, re.M), zoo
    assert re.search(r"slowest new estimator: \w+ at [\d.]+x ProxMO's time", zoo), zoo

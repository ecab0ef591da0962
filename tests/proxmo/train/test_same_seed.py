"""The same seeds write the same metrics as the code before its structure changed (``same_seed.py``)."""

import json

import pytest

from tests.proxmo.train.same_seed import DATA, metrics_of, runs

RECORDED = json.loads(DATA.read_text())

# A metric the recorded code wrote under a second name, now gone: the mean advantage, once in float32 by the job
# and once in float64 by the estimator's diagnostics; the one kept must hold the same value at float32 precision.
DROPPED = {"adv/mean": "adv/advantage_mean"}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_a_fixed_seed_run_writes_the_recorded_metrics(tmp_path, name):
    recorded = RECORDED[name]
    now = metrics_of(runs(tmp_path)[name])
    assert sorted(now) == sorted(recorded), "the run logged at other steps"
    for step, values in recorded.items():
        for key, value in values.items():
            if key in DROPPED:
                assert key not in now[step], f"step {step}: {key} is logged again"
                assert now[step][DROPPED[key]] == pytest.approx(value, rel=1e-6, abs=1e-7), f"step {step}: {key}"
                continue
            assert key in now[step], f"step {step}: {key} is no longer logged"
            assert now[step][key] == pytest.approx(value, rel=1e-9, abs=1e-12), f"step {step}: {key}"
        extra = set(now[step]) - set(values)
        assert not extra, f"step {step}: new metrics {sorted(extra)}"
    # the runs must learn something, or equality says little: non-zero advantages and updates that differ
    assert any(v.get("adv/abs_mean", 0) > 0 for v in now.values())
    assert len({v["actor/grad_norm"] for v in now.values() if "actor/grad_norm" in v}) > 3

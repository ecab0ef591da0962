"""Inputs at the edges: rewards so large that statistics overflow, and one group with thousands of distinct
anchors (its similarity computed in row blocks, in bounded memory, to the same numbers)."""

import tracemalloc

import numpy as np
import pytest

import proxmo.advantage.step as step
from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages
from proxmo.advantage.synthetic import alfworld_like_batch


def _huge_rewards(scale: float) -> StepBatch:
    n = 12
    return StepBatch(group=np.zeros(n, int), traj=np.arange(n) // 3, t=np.arange(n) % 3,
                     reward=np.where((np.arange(n) % 3 == 2) & (np.arange(n) // 3 % 2 == 1), scale, 0.0),
                     invalid=np.zeros(n, bool), won=(np.arange(n) // 3 % 2).astype(bool),
                     anchor=[f"s{t}" for t in np.arange(n) % 3])


@pytest.mark.parametrize("estimator", ["grpo", "gigpo", "proxmo"])
def test_rewards_that_overflow_are_a_clear_error_not_nan(estimator):
    with pytest.raises(ValueError, match=r"overflow .*largest \|reward\| is 1e\+308.*scale the rewards"):
        compute_advantages(_huge_rewards(1e308), AdvantageConfig(estimator=estimator))
    result = compute_advantages(_huge_rewards(1e6), AdvantageConfig(estimator=estimator))
    assert np.all(np.isfinite(result.advantages))


def _distinct_anchors(n: int) -> StepBatch:
    traj = np.arange(n) // 10
    return StepBatch(group=np.zeros(n, int), traj=traj, t=np.arange(n) % 10,
                     reward=np.where(np.arange(n) % 10 == 9, traj % 2 * 10.0, 0.0), invalid=np.zeros(n, bool),
                     won=(traj % 2).astype(bool), anchor=[f"room {i} item {i * 7 % 13}" for i in range(n)])


def test_a_group_of_thousands_of_distinct_anchors_runs_in_bounded_memory(monkeypatch):
    n = 6000  # a whole 6000 x 6000 similarity is 275 MiB per array, and the softmax needs several
    tracemalloc.start()
    try:
        result = compute_advantages(_distinct_anchors(n), AdvantageConfig(estimator="proxmo"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300 * 2**20, f"peak {peak / 2**20:.0f} MiB"
    assert np.all(np.isfinite(result.advantages))


@pytest.mark.parametrize("options", [{}, {"leave_one_out": True}, {"fit_scope": "group"}], ids=str)
def test_row_blocks_give_the_numbers_of_the_whole_block(monkeypatch, options):
    batch = alfworld_like_batch(n_groups=4, seed=3)
    config = AdvantageConfig(estimator="proxmo", **options)
    whole = compute_advantages(batch, config)
    monkeypatch.setattr(step, "BLOCK_CELLS", 7)  # a few rows per block, some groups split unevenly
    blocked = compute_advantages(batch, config)
    np.testing.assert_allclose(blocked.advantages, whole.advantages, atol=1e-6, rtol=0)
    assert blocked.diagnostics == pytest.approx(whole.diagnostics)


def test_the_adaptive_temperature_says_what_a_huge_group_needs_before_allocating_it(monkeypatch):
    monkeypatch.setattr(step, "_available_memory", lambda: 2**30)
    with pytest.raises(MemoryError, match=r"6,000 distinct anchors.*about 1\.1 GiB.*1\.0 GiB is available"):
        compute_advantages(_distinct_anchors(6000), AdvantageConfig(estimator="proxmo", target_group_size=4.0))

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


ALL = ["grpo", "gigpo", "proxmo", "drgrpo", "rloo", "reinforce_pp_baseline", "hgpo", "g2po", "graphgpo"]


@pytest.mark.parametrize("estimator", ALL)
def test_rewards_that_overflow_are_a_clear_error_not_nan(estimator):
    with pytest.raises(ValueError, match=r"overflow .*largest \|reward\| is 1e\+308.*scale the rewards"):
        compute_advantages(_huge_rewards(1e308), AdvantageConfig(estimator=estimator))
    result = compute_advantages(_huge_rewards(1e6), AdvantageConfig(estimator=estimator))
    assert np.all(np.isfinite(result.advantages))


def _rows(*trajectories) -> StepBatch:
    """Batch of (group, [anchors], won, [invalid]) trajectories; a won trajectory gets 10 on its last step."""
    fields = {k: [] for k in ("group", "traj", "t", "reward", "invalid", "won", "anchor")}
    for number, (group, anchors, won, invalid) in enumerate(trajectories):
        for t, anchor in enumerate(anchors):
            for key, value in (("group", group), ("traj", number), ("t", t), ("anchor", anchor), ("won", won),
                               ("reward", 10.0 if won and t == len(anchors) - 1 else 0.0), ("invalid", invalid[t])):
                fields[key].append(value)
    return StepBatch(**fields)


DEGENERATE = {
    "one row": _rows((0, ["a"], True, [False])),
    "one-row groups": _rows((0, ["a"], True, [False]), (1, ["a"], False, [True]), (2, ["b"], False, [False])),
    "one trajectory per group": _rows((0, ["a", "b", "a"], False, [False, True, False]), (1, ["c", "d"], True, [0, 0])),
    "identical wins": _rows(*[(0, ["s", "m", "n"], True, [False] * 3) for _ in range(4)]),
    "identical losses": _rows(*[(0, ["s", "s"], False, [True, True]) for _ in range(3)]),
    "all equal in a loop": _rows(*[(0, ["s"] * 6, False, [False] * 6) for _ in range(2)]),
}


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("preset", ["paper", "official"])
@pytest.mark.parametrize("estimator", ALL)
def test_degenerate_batches_give_finite_defined_advantages(estimator, preset, case):
    result = compute_advantages(DEGENERATE[case], AdvantageConfig(estimator=estimator, preset=preset))
    for part in (result.advantages, result.episode, result.step):
        assert np.all(np.isfinite(part)), f"{estimator}/{preset} on {case}: {part}"
    assert all(np.isfinite(value) or key.endswith("singleton_fraction") for key, value in result.diagnostics.items())


def test_an_all_equal_group_gives_zero_where_nothing_can_be_told_apart():
    identical = DEGENERATE["identical losses"]
    for estimator in ("drgrpo", "rloo", "reinforce_pp_baseline", "hgpo", "graphgpo"):
        result = compute_advantages(identical, AdvantageConfig(estimator=estimator, preset="official",
                                                               invalid_penalty=0.0))
        np.testing.assert_array_equal(result.advantages, 0.0, err_msg=estimator)
    # G2PO's documented quirk: its TD term spreads identical wins (values discounted per step differ)
    wins = compute_advantages(DEGENERATE["identical wins"], AdvantageConfig(estimator="g2po", preset="official"))
    assert np.abs(wins.advantages).max() > 0.5


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

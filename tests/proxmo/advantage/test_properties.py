"""Invariants a user relies on: row order, group independence, bounded modulation, singleton rules, GRPO centring."""

import numpy as np
import pytest

from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages
from proxmo.advantage.episode import modulation_weight
from proxmo.advantage.synthetic import alfworld_like_batch, random_batch

from .conftest import FIELDS, shuffled

CONFIGS = [
    AdvantageConfig(estimator="grpo"),
    AdvantageConfig(estimator="gigpo"),
    AdvantageConfig(estimator="gigpo", step_grouping="similar", similarity_threshold=0.8),
    AdvantageConfig(estimator="proxmo"),
    AdvantageConfig(estimator="proxmo", preset="official", leave_one_out=True, fit_scope="group"),
    AdvantageConfig(estimator="proxmo", similarity_backend="bm25", target_group_size=3.0),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.estimator}-{c.preset}-{getattr(c, 'step_grouping', 'none')}")
def test_row_order_does_not_matter(config):
    batch = alfworld_like_batch(n_groups=4, seed=7)
    expected = compute_advantages(batch, config)
    for seed in range(3):
        permuted, perm = shuffled(batch, seed)
        result = compute_advantages(permuted, config)
        np.testing.assert_allclose(result.advantages, expected.advantages[perm], atol=1e-6, rtol=0)
        assert result.diagnostics == pytest.approx(expected.diagnostics)


def _subset(batch: StepBatch, rows: np.ndarray) -> StepBatch:
    return StepBatch(**{name: getattr(batch, name)[rows] for name in FIELDS})


@pytest.mark.parametrize("estimator", ["grpo", "gigpo", "proxmo"])
@pytest.mark.parametrize("preset", ["paper", "official"])
def test_with_group_scope_a_group_does_not_see_other_groups(estimator, preset):
    config = AdvantageConfig(estimator=estimator, preset=preset, **({"fit_scope": "group"} if estimator == "proxmo" else {}))
    batch = alfworld_like_batch(n_groups=5, seed=11)
    full = compute_advantages(batch, config).advantages
    group = batch.group
    for g in (0, 3):
        mine = np.flatnonzero(group == g)
        alone = compute_advantages(_subset(batch, mine), config).advantages
        np.testing.assert_allclose(alone, full[mine], atol=1e-6, rtol=0)
        # replacing every other group by a different batch changes nothing for this one
        others = alfworld_like_batch(n_groups=3, seed=99)
        mixed = StepBatch(
            **{name: np.concatenate([getattr(batch, name)[mine], getattr(others, name) + (1000 if name in ("group", "traj") else 0)
                                     if name in ("group", "traj") else getattr(others, name)]) for name in FIELDS}
        )
        np.testing.assert_allclose(compute_advantages(mixed, config).advantages[: len(mine)], full[mine], atol=1e-6, rtol=0)


def test_with_batch_scope_the_vocabulary_is_shared():
    # The release fits one vectoriser on the whole batch, so idf depends on the other groups.
    config = AdvantageConfig(estimator="proxmo", fit_scope="batch", modulation=False)
    batch = alfworld_like_batch(n_groups=5, seed=11)
    mine = np.flatnonzero(batch.group == 0)
    alone = compute_advantages(_subset(batch, mine), config).step
    assert not np.allclose(alone, compute_advantages(batch, config).step[mine], atol=1e-9)


@pytest.mark.parametrize("delta,alpha", [(0.05, 4.0), (0.2, 1.0), (0.5, 2.0), (0.0, 4.0)])
def test_modulation_weights_stay_within_the_target_range(delta, alpha):
    p = np.linspace(0, 1, 1001)
    beta = AdvantageConfig(target_range=delta).effective_beta
    for success in (True, False):
        w = modulation_weight(np.full(p.shape, success), p, alpha, beta)
        assert (w >= 1 - delta - 1e-12).all() and (w <= 1 + delta + 1e-12).all()
    # the extremes are reached where the spec says: rare successes amplified, frequent failures damped
    assert modulation_weight(np.array([True]), np.array([0.0]), alpha, beta)[0] == pytest.approx(1 + delta)
    assert modulation_weight(np.array([False]), np.array([1.0]), alpha, beta)[0] == pytest.approx(1 - delta)
    # successes are never damped, failures never amplified
    assert (modulation_weight(np.ones_like(p, bool), p, alpha, beta) >= 1).all()
    assert (modulation_weight(np.zeros_like(p, bool), p, alpha, beta) <= 1).all()


def test_modulation_in_a_batch_is_bounded_and_follows_the_success_rate():
    batch = alfworld_like_batch(n_groups=16, seed=5)
    result = compute_advantages(batch, AdvantageConfig(target_range=0.05))
    assert 0.95 - 1e-9 <= result.diagnostics["modulation_weight_min"] <= result.diagnostics["modulation_weight_max"] <= 1.05 + 1e-9


def _single_batch(**overrides):
    base = dict(group=[0, 0, 0, 1, 1], traj=[0, 0, 1, 2, 2], t=[0, 1, 0, 0, 1], reward=[0, 10, 0, 0, 10],
                invalid=[0, 0, 0, 0, 0], won=[1, 1, 0, 1, 1], anchor=["a", "b", "a", "c", "d"])
    return StepBatch(**{**base, **overrides})


def test_singleton_rules():
    batch = _single_batch()
    # exact step groups: rows 1 ('b'), 3 and 4 are alone in their step group -> step advantage 0
    gigpo = compute_advantages(batch, AdvantageConfig(estimator="gigpo", gamma=1.0))
    assert gigpo.step[[1, 3, 4]].tolist() == [0.0, 0.0, 0.0]
    # group 1 has a single trajectory (paper): mu = 0, sigma = 1, so A^E is its return
    paper = compute_advantages(batch, AdvantageConfig(estimator="grpo"))
    assert paper.episode[3] == pytest.approx(10 / (1 + 1e-6))
    # official: a group of one row has mu = 0, sigma = 1, p = clip(0) = 0
    one_row = StepBatch(group=[0], traj=[0], t=[0], reward=[10.0], invalid=[False], won=[True], anchor=["x"])
    official = compute_advantages(one_row, AdvantageConfig(estimator="proxmo", preset="official"))
    w = modulation_weight(np.array([True]), np.array([0.0]), 4.0, AdvantageConfig().effective_beta)[0]
    assert official.episode[0] == pytest.approx(10 * w) and official.step[0] == 0.0
    # soft aggregation never degenerates: a lone row is its own baseline (0); leave-one-out gives 0 too
    for loo in (False, True):
        assert compute_advantages(one_row, AdvantageConfig(leave_one_out=loo)).step[0] == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_grpo_is_zero_mean_per_group(seed):
    rng = np.random.default_rng(seed)
    batch = random_batch(rng, n_groups=4, group_size=6)
    no_penalty = StepBatch(**{**{n: getattr(batch, n) for n in FIELDS}, "invalid": np.zeros(len(batch), bool)})
    paper = compute_advantages(no_penalty, AdvantageConfig(estimator="grpo"))
    official = compute_advantages(batch, AdvantageConfig(estimator="grpo", preset="official"))
    for g in np.unique(batch.group):
        rows = batch.group == g
        # paper: over trajectories (one value per trajectory); official: over rows, penalty included
        per_traj = {tr: a for tr, a in zip(batch.traj[rows], paper.advantages[rows])}
        if len(per_traj) > 1:
            assert abs(np.mean(list(per_traj.values()))) < 1e-5
        if rows.sum() > 1:
            assert abs(official.advantages[rows].mean()) < 1e-5


def test_paper_penalty_stays_step_shaping_official_scales_it():
    # An all-fail group of 50 rows with one invalid action. Official: the penalty sits inside the
    # score and is divided by a tiny row-level std (about 70x). Paper: it stays -0.1.
    n = 50
    batch = StepBatch(group=[0] * n, traj=[0] * 25 + [1] * 25, t=list(range(25)) * 2, reward=[0.0] * n,
                      invalid=[True] + [False] * (n - 1), won=[False] * n, anchor=["a"] * n)
    paper = compute_advantages(batch, AdvantageConfig(estimator="grpo"))
    official = compute_advantages(batch, AdvantageConfig(estimator="grpo", preset="official"))
    assert paper.episode[0] == pytest.approx(-0.1)
    assert official.episode[0] == pytest.approx(-6.93, abs=0.01)


def test_official_success_rate_saturates_paper_does_not():
    # 1 success in 8 trajectories of 10 steps: the official p = clip(mean row score) = 1, the paper p = 1/8
    group, traj, t, reward, won = [], [], [], [], []
    for k in range(8):
        for s in range(10):
            group.append(0); traj.append(k); t.append(s); won.append(k == 0)
            reward.append(10.0 if (k == 0 and s == 9) else 0.0)
    batch = StepBatch(group=group, traj=traj, t=t, reward=reward, invalid=[False] * 80, won=won, anchor=["x"] * 80)
    assert compute_advantages(batch, AdvantageConfig(preset="official")).diagnostics["success_rate_mean"] == 1.0
    assert compute_advantages(batch, AdvantageConfig(preset="paper")).diagnostics["success_rate_mean"] == 0.125


def test_soft_effective_group_size_grows_with_temperature():
    batch = alfworld_like_batch(n_groups=4, seed=2)
    sizes = [compute_advantages(batch, AdvantageConfig(temperature=tau)).diagnostics["step_group_size_mean"]
             for tau in (0.01, 0.1, 1.0, 100.0)]
    assert sizes == sorted(sizes) and sizes[0] >= 1.0
    rows_per_group = np.bincount(batch.prepared.group)
    assert sizes[-1] == pytest.approx(np.average(rows_per_group, weights=rows_per_group), rel=1e-3)


def test_adaptive_temperature_hits_its_target():
    batch = alfworld_like_batch(n_groups=4, seed=2)
    size = compute_advantages(batch, AdvantageConfig(target_group_size=20.0)).diagnostics["step_group_size_mean"]
    assert size == pytest.approx(20.0, rel=1e-3)  # every group can reach 20 (each has 130+ rows)

"""AdvantageConfig: per-estimator defaults, the derived beta, clear errors, and estimators added in one place."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from proxmo.advantage import (
    ESTIMATORS,
    AdvantageConfig,
    Components,
    compute_advantages,
    estimator_defaults,
    register_estimator,
)
from proxmo.advantage.synthetic import alfworld_like_batch


def test_defaults_follow_the_spec():
    assert AdvantageConfig(estimator="grpo").resolved().model_dump(include={"normalization", "modulation", "step_grouping"}) == {
        "normalization": "mean_std_norm", "modulation": False, "step_grouping": "none"}
    assert estimator_defaults("gigpo") == {"normalization": "mean_norm", "modulation": False, "step_grouping": "exact"}
    proxmo = AdvantageConfig().resolved()
    assert (proxmo.estimator, proxmo.preset, proxmo.normalization, proxmo.modulation, proxmo.step_grouping) == (
        "proxmo", "paper", "mean_norm", True, "soft")
    assert (proxmo.gamma, proxmo.invalid_penalty, proxmo.alpha, proxmo.target_range, proxmo.temperature,
            proxmo.step_weight, proxmo.max_features, proxmo.similarity_threshold) == (0.95, 0.1, 4.0, 0.05, 0.1, 1.0, 1024, 0.95)


def test_beta_is_derived_from_the_target_range():
    assert math.isclose(AdvantageConfig().effective_beta, 0.05 / (1 / (1 + math.exp(-1)) - 0.5))
    assert math.isclose(AdvantageConfig().effective_beta, 0.2163, abs_tol=1e-4)
    assert AdvantageConfig(beta=0.5).effective_beta == 0.5


def test_overrides_beat_estimator_defaults():
    config = AdvantageConfig(estimator="proxmo", step_grouping="exact", modulation=False).resolved()
    assert (config.step_grouping, config.modulation, config.normalization) == ("exact", False, "mean_norm")


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(estimator="ppo"), "estimator"),
        (dict(preset="release"), "preset"),
        (dict(temperature=0.0), "temperature"),
        (dict(target_range=1.5), "target_range"),
        (dict(beta=0.3, target_range=0.1), "beta and target_range"),
        (dict(step_grouping="fuzzy"), "step_grouping"),
        (dict(similarity_backend="word2vec"), "similarity_backend"),
        (dict(gamma=1.5), "gamma"),
        (dict(tempreature=0.2), "tempreature"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(ValidationError) as info:
        AdvantageConfig(**kwargs)
    assert field in str(info.value)


def test_a_new_estimator_is_one_register_call():
    def episode_only_rloo(batch, config):
        # leave-one-out mean of the other trajectories' returns in the group
        traj_return = np.bincount(batch.traj, weights=batch.reward, minlength=batch.n_traj)
        total = np.bincount(batch.traj_group, weights=traj_return, minlength=batch.n_groups)
        count = np.bincount(batch.traj_group, minlength=batch.n_groups)
        n = count[batch.traj_group]
        loo = np.where(n > 1, (total[batch.traj_group] - traj_return) / np.maximum(n - 1, 1), traj_return)
        return Components(episode=(traj_return - loo)[batch.traj], step=np.zeros(batch.n_rows))

    register_estimator("rloo", defaults={"normalization": "mean_norm", "modulation": False, "step_grouping": "none"},
                       compute=episode_only_rloo)
    try:
        result = compute_advantages(alfworld_like_batch(n_groups=2, seed=3), AdvantageConfig(estimator="rloo"))
        assert result.config.estimator == "rloo" and np.isfinite(result.advantages).all()
    finally:
        del ESTIMATORS["rloo"]


def test_a_taken_estimator_name_is_refused():
    before = ESTIMATORS["grpo"]
    with pytest.raises(ValueError, match="grpo"):
        register_estimator("grpo", defaults=dict(before.defaults), compute=before.compute)
    assert ESTIMATORS["grpo"] is before

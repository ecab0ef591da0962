"""AdvantageConfig: each estimator's typed options, the derived beta, clear errors, and estimators added in one place."""

import math

import numpy as np
import pytest
from pydantic import Field, ValidationError

from proxmo.advantage import (
    ESTIMATORS,
    AdvantageConfig,
    Components,
    EstimatorOptions,
    compute_advantages,
    estimator_defaults,
    register_estimator,
)
from proxmo.advantage.synthetic import alfworld_like_batch


def test_defaults_follow_the_spec():
    assert estimator_defaults("grpo") == {"normalization": "mean_std_norm"}
    assert estimator_defaults("gigpo") == {"normalization": "mean_norm", "step_grouping": "exact",
                                           "similarity_threshold": 0.95, "step_weight": 1.0}
    proxmo = AdvantageConfig()
    assert (proxmo.estimator, proxmo.preset, proxmo.normalization, proxmo.modulation, proxmo.step_grouping) == (
        "proxmo", "paper", "mean_norm", True, "soft")
    assert (proxmo.gamma, proxmo.invalid_penalty, proxmo.alpha, proxmo.target_range, proxmo.temperature,
            proxmo.step_weight, proxmo.max_features, proxmo.similarity_threshold) == (0.95, 0.1, 4.0, 0.05, 0.1, 1.0, 1024, 0.95)
    # the authors' ALFWorld scripts: mean_std_norm for G2PO, HGPO and GraphGPO, GraphGPO's own gamma 0.10
    assert estimator_defaults("hgpo") == {"normalization": "mean_std_norm", "history_length": 2, "alpha": 1.0,
                                          "base_group": False}
    assert estimator_defaults("g2po") == {"normalization": "mean_std_norm", "step_weight": 1.0, "value_discount": 0.95,
                                          "terminal_value": 10.0}
    assert estimator_defaults("graphgpo") == {"normalization": "mean_std_norm", "graph_gamma": 0.1, "goal_value": 10.0,
                                              "normalize_distance": False, "step_weight": 1.0, "episode_weight": 1.0}
    assert estimator_defaults("rloo") == estimator_defaults("drgrpo") == estimator_defaults("reinforce_pp_baseline") == {}


def test_the_same_option_name_has_each_estimators_own_default():
    assert AdvantageConfig(estimator="proxmo").alpha == 4.0  # the modulation exponent
    assert AdvantageConfig(estimator="hgpo").alpha == 1.0  # the depth weight exponent
    assert AdvantageConfig(estimator="gigpo").normalization == "mean_norm"
    assert AdvantageConfig(estimator="g2po").normalization == "mean_std_norm"


def test_beta_is_derived_from_the_target_range():
    assert math.isclose(AdvantageConfig().effective_beta, 0.05 / (1 / (1 + math.exp(-1)) - 0.5))
    assert math.isclose(AdvantageConfig().effective_beta, 0.2163, abs_tol=1e-4)
    assert AdvantageConfig(beta=0.5).effective_beta == 0.5


def test_overrides_beat_estimator_defaults():
    config = AdvantageConfig(estimator="proxmo", step_grouping="exact", modulation=False)
    assert (config.step_grouping, config.modulation, config.normalization) == ("exact", False, "mean_norm")


@pytest.mark.parametrize("estimator,options", [
    ("proxmo", {"temperature": 0.3, "beta": 0.5}),
    ("hgpo", {"history_length": 4, "base_group": True}),
    ("graphgpo", {"graph_gamma": 0.2}),
    ("rloo", {}),
])
def test_the_dump_is_flat_and_reads_back(estimator, options):
    config = AdvantageConfig(estimator=estimator, preset="official", **options)
    dumped = config.model_dump()
    assert "options" not in dumped and {**dumped, **options} == dumped
    assert AdvantageConfig(**dumped) == config
    assert AdvantageConfig(estimator=estimator, options=options) == AdvantageConfig(estimator=estimator, **options)


@pytest.mark.parametrize("estimator,option,owner", [
    ("grpo", "temperature", "proxmo"),
    ("rloo", "history_length", "hgpo"),
    ("g2po", "graph_gamma", "graphgpo"),
    ("hgpo", "modulation", "proxmo"),
])
def test_a_misplaced_option_names_the_estimator_the_option_and_its_owner(estimator, option, owner):
    with pytest.raises(ValidationError) as info:
        AdvantageConfig(estimator=estimator, **{option: 1})
    (error,) = info.value.errors()
    assert error["loc"] == (option,)  # at the option's own place: advantage.<option> in a run config
    assert error["msg"].startswith(f"not an option of estimator {estimator!r} (it is an option of {owner}")


def test_an_option_out_of_range_names_the_estimator():
    with pytest.raises(ValidationError) as info:
        AdvantageConfig(estimator="hgpo", history_length=-1)
    (error,) = info.value.errors()
    assert error["loc"] == ("history_length",)
    assert error["msg"] == "Input should be greater than or equal to 0 (an option of estimator 'hgpo')"
    with pytest.raises(ValidationError, match="graph_gamma"):
        AdvantageConfig(estimator="graphgpo", graph_gamma=0.0)


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
    class LooOptions(EstimatorOptions):
        shrink: float = Field(1.0, gt=0.0, description="scale of the leave-one-out baseline")

    def episode_only_loo(batch, config):
        # leave-one-out mean of the other trajectories' returns in the group
        traj_return = np.bincount(batch.traj, weights=batch.reward, minlength=batch.n_traj)
        total = np.bincount(batch.traj_group, weights=traj_return, minlength=batch.n_groups)
        count = np.bincount(batch.traj_group, minlength=batch.n_groups)
        n = count[batch.traj_group]
        loo = np.where(n > 1, (total[batch.traj_group] - traj_return) / np.maximum(n - 1, 1), traj_return)
        return Components(episode=(traj_return - config.options.shrink * loo)[batch.traj], step=np.zeros(batch.n_rows))

    register_estimator("my_loo", options=LooOptions, compute=episode_only_loo)
    try:
        batch = alfworld_like_batch(n_groups=2, seed=3)
        result = compute_advantages(batch, AdvantageConfig(estimator="my_loo", shrink=0.5))
        assert result.config.estimator == "my_loo" and result.config.shrink == 0.5 and np.isfinite(result.advantages).all()
        assert not np.allclose(result.advantages, compute_advantages(batch, AdvantageConfig(estimator="my_loo")).advantages)
        with pytest.raises(ValidationError, match=r"temperature\s+not an option of estimator 'my_loo'"):
            AdvantageConfig(estimator="my_loo", temperature=0.2)
    finally:
        del ESTIMATORS["my_loo"]


def test_options_that_clash_with_shared_fields_or_lack_defaults_are_refused():
    class Clash(EstimatorOptions):
        gamma: float = 0.5

    class NoDefault(EstimatorOptions):
        depth: int

    with pytest.raises(ValueError, match="gamma"):
        register_estimator("clash", options=Clash, compute=lambda batch, config: None)
    with pytest.raises(ValueError, match="NoDefault must validate with its defaults"):
        register_estimator("no_default", options=NoDefault, compute=lambda batch, config: None)
    assert "clash" not in ESTIMATORS and "no_default" not in ESTIMATORS


def test_a_taken_estimator_name_is_refused():
    before = ESTIMATORS["grpo"]
    with pytest.raises(ValueError, match="grpo"):
        register_estimator("grpo", options=before.options, compute=before.compute)
    assert ESTIMATORS["grpo"] is before

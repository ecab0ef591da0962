"""TrainConfig: reference defaults, presets, dotted overrides and errors that name the field."""

from pathlib import Path

import pytest

from proxmo.train.config import ConfigError, TrainConfig, apply_overrides, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


def test_defaults_are_the_reference_settings():
    config = TrainConfig()
    assert (config.rollout.group_size, config.rollout.n_groups, config.rollout.history_length) == (8, 16, 2)
    assert (config.rollout.temperature, config.eval.temperature) == (1.0, 0.4)
    o = config.optim
    assert (o.lr, o.clip_low, o.clip_high, o.dual_clip, o.kl_coef, o.entropy_coef) == (1e-6, 0.2, 0.2, 3.0, 0.01, 0.001)
    assert (o.grad_clip, o.weight_decay, o.ppo_epochs, o.loss_agg) == (1.0, 0.01, 1, "token-mean")
    assert config.advantage.estimator == "proxmo" and config.advantage.invalid_penalty == 0.1


def test_environment_defaults_fill_in_and_user_options_win():
    webshop = TrainConfig.model_validate({"env": {"name": "webshop", "options": {"num_products": 500}}})
    assert webshop.env.eval_split == "test"
    assert webshop.env.options == {"num_products": 500, "show_instruction": False}
    assert TrainConfig().env.eval_split == "valid_unseen"


@pytest.mark.parametrize("preset", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_preset_loads(preset):
    config = load_config(CONFIGS / preset)
    assert config.env.name in preset


def test_overrides_parse_yaml_values_and_create_sections():
    data = apply_overrides({"optim": {"lr": 1.0}}, ["optim.lr=1e-4", "run.name=abc", "eval.at_start=true"])
    assert data == {"optim": {"lr": 1e-4}, "run": {"name": "abc"}, "eval": {"at_start": True}}
    config = load_config(CONFIGS / "webshop_demo.yaml", ["advantage.estimator=gigpo", "rollout.group_size=2"])
    assert config.advantage.estimator == "gigpo" and config.rollout.group_size == 2


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["optim.lr=-1"], "optim.lr"),
        (["rollout.action_mode=think"], "rollout.action_mode"),
        (["optim.lrr=1"], "optim.lrr"),
        (["model.kind=hf"], "model"),
        (["advantage.temperature=0"], "advantage.temperature"),
        (["optim.dual_clip=1"], "optim.dual_clip"),
    ],
)
def test_bad_values_fail_naming_the_field(overrides, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        load_config(None, overrides)


def test_bad_override_syntax_and_missing_file():
    with pytest.raises(ConfigError, match="dotted.key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="is a value"):
        load_config(None, ["optim.lr=1", "optim.lr.x=2"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such/file.yaml")


def test_a_job_is_a_config_copy_with_updates_validated_like_a_loaded_one():
    config = load_config(CONFIGS / "alfworld_demo.yaml")
    job = config.with_updates(run={"seed": 3, "tags": {"variant": "a"}}, optim={"lr": 0.5})
    assert (job.run.seed, job.run.tags, job.optim.lr) == (3, {"variant": "a"}, 0.5)
    assert job.run.iterations == config.run.iterations and config.run.seed == 0  # the original is untouched
    with pytest.raises(ValueError, match="optim.lr"):
        config.with_updates(optim={"lr": -1.0})
    with pytest.raises(ValueError, match="runs: not a section of the config"):
        config.with_updates(runs={"seed": 1})


def test_cross_field_defaults_are_resolved_once_on_the_config():
    config = load_config(CONFIGS / "alfworld_demo.yaml", ["run.seed=7", "rollout.max_steps=9", "rollout.choose_score=sum"])
    assert config.model.seed is None and config.policy_model.seed == 7  # the model is seeded by the run
    assert config.with_updates(model={"seed": 2}).policy_model.seed == 2  # unless it has a seed of its own
    assert config.env_options["max_steps"] == 9 and "max_steps" not in config.env.options
    assert config.rollout.length_normalize is False


def test_an_estimators_options_reach_it_from_yaml_and_overrides_and_survive_a_saved_config(tmp_path):
    from proxmo.train.config import save_config

    preset = tmp_path / "hgpo.yaml"
    preset.write_text("advantage:\n  estimator: hgpo\n  history_length: 4\n  preset: official\n")
    config = load_config(preset, ["advantage.base_group=true", "advantage.alpha=0.5"])
    options = config.advantage.options
    assert (type(options).__name__, options.history_length, options.base_group, options.alpha) == (
        "HgpoOptions", 4, True, 0.5)
    save_config(config, tmp_path / "saved.yaml")
    assert "history_length: 4" in (tmp_path / "saved.yaml").read_text()  # flat, as it was written
    assert load_config(tmp_path / "saved.yaml") == config
    with pytest.raises(ConfigError, match=r"advantage\.temperature: not an option of estimator 'hgpo'"):
        load_config(preset, ["advantage.temperature=0.2"])
    # switching the estimator in an override leaves the preset's options behind it: refused, named
    with pytest.raises(ConfigError, match=r"advantage\.history_length: not an option of estimator 'grpo' \(it is an "
                                          r"option of hgpo\)"):
        load_config(preset, ["advantage.estimator=grpo"])

"""Environment specs: what the registry tells a trainer, and how it guards names and options."""

import pytest

import envs
from envs.base import EnvSpec


def _factory(size: int = 3, split: str = "train"):
    raise AssertionError("never built in these tests")


def _other_factory(**options):
    raise AssertionError("never built in these tests")


def test_builtin_environments_carry_their_specs():
    alfworld, webshop = envs.spec("alfworld"), envs.spec("webshop")
    assert alfworld.eval_split == "valid_unseen" and webshop.eval_split == "test"
    assert "games" in envs.option_names("alfworld") and "engine" in envs.option_names("alfworld")
    assert {"num_products", "server_url", "reward_mode"} <= envs.option_names("webshop")


def test_a_taken_name_is_refused_but_the_same_factory_may_register_again():
    envs.register("spec-test", _factory, EnvSpec(eval_split="dev"))
    envs.register("spec-test", _factory, EnvSpec(eval_split="dev"))  # a module imported twice
    with pytest.raises(ValueError, match="spec-test"):
        envs.register("spec-test", _other_factory)
    assert envs.spec("spec-test").eval_split == "dev"


def test_options_are_checked_against_the_factory():
    envs.register("spec-options", _factory)
    envs.check_options("spec-options", {"size": 4, "split": "train"})
    with pytest.raises(ValueError, match=r"env.options.colour.*size"):
        envs.check_options("spec-options", {"colour": "red"})
    envs.register("spec-anything", _other_factory)
    assert envs.option_names("spec-anything") is None
    envs.check_options("spec-anything", {"colour": "red"})  # a factory taking **options takes anything


def test_alfworld_game_settings_are_checked_before_any_work():
    check = envs.spec("alfworld").check_options
    check({"games": {"train": 4, "eval": 2}})
    with pytest.raises(ValueError, match="env.options.games.trains"):
        check({"games": {"trains": 4}})
    with pytest.raises(ValueError, match="env.options.games.eval"):
        check({"games": {"eval": -1}})


def test_alfworld_can_hide_commands_that_change_nothing():
    from envs.alfworld import fixture_games, is_info_command

    game = str(fixture_games()[0])
    _, everything = envs.make("alfworld", game=game).reset()
    _, acting = envs.make("alfworld", game=game, info_commands=False).reset()
    assert any(is_info_command(c) for c in everything["admissible_commands"])
    assert acting["admissible_commands"] == [c for c in everything["admissible_commands"] if not is_info_command(c)]

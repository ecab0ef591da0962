"""ALFWorld through the environment protocol: envs.make, rewards, episode ends, data folders, the pool, `proxmo play`."""

import pytest
from typer.testing import CliRunner

import envs
from envs import EnvPool
from envs.alfworld import fixture_games, load_game
from proxmo.cli import app

GAMES = fixture_games()
FIXTURES = GAMES[0].parents[3]


def test_make_plays_one_game_to_a_win():
    game = load_game(GAMES[0])
    env = envs.make("alfworld", engine="python", game=GAMES[0])
    observation, info = env.reset()
    assert observation.startswith("-= Welcome to TextWorld, ALFRED! =-")
    assert "help" not in info["admissible_commands"]
    assert info["category"] == game.category and info["task"] == str(game.path) and info["won"] is False
    rewards = []
    for command in game.walkthrough:
        observation, reward, done, info = env.step(command)
        rewards.append(reward)
    assert rewards[-1] == 10.0 and sum(rewards) == 10.0 and done and info["won"]
    assert info["goal_condition_success_rate"] == 1.0
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("look")


def test_max_steps_ends_the_episode():
    env = envs.make("alfworld", game=GAMES[1], max_steps=3)
    env.reset()
    dones = [env.step("look")[2] for _ in range(3)]
    assert dones == [False, False, True]


def test_splits_come_from_a_data_folder_or_alfworld_data(monkeypatch):
    env = envs.make("alfworld", split="valid_unseen", data=FIXTURES, seed=0)
    assert len(env.tasks()) == 6
    monkeypatch.setenv("ALFWORLD_DATA", str(FIXTURES))
    env = envs.make("alfworld", split="train", task_types=["pick_two_obj_and_place"])
    assert [load_game(t).category for t in env.tasks()] == ["Pick2", "Pick2"]
    observation, info = env.reset()
    assert info["category"] == "Pick2"


@pytest.mark.parametrize("kwargs,message", [
    (dict(engine="jericho", game=GAMES[0]), "engine"),
    (dict(split="test", data=FIXTURES), "split"),
    (dict(split="valid_seen", data=FIXTURES), "no 'valid_seen' split"),
    (dict(split="train", task_types=["cook"], data=FIXTURES), "task_types"),
    (dict(game=GAMES[0], max_steps=0), "max_steps"),
])
def test_bad_configuration_is_named(kwargs, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        envs.make("alfworld", **kwargs)


def test_no_data_folder_explains_how_to_get_games(monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="proxmo games generate"):
        envs.make("alfworld", split="train")


def test_grouped_rollout_in_the_local_pool():
    tasks = [str(GAMES[0]), str(GAMES[5])]
    walkthroughs = [load_game(t).walkthrough for t in tasks]
    with EnvPool("alfworld", {"split": "train", "data": str(FIXTURES)}, n_groups=2, group_size=3) as pool:
        observations, infos = pool.reset(tasks)
        assert [i["task"] for i in infos] == [tasks[0]] * 3 + [tasks[1]] * 3
        step, won = 0, {}
        while pool.active:
            actions = {}
            for slot in pool.active:
                group, member = divmod(slot, 3)
                plan = walkthroughs[group]
                # member 0 follows the walkthrough, the others idle
                actions[slot] = plan[step] if member == 0 and step < len(plan) else "look"
            for slot, (obs, reward, done, info) in pool.step(actions).items():
                if done:
                    won[slot] = info["won"]
            step += 1
            if step > 50:
                break
    assert won[0] and won[3] and not won[1] and not won[4]


def test_play_in_the_terminal():
    game = load_game(GAMES[0])
    answers = "\n".join(game.walkthrough) + "\n"
    result = CliRunner().invoke(app, ["play", "--env", "alfworld", "--game", str(GAMES[0])], input=answers)
    assert result.exit_code == 0, result.output
    assert "Your task is to:" in result.output and "episode over: won=True reward=10" in result.output
    numbered = CliRunner().invoke(app, ["play", "--game", str(GAMES[0])], input="1\nquit\n")
    assert numbered.exit_code == 0 and "   1. go to" in numbered.output


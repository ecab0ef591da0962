"""The oracle solves every test goal, a random agent rarely does, and `envs.make` builds the shop."""

import random
import statistics

import pytest

import envs
from envs.webshop import OracleAgent, RandomAgent, WebShopEnv, run_episode


def test_oracle_solves_every_test_goal(env):
    oracle = OracleAgent(env)
    episodes = [run_episode(env, oracle, task) for task in env.tasks()]
    assert len(episodes) == 500
    assert all(e.score == 1.0 and e.won and e.reward == 10.0 for e in episodes)
    assert max(e.steps for e in episodes) <= env.max_steps


def test_random_agent_scores_low(env):
    agent = RandomAgent(seed=0)
    episodes = [run_episode(env, agent, task) for task in env.tasks()]
    assert statistics.mean(e.score for e in episodes) < 0.35
    assert statistics.mean(e.won for e in episodes) < 0.15


def test_make_registers_webshop_and_plays_one_goal():
    assert "webshop" in envs.registered()
    env = envs.make("webshop", split="test", goal=3, max_steps=10)
    assert isinstance(env, envs.TextEnv)
    obs, info = env.reset()
    assert info["task"] == 3 and set(info) >= {"admissible_commands", "task", "category", "won", "score"}
    assert env.max_steps == 10


def test_a_group_of_envs_plays_the_same_goal():
    group = [envs.make("webshop", split="train", episode_seed=i) for i in range(4)]
    task = group[0].tasks()[17]
    starts = [env.reset(task) for env in group]
    assert len({obs for obs, _ in starts}) == 1 and {info["task"] for _, info in starts} == {task}
    steps = [env.step("search[protein bar]") for env in group]
    assert len({obs for obs, *_ in steps}) == 1


def test_reset_without_task_picks_goals_of_the_split_reproducibly():
    a, b = WebShopEnv(split="train", episode_seed=5), WebShopEnv(split="train", episode_seed=5)
    picks = [a.reset()[1]["task"] for _ in range(5)]
    assert picks == [b.reset()[1]["task"] for _ in range(5)]
    assert all(p >= 500 for p in picks)


def test_tasks_outside_the_split_are_refused():
    with pytest.raises(ValueError):
        WebShopEnv(split="test").reset(600)
    with pytest.raises(ValueError):
        WebShopEnv(split="train", goal=3)
    with pytest.raises(ValueError):
        WebShopEnv(split="validation")



def _oracle_actions(goal: int) -> list:
    env = WebShopEnv(split="test")
    oracle = OracleAgent(env)
    observation, info = env.reset(goal)
    actions, done = [], False
    while not done:
        actions.append(oracle.act(observation, info))
        observation, _, done, info = env.step(actions[-1])
    return actions


def test_grouped_rollout_in_the_pool_replays_the_oracle():
    from envs import EnvPool

    goals = [4, 9]
    plans = [_oracle_actions(g) for g in goals]
    with EnvPool("webshop", {"split": "test"}, n_groups=2, group_size=3) as pool:
        _, infos = pool.reset(goals)
        assert [i["task"] for i in infos] == [4, 4, 4, 9, 9, 9]
        final = {}
        for step in range(15):
            if not pool.active:
                break
            # member 0 replays the oracle's purchase; the others keep clicking "Back to Search"
            actions = {slot: plans[slot // 3][step] if slot % 3 == 0 else "click[back to search]" for slot in pool.active}
            for slot, (_, _, done, info) in pool.step(actions).items():
                if done:
                    final[slot] = info
    assert final[0]["score"] == 1.0 and final[3]["score"] == 1.0 and final[0]["won"]
    assert {slot for slot, info in final.items() if not info["won"]} == {1, 2, 4, 5}


def test_score_reward_mode_pays_the_purchase_score():
    env = WebShopEnv(split="test", reward_mode="score")
    rng = random.Random(0)
    rewards = []
    for goal in range(40):
        env.reset(goal)
        env.step(f"search[{env.goal.instruction}]")
        done, reward, info = False, 0.0, {}
        while not done:  # open the first result and buy it with whatever options are preselected
            commands = info.get("admissible_commands") or env.page.commands()
            items = [c for c in commands if c not in ("click[back to search]", "click[next >]", "click[< prev]")]
            pick = "click[buy now]" if "click[buy now]" in commands else rng.choice(items or commands)
            _, reward, done, info = env.step(pick)
        if info["score"] > 0:
            rewards.append((reward, info["score"], info["won"]))
    assert rewards, "some purchase should score above 0"
    assert all(reward == pytest.approx(10.0 * score) for reward, score, _ in rewards)
    assert any(0 < score < 1 and not won for _, score, won in rewards)

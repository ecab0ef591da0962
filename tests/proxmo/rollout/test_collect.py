"""Group rollouts: step records line up with episodes, groups share tasks, failures never train."""

import numpy as np
import pytest
import torch

import envs
from proxmo.policy import Choice, ModelConfig, Policy
from proxmo.rollout import RolloutSettings, collect
from tests.envs import toy  # noqa: F401  (registers "toy")


@pytest.fixture(scope="module")
def tiny_policy():
    config = ModelConfig(kind="tiny", hidden_size=32, num_layers=1, num_heads=2, vocab_size=300, max_prompt_tokens=256)
    return Policy.from_config(config, corpus=["task 1: start", "go win", "Your admissible actions are:"])


class TaskScript:
    """Answers in generate mode from the task in the prompt: task 1 raises, task 2 breaks the format."""

    def __init__(self):
        self.prompts = []

    def encode_prompt(self, prompt):
        self.prompts.append(prompt)
        return [len(self.prompts)]

    def generate(self, prompt_ids, temperature, generator=None, max_new_tokens=None):
        out = []
        for (index,) in prompt_ids:
            prompt = self.prompts[index - 1]
            if "task 1:" in prompt:
                text = "<think>t</think><action>raise</action>"
            elif "task 2:" in prompt:
                text = "go"  # no tags: fails the format check
            else:
                text = "<think>t</think><action>go</action>"
            out.append(Choice(-1, text, [7, 8]))
        return out

    def choose(self, *args, **kwargs):
        raise AssertionError("generate mode only")


def test_tiny_policy_rollout_records_every_step(tiny_policy):
    with envs.EnvPool("toy", {}, n_groups=3, group_size=2) as pool:
        rollout = collect(pool, tiny_policy, [0, 1, 2], RolloutSettings(envs.spec("toy"), action_mode="choose"),
                          torch.Generator().manual_seed(0), traj_offset=10)
    assert [e.traj for e in rollout.episodes] == list(range(10, 16))
    assert [e.task for e in rollout.episodes] == [0, 0, 1, 1, 2, 2]
    for episode in rollout.episodes:
        steps = [s for s in rollout.steps if s.traj == episode.traj]
        assert [s.t for s in steps] == list(range(episode.length))
        assert all(s.group == episode.group and s.won == episode.won for s in steps)
        assert all(s.action in ("go", "win") and not s.invalid for s in steps)
        assert episode.reward == sum(s.reward for s in steps)
        assert episode.won == (steps[-1].action == "win")
        assert steps[0].anchor == f"task {episode.task}: start"
        assert all(s.response_ids and s.prompt_ids for s in steps)
    batch = rollout.step_batch()
    assert len(batch.anchor) == len(rollout.steps)


def test_same_generator_seed_same_rollout(tiny_policy):
    def actions(seed):
        with envs.EnvPool("toy", {}, n_groups=2, group_size=4) as pool:
            rollout = collect(pool, tiny_policy, [2, 2], RolloutSettings(envs.spec("toy"), action_mode="choose"),
                              torch.Generator().manual_seed(seed))
        return [(s.traj, s.t, s.action) for s in rollout.steps]

    assert actions(3) == actions(3)
    assert any(actions(3) != actions(seed) for seed in range(4, 8))


def test_aborted_episodes_and_invalid_format_are_flagged():
    with envs.EnvPool("toy", {}, n_groups=3, group_size=2) as pool:
        rollout = collect(pool, TaskScript(), [0, 1, 2], RolloutSettings(envs.spec("toy"), action_mode="generate"))
    aborted = [e for e in rollout.episodes if e.aborted]
    assert [e.task for e in aborted] == [1, 1] and all("exploded" in e.error for e in aborted)
    trained = rollout.trained_steps()
    assert {s.traj for s in trained} == {0, 1, 4, 5}
    batch = rollout.step_batch()
    assert len(batch.anchor) == len(trained)
    invalid = np.asarray(batch.invalid)
    groups = np.asarray(batch.group)
    assert invalid[groups == 2].all() and not invalid[groups == 0].any()


def test_long_prompts_drop_history_before_the_task_line(tiny_policy):
    from proxmo.rollout.collect import _encode_fitting, _Slot
    from proxmo.rollout.prompts import EpisodeMemory

    memory = EpisodeMemory("find the blue mug")
    for i in range(3):
        memory.remember("go win " * 40, "go")
    state = _Slot(memory, None, "task 1: start", ["go", "win"])
    short_state = _Slot(EpisodeMemory("x"), None, "task 2: start", ["go"])
    roomy = Policy(tiny_policy.model, tiny_policy.tokenizer, tiny_policy.config.model_copy(update={"max_prompt_tokens": 10**5}))
    lengths = [len(_encode_fitting(roomy, [state], RolloutSettings(envs.spec("toy"), history_length=h, action_mode="choose"), "choose")[0])
               for h in (0, 1, 2)]
    assert lengths[0] < lengths[1] < lengths[2]
    limit = (lengths[1] + lengths[2]) // 2  # room for one history pair, not two
    tight = Policy(tiny_policy.model, tiny_policy.tokenizer, tiny_policy.config.model_copy(update={"max_prompt_tokens": limit}))
    [ids, roomy_ids] = _encode_fitting(tight, [state, short_state], RolloutSettings(envs.spec("toy"), history_length=2, action_mode="choose"), "choose")
    assert len(roomy_ids) < limit  # a prompt that fits keeps its whole history
    assert len(ids) == lengths[1]
    text = tiny_policy.tokenizer.decode(ids)
    assert "find the blue mug" in text and "task 1: start" in text and "[Observation 3:" in text

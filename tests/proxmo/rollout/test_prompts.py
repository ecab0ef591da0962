"""Prompts, the action format check and choose-mode candidates."""

import pytest

from proxmo.rollout import EpisodeMemory, candidate_actions, parse_action, render_prompt, search_queries, task_text


def test_first_step_prompt_lists_task_observation_and_actions():
    memory = EpisodeMemory("put a tomato in countertop")
    prompt = render_prompt("alfworld", memory, "You are in the middle of a room.", ["go to cabinet 1", "look"])
    assert "Your task is to: put a tomato in countertop." in prompt
    assert "Your current observation is: You are in the middle of a room." in prompt
    assert "[\ngo to cabinet 1\nlook\n]" in prompt
    assert "<think>" in prompt and "<action>" in prompt
    assert "step(s)" not in prompt


def test_history_window_keeps_only_the_last_pairs():
    memory = EpisodeMemory("task")
    for i in range(5):
        memory.remember(f"obs{i}", f"act{i}")
    prompt = render_prompt("webshop", memory, "now", ["click[buy now]"], history_length=2, action_mode="choose")
    assert "You have taken 5 step(s)" in prompt
    assert "[Observation 4: obs3]" in prompt and "[Action 5: act4]" in prompt
    assert "obs2" not in prompt and "act2" not in prompt
    assert "You are now at step 6" in prompt
    assert "<think>" not in prompt
    none = render_prompt("webshop", memory, "now", ["x"], history_length=0)
    assert "obs4" not in none


@pytest.mark.parametrize(
    "response, action, valid",
    [
        ("<think>go</think><action>Go To Cabinet 1</action>", "go to cabinet 1", True),
        ("<think>a</think>\n<action> look </action>", "look", True),
        ("<action>look</action>", "look", False),  # no reasoning
        ("<action>look</action><think>late</think>", "look", False),  # reasoning after the action
        ("<think>x</think><action>a</action><action>b</action>", "b", False),  # two actions
        ("<think>x</think><action></action>", "", False),
        ("go to cabinet 1", "go to cabinet 1", False),
    ],
)
def test_parse_action(response, action, valid):
    assert parse_action(response) == (action, valid)


def test_parse_action_without_think_requirement():
    assert parse_action("<action>look</action>", require_think=False) == ("look", True)


def test_task_text_from_each_environment():
    assert task_text("alfworld", "You see a fridge 1.\n\nYour task is to: heat some egg and put it in garbagecan.", {}) == (
        "heat some egg and put it in garbagecan"
    )
    assert task_text("webshop", "WebShop [SEP] Search", {"instruction": "i need a red mug"}) == "i need a red mug"


def test_search_placeholder_becomes_concrete_queries():
    instruction = "i need a face moisturizer that is non comedogenic in size 1.7 oz, and price lower than 50.00 dollars"
    queries = search_queries(instruction)
    assert queries[0] == instruction
    assert queries[1] == "face moisturizer that is non comedogenic in size 1.7 oz"
    actions = candidate_actions(["search[<your query>]", "click[back to search]"], instruction)
    assert actions == [f"search[{q}]" for q in queries] + ["click[back to search]"]

"""Prompts, the action format check and choose-mode candidates."""

import pytest

import envs
from proxmo.rollout import EpisodeMemory, parse_action, render_prompt, response_format

ALFWORLD_INTRO = envs.spec("alfworld").intro


def test_first_step_prompt_lists_task_observation_and_actions():
    memory = EpisodeMemory("put a tomato in countertop")
    prompt = render_prompt(ALFWORLD_INTRO, memory, "You are in the middle of a room.", ["go to cabinet 1", "look"])
    assert prompt.startswith(ALFWORLD_INTRO)
    assert "Your task is to: put a tomato in countertop." in prompt
    assert "Your current observation is: You are in the middle of a room." in prompt
    assert "[\ngo to cabinet 1\nlook\n]" in prompt
    assert "<think>" in prompt and "<action>" in prompt
    assert "step(s)" not in prompt


def test_history_window_keeps_only_the_last_pairs():
    memory = EpisodeMemory("task")
    for i in range(5):
        memory.remember(f"obs{i}", f"act{i}")
    prompt = render_prompt("intro", memory, "now", ["click[buy now]"], history_length=2, action_mode="choose")
    assert "You have taken 5 step(s)" in prompt
    assert "[Observation 4: obs3]" in prompt and "[Action 5: act4]" in prompt
    assert "obs2" not in prompt and "act2" not in prompt
    assert "You are now at step 6" in prompt
    assert "<think>" not in prompt
    none = render_prompt("intro", memory, "now", ["x"], history_length=0)
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


def test_compact_prompt_holds_task_recent_actions_and_observation_only():
    memory = EpisodeMemory("put a tomato in countertop")
    assert render_prompt("intro", memory, " You see a fridge 1. ", ["look"], style="compact") == (
        "task: put a tomato in countertop\nnow: You see a fridge 1."
    )
    for i in range(4):
        memory.remember(f"obs{i}", f"act{i}")
    prompt = render_prompt("intro", memory, "now here", ["look"], history_length=2, style="compact")
    assert prompt == "task: put a tomato in countertop\ndid: act2 | act3\nnow: now here"
    assert "intro" not in prompt and "obs" not in prompt
    assert render_prompt("intro", EpisodeMemory(""), "x", [], style="compact") == "now: x"
    with pytest.raises(ValueError, match="style"):
        render_prompt("intro", memory, "x", [], style="verbose")


def test_choose_candidates_are_tagged_in_chat_style_and_bare_in_compact():
    assert response_format("chat")("look") == "<action>look</action>"
    assert response_format("compact")("look") == "look"


def test_task_text_from_each_environment():
    alfworld, webshop = envs.spec("alfworld"), envs.spec("webshop")
    observation = "You see a fridge 1.\n\nYour task is to: heat some egg and put it in garbagecan."
    assert alfworld.task_text(observation, {}) == "heat some egg and put it in garbagecan"
    assert webshop.task_text("WebShop [SEP] Search", {"instruction": "i need a red mug"}) == "i need a red mug"


def test_search_placeholder_becomes_concrete_queries():
    from envs.webshop import search_queries

    instruction = "i need a face moisturizer that is non comedogenic in size 1.7 oz, and price lower than 50.00 dollars"
    queries = search_queries(instruction)
    assert queries[0] == instruction
    assert queries[1] == "face moisturizer that is non comedogenic in size 1.7 oz"
    actions = envs.spec("webshop").candidates(["search[<your query>]", "click[back to search]"], instruction)
    assert actions == [f"search[{q}]" for q in queries] + ["click[back to search]"]

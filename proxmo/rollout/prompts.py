"""Prompt templates of the agent: task, recent history, current observation, admissible actions, answer format.

They follow the structure of the reference runs' ALFWorld and WebShop templates: the task on its own
line (for WebShop the instruction, stripped from the observation), how many steps were taken and the
last ``history_length`` (observation, action) pairs, the current observation, the admissible actions
one per line, and what the answer must look like. ``generate`` mode asks for reasoning in
``<think>`` tags and the action in ``<action>`` tags; ``choose`` mode asks for the action tags only
(the policy scores the admissible actions, so there is no free text to reason in).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

INTRO = {
    "alfworld": "You are an expert agent acting in a household (ALFWorld).",
    "webshop": "You are an expert agent shopping on the WebShop e-commerce site.",
}

ANSWER = {
    "generate": (
        "Now choose your next action. First think step by step about the situation and which admissible "
        "action serves the task best, inside <think> </think> tags. Then give exactly one admissible "
        "action inside <action> </action> tags."
    ),
    "choose": "Now choose your next action: give exactly one admissible action inside <action> </action> tags.",
}

_ALFWORLD_TASK = re.compile(r"Your task is to:\s*(.+?)\s*$", re.S)


@dataclass
class EpisodeMemory:
    """What the prompt of one running episode needs: its task text and its past steps."""

    task: str
    history: List[Tuple[str, str]] = field(default_factory=list)
    """(observation, action) pairs in order."""

    def remember(self, observation: str, action: str) -> None:
        self.history.append((observation, action))


def task_text(env_name: str, observation: str, info: dict) -> str:
    """The task of an episode, from its first observation and info."""
    if env_name == "webshop" and info.get("instruction"):
        return str(info["instruction"])
    match = _ALFWORLD_TASK.search(observation)
    if match:
        return match.group(1).rstrip(".")
    return ""


def render_prompt(
    env_name: str,
    memory: EpisodeMemory,
    observation: str,
    actions: Sequence[str],
    history_length: int = 2,
    action_mode: str = "generate",
) -> str:
    """The user message of one step."""
    lines = [INTRO.get(env_name, "You are an expert agent acting in a text environment.")]
    if memory.task:
        lines.append(f"Your task is to: {memory.task}.")
    steps = len(memory.history)
    recent = memory.history[-history_length:] if history_length > 0 else []
    if steps == 0:
        lines.append(f"Your current observation is: {observation}")
    else:
        lines.append(f"You have taken {steps} step(s) so far. The last {len(recent)} observation(s) and your action(s):")
        first = steps - len(recent) + 1
        for offset, (past_observation, past_action) in enumerate(recent):
            lines.append(f"[Observation {first + offset}: {past_observation}]")
            lines.append(f"[Action {first + offset}: {past_action}]")
        lines.append(f"You are now at step {steps + 1}. Your current observation is: {observation}")
    lines.append("Your admissible actions are:")
    lines.append("[")
    lines.extend(actions)
    lines.append("]")
    lines.append(ANSWER[action_mode])
    return "\n".join(lines)


_ACTION_TAG = re.compile(r"<action>(.*?)</action>", re.S | re.I)
_THINK_TAG = re.compile(r"<think>.*?</think>", re.S | re.I)


def parse_action(response: str, require_think: bool = True) -> Tuple[str, bool]:
    """The action in a model response and whether the response passed the format check.

    Valid means: exactly one ``<action>...</action>`` with non-empty text and, when
    ``require_think``, a ``<think>...</think>`` block before it. An invalid response still gives an
    action to send to the environment: the last action tag's text if any, else the raw response
    (the environment treats it as an invalid action, and the step carries the penalty).
    """
    actions = _ACTION_TAG.findall(response)
    action = actions[-1].strip() if actions else response.strip()
    valid = len(actions) == 1 and bool(action)
    if valid and require_think:
        think = _THINK_TAG.search(response)
        valid = think is not None and think.start() < response.lower().find("<action>")
    return action.lower() if valid else action, valid


def format_action(action: str) -> str:
    """The response text of an action in ``choose`` mode."""
    return f"<action>{action}</action>"


_PRICE = re.compile(r",?\s*and price lower than .*$", re.I)
_OPENING = re.compile(r"^(i need|i want|i am looking for|i'm looking for|find me|looking for)\s+(an? )?", re.I)


def search_queries(instruction: str) -> List[str]:
    """Concrete queries that stand in for ``search[<your query>]`` in ``choose`` mode.

    The whole instruction, and its product phrase (opening words and price clause removed).
    """
    full = instruction.strip().rstrip(".")
    short = _OPENING.sub("", _PRICE.sub("", full)).strip(" ,")
    queries = [full]
    if short and short != full:
        queries.append(short)
    return queries


def candidate_actions(admissible: Sequence[str], task: str) -> List[str]:
    """The actions ``choose`` mode samples from: the admissible ones, search placeholders made concrete."""
    result: List[str] = []
    for action in admissible:
        if action.startswith("search[") and "<" in action:
            result.extend(f"search[{query}]" for query in search_queries(task) if query)
        else:
            result.append(action)
    return result


def shown_actions(admissible: Sequence[str], task: str, action_mode: str) -> List[str]:
    """The actions listed in the prompt: in ``choose`` mode exactly the candidates."""
    return candidate_actions(admissible, task) if action_mode == "choose" else list(admissible)


__all__ = [
    "ANSWER",
    "EpisodeMemory",
    "INTRO",
    "candidate_actions",
    "format_action",
    "parse_action",
    "render_prompt",
    "search_queries",
    "shown_actions",
    "task_text",
]

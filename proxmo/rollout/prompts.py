"""Prompt templates of the agent: task, recent history, current observation, admissible actions, answer format.

Two styles:

* ``chat`` follows the structure of the reference runs' ALFWorld and WebShop templates: the
  environment's introduction, the task on its own line, how many steps were taken and the last
  ``history_length`` (observation, action) pairs, the current observation, the admissible actions one
  per line, and what the answer must look like. ``generate`` mode asks for reasoning in ``<think>``
  tags and the action in ``<action>`` tags; ``choose`` mode asks for the action tags only.
* ``compact`` is for small models trained from scratch: the task, the last ``history_length`` actions
  and the current observation, nothing else (fixed instructions are wording a chat model needs, and
  for a tiny model they only cost compute). In ``choose`` mode a candidate is the bare action text.

Everything environment-specific (the introduction, the task text) comes from the environment's
:class:`envs.EnvSpec`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import List, Literal, Sequence, Tuple

PromptStyle = Literal["chat", "compact"]
PROMPT_STYLES: Tuple[str, ...] = ("chat", "compact")

HISTORY_LENGTH = 2
"""Past (observation, action) pairs a prompt shows, unless a run says otherwise (``rollout.history_length``)."""

ANSWER = {
    "generate": (
        "Now choose your next action. First think step by step about the situation and which admissible "
        "action serves the task best, inside <think> </think> tags. Then give exactly one admissible "
        "action inside <action> </action> tags."
    ),
    "choose": "Now choose your next action: give exactly one admissible action inside <action> </action> tags.",
}


@dataclass
class EpisodeMemory:
    """What the prompt of one running episode needs: its task text and its past steps."""

    task: str
    history: List[Tuple[str, str]] = field(default_factory=list)
    """(observation, action) pairs in order."""

    def remember(self, observation: str, action: str) -> None:
        self.history.append((observation, action))


def render_prompt(
    intro: str,
    memory: EpisodeMemory,
    observation: str,
    actions: Sequence[str],
    history_length: int = HISTORY_LENGTH,
    action_mode: str = "generate",
    style: str = "chat",
) -> str:
    """The user message of one step."""
    if style == "compact":
        return _compact_prompt(memory, observation, history_length)
    if style != "chat":
        raise ValueError(f"style: expected one of {list(PROMPT_STYLES)}, got {style!r}")
    lines = [intro]
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


def _compact_prompt(memory: EpisodeMemory, observation: str, history_length: int) -> str:
    lines = [f"task: {memory.task}"] if memory.task else []
    recent = memory.history[-history_length:] if history_length > 0 else []
    if recent:
        lines.append("did: " + " | ".join(action for _, action in recent))
    lines.append(f"now: {observation.strip()}")
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
    """The response text of an action in ``choose`` mode with the chat style."""
    return f"<action>{action}</action>"


def response_format(style: str):
    """How ``choose`` mode writes a candidate as a response: in action tags (chat) or bare (compact)."""
    return format_action if style == "chat" else _bare


def _bare(action: str) -> str:
    return action


__all__ = [
    "ANSWER",
    "EpisodeMemory",
    "PROMPT_STYLES",
    "PromptStyle",
    "format_action",
    "parse_action",
    "render_prompt",
    "response_format",
]

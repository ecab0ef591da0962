"""Multi-turn group rollouts: the policy plays every slot of an environment pool until all episodes end.

Every environment step the policy takes becomes a :class:`StepRecord` (the row of a
:class:`~proxmo.advantage.StepBatch` plus its prompt and response tokens); every episode an
:class:`EpisodeRecord`. Episodes whose environment failed (``info["aborted"]``) are kept in the
records, flagged, and left out of :meth:`Rollout.step_batch` so a broken environment never trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Sequence

import numpy as np
import torch

from envs.base import EnvSpec
from proxmo.advantage import StepBatch
from proxmo.policy.config import LENGTH_NORMALIZE
from proxmo.rollout.prompts import HISTORY_LENGTH, EpisodeMemory, parse_action, render_prompt, response_format


class ActingPolicy(Protocol):
    """What a rollout needs from a policy (see :class:`proxmo.policy.Policy`)."""

    def encode_prompt(self, prompt: str) -> List[int]: ...

    def choose(self, prompt_ids, candidates, temperature, generator=None, response_format=..., length_normalize=LENGTH_NORMALIZE): ...

    def generate(self, prompt_ids, temperature, generator=None, max_new_tokens=None): ...


class Pool(Protocol):
    """What a rollout needs from an environment pool (see :class:`envs.EnvPool`)."""

    n_groups: int
    group_size: int

    @property
    def n_slots(self) -> int: ...

    @property
    def active(self) -> List[int]: ...

    def reset(self, tasks=None): ...

    def step(self, actions): ...


@dataclass
class RolloutSettings:
    """How the policy acts during one collection."""

    env: EnvSpec = field(default_factory=EnvSpec)
    """The environment's introduction, task reader and candidate actions."""
    history_length: int = HISTORY_LENGTH
    temperature: float = 1.0
    action_mode: str = "generate"
    policy_batch: int = 256
    """Prompts sent to the policy in one call (the policy splits them further by its token budget)."""
    length_normalize: bool = LENGTH_NORMALIZE
    """choose mode: rank candidates by their mean token log-probability rather than the sum."""
    prompt_style: str = "chat"
    """chat: the reference runs' template; compact: task, recent actions and observation only."""


@dataclass
class StepRecord:
    """One environment step the policy took."""

    group: int
    traj: int
    t: int
    anchor: str
    prompt_ids: List[int]
    response_ids: List[int]
    response: str
    action: str
    invalid: bool
    reward: float = 0.0
    won: bool = False
    choice: int = -1
    """choose mode: the index of the action among ``candidate_ids``."""
    logprob: Optional[float] = None
    """choose mode: log pi(choice | prompt) when it was sampled (the behaviour policy)."""
    candidate_ids: Optional[List[List[int]]] = None
    """choose mode: the response ids of every candidate the policy chose among."""
    next_anchor: Optional[str] = None
    """The observation the step led to (GraphGPO's state graph reads it)."""


@dataclass
class EpisodeRecord:
    """One episode: its task, outcome and length."""

    group: int
    traj: int
    task: Any
    category: Optional[str]
    won: bool = False
    reward: float = 0.0
    length: int = 0
    invalid_steps: int = 0
    score: Optional[float] = None
    """WebShop purchase score of the final step (when the environment reports one)."""
    goal_condition_rate: Optional[float] = None
    aborted: bool = False
    error: Optional[str] = None


@dataclass
class Rollout:
    """Everything one collection produced."""

    steps: List[StepRecord] = field(default_factory=list)
    episodes: List[EpisodeRecord] = field(default_factory=list)

    def trained_steps(self) -> List[StepRecord]:
        """The steps of episodes that did not abort, in record order."""
        aborted = {e.traj for e in self.episodes if e.aborted}
        return [s for s in self.steps if s.traj not in aborted]

    def step_batch(self) -> StepBatch:
        """The advantage estimator's input for :meth:`trained_steps` (same order)."""
        steps = self.trained_steps()
        if not steps:
            raise ValueError("rollout: no step of a finished episode to train on (every episode aborted?)")
        return StepBatch(
            group=np.array([s.group for s in steps], dtype=np.int64),
            traj=np.array([s.traj for s in steps], dtype=np.int64),
            t=np.array([s.t for s in steps], dtype=np.int64),
            reward=np.array([s.reward for s in steps], dtype=np.float64),
            invalid=np.array([s.invalid for s in steps], dtype=bool),
            won=np.array([s.won for s in steps], dtype=bool),
            anchor=[s.anchor for s in steps],
            tokens=np.array([max(1, len(s.response_ids)) for s in steps], dtype=np.int64),
            next_anchor=[s.next_anchor for s in steps],
        )


@dataclass
class _Slot:
    memory: EpisodeMemory
    episode: EpisodeRecord
    observation: str
    admissible: List[str]
    steps: List[StepRecord] = field(default_factory=list)


def collect(
    pool: Pool,
    policy: ActingPolicy,
    tasks: Optional[Sequence[Any]],
    settings: RolloutSettings,
    generator: Optional[torch.Generator] = None,
    traj_offset: int = 0,
) -> Rollout:
    """Play one episode in every slot of ``pool``; group ``g`` plays ``tasks[g]``.

    Args:
        pool: the environment pool (``n_groups`` x ``group_size`` slots).
        policy: acts on prompts (``choose`` or ``generate`` per ``settings.action_mode``).
        tasks: one task id per group, or ``None`` to let the environments pick.
        settings: prompt and sampling settings.
        generator: the torch generator all sampling draws from (reproducible rollouts).
        traj_offset: trajectory ids are ``traj_offset + slot``.
    """
    observations, infos = pool.reset(tasks)
    rollout = Rollout()
    slots: Dict[int, _Slot] = {}
    for slot in range(pool.n_slots):
        info = infos[slot]
        group = slot // pool.group_size
        episode = EpisodeRecord(group, traj_offset + slot, info.get("task"), info.get("category"))
        rollout.episodes.append(episode)
        if info.get("aborted"):
            episode.aborted, episode.error = True, info.get("error")
            continue
        memory = EpisodeMemory(settings.env.task_text(observations[slot], info))
        slots[slot] = _Slot(memory, episode, observations[slot], list(info.get("admissible_commands", [])))
    while pool.active:
        active = [slot for slot in pool.active if slot in slots]
        actions = _act(policy, [slots[s] for s in active], settings, generator)
        results = pool.step({slot: record.action for slot, record in zip(active, actions)})
        for slot, record in zip(active, actions):
            _record_step(slots[slot], record, results[slot])
        for slot, result in results.items():  # actors that died took other slots with them
            if slot not in active and slot in slots and result.info.get("aborted"):
                _finish(slots[slot], result.info)
    for state in slots.values():
        rollout.steps.extend(state.steps)
    return rollout


def _record_step(state: _Slot, record: StepRecord, result: Any) -> None:
    observation, reward, done, info = result
    record.reward = float(reward)
    record.next_anchor = observation
    state.steps.append(record)
    state.memory.remember(state.observation, record.action)
    state.observation = observation
    state.admissible = list(info.get("admissible_commands", []))
    episode = state.episode
    episode.length += 1
    episode.reward += float(reward)
    episode.invalid_steps += int(record.invalid)
    if done:
        _finish(state, info)


def _finish(state: _Slot, info: Dict[str, Any]) -> None:
    episode = state.episode
    episode.won = bool(info.get("won", False))
    if "score" in info:
        episode.score = float(info["score"])
    if "goal_condition_success_rate" in info:
        episode.goal_condition_rate = float(info["goal_condition_success_rate"])
    if info.get("aborted"):
        episode.aborted, episode.error = True, info.get("error")
    for step in state.steps:
        step.won = episode.won


def _new_record(state: _Slot, prompt_ids: List[int], choice: Any, action: str, invalid: bool) -> StepRecord:
    """The record of the step ``state``'s episode is about to take."""
    episode = state.episode
    return StepRecord(episode.group, episode.traj, len(state.steps), state.observation, prompt_ids,
                      list(choice.response_ids), choice.text, action, invalid, choice=choice.index,
                      logprob=choice.logprob, candidate_ids=choice.candidate_ids)


def _encode_fitting(policy: ActingPolicy, states: List[_Slot], settings: RolloutSettings, mode: str) -> List[List[int]]:
    """The step's prompt tokens of each state, dropping the oldest history pairs while a prompt hits the limit.

    The policy cuts an over-long prompt from the left, which would remove the task line first; the
    history is the part a prompt can best do without. All prompts are encoded in one call; only those
    at the limit are encoded again with less history.
    """
    limit = getattr(getattr(policy, "config", None), "max_prompt_tokens", None)
    encode_many = getattr(policy, "encode_prompts", None) or (lambda texts: [policy.encode_prompt(t) for t in texts])

    def render(state: _Slot, history: int) -> str:
        actions = settings.env.candidates(state.admissible, state.memory.task) if mode == "choose" else state.admissible
        return render_prompt(settings.env.intro, state.memory, state.observation, actions, history, mode,
                             settings.prompt_style)

    ids = encode_many([render(state, settings.history_length) for state in states])
    for i, state in enumerate(states):
        for history in range(settings.history_length - 1, -1, -1):
            if limit is None or len(ids[i]) < limit or not state.memory.history:
                break
            ids[i] = encode_many([render(state, history)])[0]
    return ids


def _act(
    policy: ActingPolicy, states: List[_Slot], settings: RolloutSettings, generator: Optional[torch.Generator]
) -> List[StepRecord]:
    """One action per state, in the given order."""
    records: List[StepRecord] = []
    for start in range(0, len(states), settings.policy_batch):
        chunk = states[start : start + settings.policy_batch]
        records.extend(_act_chunk(policy, chunk, settings, generator))
    return records


def _act_chunk(
    policy: ActingPolicy, states: List[_Slot], settings: RolloutSettings, generator: Optional[torch.Generator]
) -> List[StepRecord]:
    mode = settings.action_mode
    candidates = [settings.env.candidates(s.admissible, s.memory.task) for s in states]
    if mode == "choose" and any(not c for c in candidates):
        mode = "generate"  # nothing to choose from (an environment with no admissible list): write freely
    prompt_ids = _encode_fitting(policy, states, settings, mode)
    records = []
    if mode == "choose":
        choices = policy.choose(prompt_ids, candidates, settings.temperature, generator,
                                response_format=response_format(settings.prompt_style),
                                length_normalize=settings.length_normalize)
        for state, ids, options, choice in zip(states, prompt_ids, candidates, choices):
            records.append(_new_record(state, ids, choice, options[choice.index], invalid=False))
    else:
        choices = policy.generate(prompt_ids, settings.temperature, generator)
        for state, ids, choice in zip(states, prompt_ids, choices):
            action, valid = parse_action(choice.text)
            records.append(_new_record(state, ids, choice, action, invalid=not valid))
    return records

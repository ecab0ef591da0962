"""Group rollouts of a policy in an environment pool, and the prompts the policy reads."""

from proxmo.rollout.collect import EpisodeRecord, Rollout, RolloutSettings, StepRecord, collect
from proxmo.rollout.prompts import (
    EpisodeMemory,
    candidate_actions,
    format_action,
    parse_action,
    render_prompt,
    search_queries,
    task_text,
)

__all__ = [
    "EpisodeMemory",
    "EpisodeRecord",
    "Rollout",
    "RolloutSettings",
    "StepRecord",
    "candidate_actions",
    "collect",
    "format_action",
    "parse_action",
    "render_prompt",
    "search_queries",
    "task_text",
]

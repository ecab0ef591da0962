"""Group rollouts of a policy in an environment pool, and the prompts the policy reads."""

from proxmo.extras import require

require("train", "rollouts (proxmo.rollout)", ["torch", "transformers"])

from proxmo.rollout.collect import EpisodeRecord, Rollout, RolloutSettings, StepRecord, collect
from proxmo.rollout.prompts import EpisodeMemory, format_action, parse_action, render_prompt, response_format

__all__ = [
    "EpisodeMemory",
    "EpisodeRecord",
    "Rollout",
    "RolloutSettings",
    "StepRecord",
    "collect",
    "format_action",
    "parse_action",
    "render_prompt",
    "response_format",
]

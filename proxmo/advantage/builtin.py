"""The estimators of the ProxMO paper: GRPO, GiGPO and ProxMO, with their options (docs/algorithm.md)."""

from __future__ import annotations

import math
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from proxmo.advantage.batch import PreparedBatch
from proxmo.advantage.episode import episode_component
from proxmo.advantage.options import EstimatorOptions, Normalization, normalization_field
from proxmo.advantage.registry import Components, register_estimator
from proxmo.advantage.step import step_component

StepGrouping = Literal["none", "exact", "similar", "soft"]
FitScope = Literal["batch", "group"]

# sigmoid(1) - 1/2: the largest value of sigmoid(x) - 1/2 over the modulation's input range [0, 1].
_SIGMOID_ONE_MINUS_HALF = 1.0 / (1.0 + math.exp(-1.0)) - 0.5


class GrpoOptions(EstimatorOptions):
    normalization: Normalization = normalization_field("mean_std_norm", "episode scores")


class GigpoOptions(EstimatorOptions):
    normalization: Normalization = normalization_field("mean_norm")
    step_grouping: Literal["exact", "similar"] = Field(
        "exact", description="Step groups of identical anchors (exact) or of difflib-similar ones (similar).")
    similarity_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="difflib ratio needed to join a cluster (step_grouping='similar').")
    step_weight: float = Field(1.0, ge=0.0, description="omega: weight of the step component.")


class ProxmoOptions(EstimatorOptions):
    normalization: Normalization = normalization_field("mean_norm")
    modulation: bool = Field(True, description="Success-rate-aware modulation of the episode advantage.")
    alpha: float = Field(4.0, gt=0.0, description="Exponent of the success rate inside the modulation.")
    target_range: float = Field(
        0.05, ge=0.0, lt=1.0, description="delta: the largest deviation of the modulation weight from 1.")
    beta: Optional[float] = Field(
        None, ge=0.0, description="Modulation strength; derived from target_range when not given.")
    step_grouping: StepGrouping = Field(
        "soft", description="Step-level baseline: none, exact anchors, similar anchors (difflib), soft proximity.")
    similarity_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="difflib ratio needed to join a cluster (step_grouping='similar').")
    temperature: float = Field(0.1, gt=0.0, description="tau of the proximity softmax.")
    target_group_size: Optional[float] = Field(
        None, ge=1.0,
        description="Adaptive tau: per episode group, choose tau so that the mean effective step-group size "
        "1/sum(w^2) equals this value (capped by the group's size). Off by default.")
    step_weight: float = Field(1.0, ge=0.0, description="omega: weight of the step component.")
    max_features: Optional[int] = Field(1024, ge=1, description="Vocabulary cap of the text vectoriser.")
    leave_one_out: bool = Field(False, description="Exclude the row itself from its soft baseline.")
    keep_single_char_tokens: bool = Field(
        False, description="Token pattern keeps one-character tokens (e.g. the digit in 'cabinet 1').")
    fit_scope: FitScope = Field("batch", description="Fit the vectoriser on the whole batch or per episode group.")
    similarity_backend: str = Field("tfidf", description="Registered similarity backend: tfidf, bm25, ...")

    @field_validator("similarity_backend")
    @classmethod
    def _registered_backend(cls, value: str) -> str:
        from proxmo.advantage.registry import SIMILARITY_BACKENDS

        if value not in SIMILARITY_BACKENDS:
            raise ValueError(f"unknown backend {value!r}; registered: {sorted(SIMILARITY_BACKENDS)}")
        return value

    @model_validator(mode="after")
    def _check(self) -> "ProxmoOptions":
        default_range = type(self).model_fields["target_range"].default
        if self.beta is not None and "target_range" in self.model_fields_set and self.target_range != default_range:
            raise ValueError("beta and target_range: give one of them, not both (beta is derived from target_range)")
        return self

    @property
    def effective_beta(self) -> float:
        """beta, given directly or derived from the target range delta."""
        return self.beta if self.beta is not None else self.target_range / _SIGMOID_ONE_MINUS_HALF


def episode_plus_step(batch: PreparedBatch, config) -> Components:
    """The composition of the paper's estimators: A = A^E + omega * A^S (GRPO: A^E alone)."""
    episode = episode_component(batch, config)
    grouping = getattr(config, "step_grouping", "none")
    step = step_component(batch, config, grouping)
    diagnostics = {
        "success_rate_mean": float(episode.success_rate.mean()),
        "modulation_weight_mean": float(episode.weight.mean()),
        "modulation_weight_min": float(episode.weight.min()),
        "modulation_weight_max": float(episode.weight.max()),
    }
    if grouping != "none":
        diagnostics["step_group_size_mean"] = float(step.group_size.mean())
        diagnostics["step_singleton_fraction"] = step.singleton_fraction
    weight = getattr(config, "step_weight", 1.0)
    return Components(episode=episode.advantage, step=step.advantage, advantages=episode.advantage + weight * step.advantage,
                      diagnostics=diagnostics)


register_estimator(
    "grpo", options=GrpoOptions, compute=episode_plus_step,
    description="Group-relative episode advantage, z-scored within each group.",
)
register_estimator(
    "gigpo", options=GigpoOptions, compute=episode_plus_step,
    description="Episode advantage plus step advantage within groups of identical anchor states "
    "(the released ALFWorld/WebShop scripts use normalization=mean_std_norm).",
)
register_estimator(
    "proxmo", options=ProxmoOptions, compute=episode_plus_step,
    description="Success-rate-aware modulated episode advantage plus a proximity-weighted step baseline.",
)

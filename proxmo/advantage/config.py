"""AdvantageConfig: every knob of the GRPO / GiGPO / ProxMO estimators, with the paper's defaults (docs/algorithm.md)."""

from __future__ import annotations

import math
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

Preset = Literal["paper", "official"]
Normalization = Literal["mean_norm", "mean_std_norm"]
StepGrouping = Literal["none", "exact", "similar", "soft"]
FitScope = Literal["batch", "group"]

# sigmoid(1) - 1/2: the largest value of sigmoid(x) - 1/2 over the modulation's input range [0, 1].
_SIGMOID_ONE_MINUS_HALF = 1.0 / (1.0 + math.exp(-1.0)) - 0.5


class AdvantageConfig(BaseModel):
    """Configuration of one advantage estimator.

    Fields left at ``None`` take the default of the chosen ``estimator`` (see
    :func:`proxmo.advantage.estimator_defaults`); everything else has the defaults of the
    reference runs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_assignment=True, allow_inf_nan=False)

    estimator: str = Field("proxmo", description="Registered estimator name: grpo, gigpo, proxmo, ...")
    preset: Preset = Field(
        "paper",
        description="Episode statistics: 'paper' (over trajectories, p = success rate) or "
        "'official' (over rows, p = clip(mean score, 0, 1), as the released code does).",
    )
    gamma: float = Field(0.95, ge=0.0, le=1.0, description="Discount of the step returns.")
    invalid_penalty: float = Field(0.1, ge=0.0, description="lambda: subtracted per invalid action.")
    epsilon: float = Field(1e-6, gt=0.0, description="Added to std before dividing.")
    normalization: Optional[Normalization] = Field(
        None, description="Episode level and exact step groups; default per estimator."
    )
    modulation: Optional[bool] = Field(
        None, description="Success-rate-aware modulation of the episode advantage; default per estimator."
    )
    alpha: float = Field(4.0, gt=0.0, description="Exponent of the success rate inside the modulation.")
    target_range: float = Field(
        0.05, ge=0.0, lt=1.0, description="delta: the largest deviation of the modulation weight from 1."
    )
    beta: Optional[float] = Field(
        None, ge=0.0, description="Modulation strength; derived from target_range when not given."
    )
    step_grouping: Optional[StepGrouping] = Field(
        None, description="Step-level baseline: none, exact anchors, similar anchors (difflib), soft proximity."
    )
    similarity_threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="difflib ratio needed to join a cluster (step_grouping='similar')."
    )
    temperature: float = Field(0.1, gt=0.0, description="tau of the proximity softmax.")
    target_group_size: Optional[float] = Field(
        None,
        ge=1.0,
        description="Adaptive tau: per episode group, choose tau so that the mean effective "
        "step-group size 1/sum(w^2) equals this value (capped by the group's size). Off by default.",
    )
    step_weight: float = Field(1.0, ge=0.0, description="omega: weight of the step component.")
    max_features: Optional[int] = Field(1024, ge=1, description="Vocabulary cap of the text vectoriser.")
    leave_one_out: bool = Field(False, description="Exclude the row itself from its soft baseline.")
    keep_single_char_tokens: bool = Field(
        False, description="Token pattern keeps one-character tokens (e.g. the digit in 'cabinet 1')."
    )
    fit_scope: FitScope = Field("batch", description="Fit the vectoriser on the whole batch or per episode group.")
    similarity_backend: str = Field("tfidf", description="Registered similarity backend: tfidf, bm25, ...")

    @model_validator(mode="after")
    def _check(self) -> "AdvantageConfig":
        from proxmo.advantage.registry import ESTIMATORS, SIMILARITY_BACKENDS

        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator: unknown estimator {self.estimator!r}; registered: {sorted(ESTIMATORS)}")
        if self.similarity_backend not in SIMILARITY_BACKENDS:
            raise ValueError(
                f"similarity_backend: unknown backend {self.similarity_backend!r}; "
                f"registered: {sorted(SIMILARITY_BACKENDS)}"
            )
        if self.beta is not None and "target_range" in self.model_fields_set:
            raise ValueError("beta and target_range: give one of them, not both (beta is derived from target_range)")
        return self

    @property
    def effective_beta(self) -> float:
        """beta, given directly or derived from the target range delta."""
        return self.beta if self.beta is not None else self.target_range / _SIGMOID_ONE_MINUS_HALF

    def resolved(self) -> "AdvantageConfig":
        """A copy with every per-estimator default filled in."""
        from proxmo.advantage.registry import ESTIMATORS

        defaults = ESTIMATORS[self.estimator].defaults
        updates = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        return self.model_copy(update=updates) if updates else self

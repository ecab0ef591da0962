"""Advantage estimators for group-based RL on multi-turn agents: GRPO, GiGPO, ProxMO and the methods since.

Pure numpy / scipy; call it from any trainer::

    from proxmo.advantage import StepBatch, AdvantageConfig, compute_advantages
    result = compute_advantages(StepBatch(group=..., traj=..., t=..., reward=..., invalid=..., won=..., anchor=...),
                                AdvantageConfig(estimator="proxmo"))
    result.advantages  # one float32 per step row, in the input order
"""

from proxmo.advantage.batch import StepBatch
from proxmo.advantage.config import AdvantageConfig
from proxmo.advantage.options import EstimatorOptions, NoOptions
from proxmo.advantage.registry import (
    ESTIMATORS,
    Components,
    SIMILARITY_BACKENDS,
    estimator_defaults,
    register_estimator,
    register_similarity_backend,
)
from proxmo.advantage.registry import SimilarityBackend
from proxmo.advantage.similarity import Bm25Backend, EmbeddingBackend, TfidfBackend
from proxmo.advantage.estimators import AdvantageResult, compute_advantages
from proxmo.advantage.builtin import episode_plus_step

__all__ = [
    "AdvantageConfig",
    "AdvantageResult",
    "Bm25Backend",
    "Components",
    "ESTIMATORS",
    "EmbeddingBackend",
    "EstimatorOptions",
    "NoOptions",
    "SIMILARITY_BACKENDS",
    "SimilarityBackend",
    "StepBatch",
    "TfidfBackend",
    "compute_advantages",
    "episode_plus_step",
    "estimator_defaults",
    "register_estimator",
    "register_similarity_backend",
]

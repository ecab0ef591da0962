"""Registries of estimators and similarity backends: adding one is a single `register_*` call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Protocol, Sequence, Type

import numpy as np

from proxmo.advantage.config import SHARED_FIELDS
from proxmo.advantage.options import EstimatorOptions, NoOptions


class SimilarityBackend(Protocol):
    """Turns texts into l2-normalised row vectors; the similarity of two texts is their dot product."""

    def vectorize(self, texts: Sequence[str], counts: np.ndarray, n_rows: int, config) -> Any:
        """Vectors of ``texts`` (distinct), where text k stands for ``counts[k]`` rows of ``n_rows``:
        a dense array or a scipy sparse matrix, one row per text."""
        ...


@dataclass(frozen=True)
class Components:
    """What an estimator computes, per row in canonical order (float64).

    ``advantages`` is what the trainer gets; ``episode`` and ``step`` are the parts it is made of, kept for
    diagnostics (for most estimators ``advantages = episode + step_weight * step``).
    """

    episode: np.ndarray
    step: np.ndarray
    advantages: Optional[np.ndarray] = None  # None: episode + step
    diagnostics: Dict[str, float] = field(default_factory=dict)

    def total(self) -> np.ndarray:
        return self.episode + self.step if self.advantages is None else self.advantages


@dataclass(frozen=True)
class Estimator:
    """A named estimator: its options class and the function that computes its components.

    ``compute(prepared_batch, config)`` returns :class:`Components`; ``config.options`` is an instance of
    ``options`` (an :class:`~proxmo.advantage.options.EstimatorOptions` subclass with the estimator's own
    fields and defaults).
    """

    name: str
    options: Type[EstimatorOptions]
    compute: Callable[..., Any]
    description: str = ""

    @property
    def defaults(self) -> Dict[str, Any]:
        """The estimator's options at their defaults."""
        return self.options().model_dump()


ESTIMATORS: Dict[str, Estimator] = {}
SIMILARITY_BACKENDS: Dict[str, SimilarityBackend] = {}


def register_estimator(
    name: str, *, compute: Callable[..., Any], options: Type[EstimatorOptions] = NoOptions, description: str = ""
) -> Estimator:
    """Register an estimator under ``name``; a taken name raises (the first registration stays)."""
    if name in ESTIMATORS:
        raise ValueError(f"estimator: {name!r} is already registered; pick another name")
    if not (isinstance(options, type) and issubclass(options, EstimatorOptions)):
        raise TypeError(f"options: expected an EstimatorOptions subclass, got {options!r}")
    clash = sorted(set(options.model_fields) & set(SHARED_FIELDS + ("options",)))
    if clash:
        raise ValueError(f"options: {clash} are shared AdvantageConfig fields; an estimator's options need other names")
    try:
        options()
    except Exception as error:  # noqa: BLE001 - any failure means the class has no usable defaults
        raise ValueError(f"options: {options.__name__} must validate with its defaults alone ({error})") from None
    estimator = Estimator(name=name, options=options, compute=compute, description=description)
    ESTIMATORS[name] = estimator
    return estimator


def register_similarity_backend(name: str, backend: SimilarityBackend) -> SimilarityBackend:
    """Register a similarity backend (an object with a ``vectorize`` method) under ``name``."""
    if not callable(getattr(backend, "vectorize", None)):
        raise TypeError(f"backend {name!r}: needs a vectorize(texts, counts, n_rows, config) method")
    if name in SIMILARITY_BACKENDS:
        raise ValueError(f"similarity backend: {name!r} is already registered; pick another name")
    SIMILARITY_BACKENDS[name] = backend
    return backend


def estimator_defaults(name: str) -> Dict[str, Any]:
    """The options of estimator ``name`` at their defaults."""
    if name not in ESTIMATORS:
        raise KeyError(f"estimator: unknown estimator {name!r}; registered: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name].defaults

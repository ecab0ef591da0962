"""Registries of estimators and similarity backends: adding one is a single `register_*` call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Protocol, Sequence

import numpy as np


class SimilarityBackend(Protocol):
    """Turns texts into l2-normalised row vectors; the similarity of two texts is their dot product."""

    def vectorize(self, texts: Sequence[str], counts: np.ndarray, n_rows: int, config) -> Any:
        """Vectors of ``texts`` (distinct), where text k stands for ``counts[k]`` rows of ``n_rows``:
        a dense array or a scipy sparse matrix, one row per text."""
        ...


@dataclass(frozen=True)
class Estimator:
    """A named estimator: its per-estimator defaults and the function that computes its components.

    ``compute(prepared_batch, resolved_config)`` returns ``(episode, step, extras)``: two float64
    arrays in canonical row order and a dict of extra per-row arrays (modulation weights, step-group
    sizes) used for diagnostics.
    """

    name: str
    defaults: Dict[str, Any]
    compute: Callable[..., Any]
    description: str = ""


ESTIMATORS: Dict[str, Estimator] = {}
SIMILARITY_BACKENDS: Dict[str, SimilarityBackend] = {}

_ESTIMATOR_DEFAULT_KEYS = {"normalization", "modulation", "step_grouping"}


def register_estimator(
    name: str, *, defaults: Dict[str, Any], compute: Callable[..., Any], description: str = ""
) -> Estimator:
    """Register an estimator under ``name``; a taken name raises (the first registration stays)."""
    if name in ESTIMATORS:
        raise ValueError(f"estimator: {name!r} is already registered; pick another name")
    unknown = set(defaults) - _ESTIMATOR_DEFAULT_KEYS
    if unknown:
        raise ValueError(f"defaults: unknown keys {sorted(unknown)}; allowed: {sorted(_ESTIMATOR_DEFAULT_KEYS)}")
    missing = _ESTIMATOR_DEFAULT_KEYS - set(defaults)
    if missing:
        raise ValueError(f"defaults: missing keys {sorted(missing)}")
    estimator = Estimator(name=name, defaults=dict(defaults), compute=compute, description=description)
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
    """The per-estimator defaults (normalization, modulation, step_grouping) of ``name``."""
    if name not in ESTIMATORS:
        raise KeyError(f"estimator: unknown estimator {name!r}; registered: {sorted(ESTIMATORS)}")
    return dict(ESTIMATORS[name].defaults)

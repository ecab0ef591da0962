"""Which optional part of the distribution a piece needs, and a clear error when it is not installed.

``pip install proxmo`` is the advantage library alone (numpy, scipy, scikit-learn, pydantic). The extras add
the rest: ``envs`` (ALFWorld and WebShop), ``train`` (the training job: torch, transformers), ``platform``
(Prefect, Ray, MLflow, Optuna, the dashboard), ``all`` and ``dev``.
"""

from __future__ import annotations

import importlib.util
from typing import Iterable


def missing(modules: Iterable[str]) -> list:
    """The top-level modules of ``modules`` that cannot be imported here."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(extra: str, what: str, modules: Iterable[str]) -> None:
    """Raise ImportError naming the extra to install when any of ``modules`` is missing."""
    absent = missing(modules)
    if absent:
        raise ImportError(f"{what} needs {', '.join(absent)}, which come with the '{extra}' extra: "
                          f"pip install 'proxmo[{extra}]'")


__all__ = ["missing", "require"]

"""Tracking URIs checked before any work: a scheme MLflow can use, and a server that answers."""

from __future__ import annotations

import os
from typing import Optional

from proxmo.urls import TRACKING_URI_ENV


TRACKING_SCHEMES = ("file", "sqlite", "http", "https", "postgresql", "mysql", "mssql", "databricks", "databricks-uc")
"""URI schemes an MLflow tracking store can have (a plain path means a file store)."""


def check_tracking_uri(uri: Optional[str]) -> Optional[str]:
    """Return ``uri`` if MLflow can use its scheme, else raise ValueError naming ``run.tracking_uri``."""
    if uri is None:
        return None
    scheme = uri.split("://", 1)[0].split("+", 1)[0].lower() if "://" in uri or uri.startswith("sqlite:") else ""
    if scheme.startswith("sqlite"):
        scheme = "sqlite"
    if scheme and scheme not in TRACKING_SCHEMES:
        raise ValueError(f"run.tracking_uri: scheme {scheme!r} of {uri!r} is not a tracking store; use one of "
                         f"{list(TRACKING_SCHEMES)} or a folder path")
    return uri


def check_tracking_server(uri: Optional[str] = None, timeout: float = 5.0) -> None:
    """Fail in seconds, naming the URI, when an MLflow tracking server (http/https) does not answer.

    ``uri`` defaults to ``MLFLOW_TRACKING_URI``. Other stores (a SQLite file, a folder) need no server.
    MLflow's own client would retry for minutes before failing; this asks the server's health endpoint once.
    """
    import urllib.error
    import urllib.request

    uri = uri or os.environ.get(TRACKING_URI_ENV)
    if not uri or not uri.lower().startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise ConnectionError(f"run.tracking_uri: the MLflow server at {uri} does not answer ({reason}); start it, "
                              "or set run.tracker=jsonl and send the run later with `proxmo sync`") from None

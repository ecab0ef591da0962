"""Where the project's stores and UIs are: the default MLflow store and Optuna storage, the variables that name
them, the UIs' local addresses, and URLs as people see them (wherever a URL is printed, logged, stored or shown,
its password is ``***``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit, urlunsplit

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
"""MLflow's own variable for its tracking store."""
MLFLOW_UI_ENV = "PROXMO_MLFLOW_UI"
"""The MLflow UI that the dashboard's run links open."""
LOCAL_HOST = "127.0.0.1"
MLFLOW_PORT, OPTUNA_PORT, DASHBOARD_PORT = 5000, 8080, 8501
"""Where ``proxmo ui`` serves the MLflow UI, optuna-dashboard and the proxmo dashboard by default."""

OPTUNA_STORAGE_ENV = "PROXMO_OPTUNA_STORAGE"
"""The variable that holds the Optuna storage URL: a password in it stays out of command lines, Prefect's flow
parameters and logs. The sweep flow, the CLI and the UIs read it."""


def local_url(port: int, host: str = LOCAL_HOST) -> str:
    """``http://<host>:<port>``."""
    return f"http://{host}:{port}"


MLFLOW_UI = local_url(MLFLOW_PORT)
"""The MLflow UI's address when ``proxmo ui`` serves it here."""


def default_tracking_uri(folder: Optional[Path] = None) -> str:
    """``MLFLOW_TRACKING_URI``, else the SQLite store ``mlflow.db`` in ``folder`` (default the working directory)."""
    return os.environ.get(TRACKING_URI_ENV) or f"sqlite:///{Path(folder or Path.cwd()).resolve() / 'mlflow.db'}"


def default_optuna_storage(folder: Optional[Path] = None) -> str:
    """``PROXMO_OPTUNA_STORAGE``, else the SQLite storage ``optuna.db`` in ``folder`` (default the working directory),
    like MLflow's own default store, so that ``proxmo ui`` run in the same folder finds it."""
    return os.environ.get(OPTUNA_STORAGE_ENV) or f"sqlite:///{Path(folder or Path.cwd()).resolve() / 'optuna.db'}"


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``: ``postgresql://u:pw@db/optuna`` -> ``postgresql://u:***@db/optuna``."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparsable URL>"
    if password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f"***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


__all__ = ["DASHBOARD_PORT", "LOCAL_HOST", "MLFLOW_PORT", "MLFLOW_UI", "MLFLOW_UI_ENV", "OPTUNA_PORT", "OPTUNA_STORAGE_ENV",
           "TRACKING_URI_ENV", "default_optuna_storage", "default_tracking_uri", "local_url", "redact_url"]

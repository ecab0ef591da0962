"""Store URLs as people see them (wherever a URL is printed, logged, stored or shown, its password is ``***``), and
the variable that carries the Optuna one."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

OPTUNA_STORAGE_ENV = "PROXMO_OPTUNA_STORAGE"
"""The variable that holds the Optuna storage URL: a password in it stays out of command lines, Prefect's flow
parameters and logs. The sweep flow, the CLI and the UIs read it."""


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


__all__ = ["OPTUNA_STORAGE_ENV", "redact_url"]

"""The dashboards' commands, mounted on `proxmo`: ``proxmo dashboard`` and ``proxmo ui``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from proxmo.terminal import console
from proxmo.urls import DASHBOARD_PORT, LOCAL_HOST, MLFLOW_PORT, MLFLOW_UI, OPTUNA_PORT, redact_url


def _stores(tracking_uri: Optional[str], storage: Optional[str]) -> dict:
    from dashboards.serve import default_stores

    stores = default_stores()
    if tracking_uri:
        stores["tracking_uri"] = tracking_uri
    if storage:
        stores["optuna_storage"] = storage
    return stores


def dashboard(
    port: int = typer.Option(DASHBOARD_PORT, help="Port of the dashboard."),
    host: str = typer.Option(LOCAL_HOST, help="Address to bind (127.0.0.1: this machine only)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI, "
                                               "else mlflow.db here)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage (default optuna.db here)."),
    mlflow_ui: str = typer.Option(MLFLOW_UI, "--mlflow-ui", help="The MLflow UI that run links open."),
) -> None:
    """Serve the ablation and sweep dashboard (Streamlit) until Ctrl-C."""
    from dashboards.serve import dashboard_service, serve

    stores = _stores(tracking_uri, storage)
    service = dashboard_service(host, port, stores["tracking_uri"], stores["optuna_storage"], mlflow_ui)
    raise typer.Exit(code=serve([service], Path(".proxmo-ui"), announce=lambda line: console.print(line, soft_wrap=True)))


def ui(
    host: str = typer.Option(LOCAL_HOST, help="Address to bind (127.0.0.1: this machine only)."),
    mlflow_port: int = typer.Option(MLFLOW_PORT, help="Port of the MLflow UI."),
    optuna_port: int = typer.Option(OPTUNA_PORT, help="Port of optuna-dashboard."),
    dashboard_port: int = typer.Option(DASHBOARD_PORT, help="Port of the proxmo dashboard."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI, "
                                               "else mlflow.db here)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage (default optuna.db here)."),
) -> None:
    """Serve the MLflow UI, optuna-dashboard and the proxmo dashboard on the project's stores until Ctrl-C."""
    from dashboards.serve import dashboard_service, mlflow_service, optuna_service, prepare_optuna_storage, serve
    from proxmo.train.tracking import prepare_store

    stores = _stores(tracking_uri, storage)
    prepare_store(stores["tracking_uri"])  # a fresh SQLite store's schema made once, also when a job starts beside it
    prepare_optuna_storage(stores["optuna_storage"])
    mlflow = mlflow_service(host, mlflow_port, stores["tracking_uri"])
    services = [mlflow, optuna_service(host, optuna_port, stores["optuna_storage"]),
                dashboard_service(host, dashboard_port, stores["tracking_uri"], stores["optuna_storage"], mlflow.url)]
    console.print(f"MLflow store {escape(redact_url(stores['tracking_uri']))}; Optuna storage "
                  f"{escape(redact_url(stores['optuna_storage']))}", soft_wrap=True)
    raise typer.Exit(code=serve(services, Path(".proxmo-ui"), announce=lambda line: console.print(line, soft_wrap=True)))


__all__ = ["dashboard", "ui"]

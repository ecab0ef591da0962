"""Start the UIs on this machine: the proxmo dashboard, the MLflow UI and optuna-dashboard, each a child process
in its own process group, so that stopping them (Ctrl-C) leaves nothing behind.

``proxmo dashboard`` serves the first; ``proxmo ui`` all three on the project's own stores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from proxmo.urls import MLFLOW_UI_ENV, OPTUNA_STORAGE_ENV, TRACKING_URI_ENV, default_optuna_storage, default_tracking_uri

APP = Path(__file__).resolve().parent / "app.py"


def default_stores(folder: Optional[Path] = None) -> Dict[str, str]:
    """The project's own stores: ``MLFLOW_TRACKING_URI`` (else ``mlflow.db``) and ``optuna.db`` in ``folder``
    (default the working directory), the files that ``make run``, ``proxmo ablate`` and ``proxmo sweep`` write."""
    return {"tracking_uri": default_tracking_uri(folder), "optuna_storage": default_optuna_storage(folder)}


@dataclass
class Service:
    """One UI: the command that serves it, where it answers, and the URL that says it is up."""

    name: str
    command: List[str]
    url: str
    health: str
    env: Dict[str, str] = field(default_factory=dict)
    process: Optional[subprocess.Popen] = None

    def start(self, log_folder: Path) -> None:
        log = open(log_folder / f"{self.name.replace(' ', '-')}.log", "ab")
        self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env={**os.environ, **self.env}, start_new_session=True)

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(self.health, timeout=2) as response:
                return response.status < 400
        except OSError:
            return False

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the whole process group, SIGKILL to what is left after ``grace`` seconds."""
        stop_all([self], grace)


def stop_all(services: List[Service], grace: float = 10.0) -> None:
    """SIGTERM every service's process group at once, then SIGKILL the groups still there ``grace`` seconds later.

    All at once: stopped one after another, services slow to stop under load (an MLflow server's workers)
    would add their grace periods up, and the launcher would outlast whoever waits for it.
    """
    running = [s for s in services if s.process is not None]
    for sent in (signal.SIGTERM, signal.SIGKILL):
        for service in running:
            try:
                os.killpg(service.process.pid, sent)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        running = [s for s in running if not _gone(s.process, deadline)]
        if not running:
            break
    for service in services:
        service.process = None


def _gone(process: subprocess.Popen, deadline: float) -> bool:
    """Whether ``process`` and every process of its group have ended by ``deadline``."""
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
        _wait_group_gone(process.pid, max(0.0, deadline - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        return False


def _wait_group_gone(group: int, timeout: float) -> None:
    """Wait until no process of group ``group`` is left (children may outlive the leader briefly)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        if time.monotonic() >= deadline:
            raise subprocess.TimeoutExpired(f"process group {group}", timeout)
        time.sleep(0.1)


def _bin(name: str) -> str:
    """A console script of this environment (next to its Python), else the one on PATH."""
    here = Path(sys.executable).with_name(name)
    return str(here) if here.exists() else name


def dashboard_service(host: str, port: int, tracking_uri: str, optuna_storage: str, mlflow_ui: str) -> Service:
    command = [_bin("streamlit"), "run", str(APP), "--server.headless", "true", "--server.address", host,
               "--server.port", str(port), "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    env = {TRACKING_URI_ENV: tracking_uri, OPTUNA_STORAGE_ENV: optuna_storage, MLFLOW_UI_ENV: mlflow_ui}
    return Service("dashboard", command, f"http://{host}:{port}", f"http://{host}:{port}/_stcore/health", env)


def mlflow_service(host: str, port: int, tracking_uri: str, artifacts: Optional[Path] = None) -> Service:
    """``mlflow server`` on ``tracking_uri``; with ``artifacts``, it also stores and serves the artifacts there."""
    command = [_bin("mlflow"), "server", "--host", host, "--port", str(port), "--workers", "1"]
    if artifacts is not None:
        command += ["--artifacts-destination", str(artifacts)]
    # no job runner: its consumer processes outlive a SIGTERM to the server; the store's URI (which may hold a
    # password) goes in the environment, not the command line that `ps` shows
    return Service("MLflow UI", command, f"http://{host}:{port}", f"http://{host}:{port}/health",
                   {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_BACKEND_STORE_URI": tracking_uri})


def prepare_optuna_storage(url: str) -> None:
    """Create the Optuna schema in ``url`` if it has none yet: several readers starting together on a fresh
    SQLite file would race to create it."""
    import optuna

    optuna.storages.RDBStorage(url)


def optuna_service(host: str, port: int, optuna_storage: str) -> Service:
    """optuna-dashboard behind a Host check, the storage URL in its environment (see :mod:`dashboards.optuna_server`)."""
    command = [sys.executable, "-m", "dashboards.optuna_server", "--host", host, "--port", str(port)]
    return Service("optuna-dashboard", command, f"http://{host}:{port}", f"http://{host}:{port}/",
                   {OPTUNA_STORAGE_ENV: optuna_storage})


def serve(services: List[Service], log_folder: Path, timeout: float = 120.0, announce=print) -> int:
    """Start ``services``, wait until each answers, announce their addresses, then wait for Ctrl-C (or SIGTERM)
    and stop them all. Answers an exit code: 0 after a clean stop, 1 if a service did not come up or died."""
    log_folder.mkdir(parents=True, exist_ok=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    code = 0
    try:
        for service in services:
            service.start(log_folder)
        deadline = time.monotonic() + timeout
        waiting = list(services)
        while waiting:
            for service in list(waiting):
                if service.process.poll() is not None:
                    announce(f"{service.name} exited at start; see {log_folder}/{service.name.replace(' ', '-')}.log")
                    return 1
                if service.up():
                    waiting.remove(service)
            if waiting and time.monotonic() > deadline:
                announce(f"not up after {timeout:.0f} s: {', '.join(s.name for s in waiting)}; logs in {log_folder}")
                return 1
            time.sleep(0.3)
        for service in services:
            announce(f"{service.name:17s} {service.url}")
        announce("Ctrl-C stops them all.")
        while all(s.process.poll() is None for s in services):
            time.sleep(0.5)
        dead = [s.name for s in services if s.process.poll() is not None]
        announce(f"{', '.join(dead)} stopped on its own; stopping the others (logs in {log_folder})")
        code = 1
    except KeyboardInterrupt:
        announce("stopping ...")
    finally:
        stop_all(services)
        signal.signal(signal.SIGTERM, previous)
    return code


def _interrupt(signum, frame):  # SIGTERM ends the UIs like Ctrl-C does
    raise KeyboardInterrupt


__all__ = ["APP", "Service", "dashboard_service", "default_stores", "mlflow_service", "optuna_service",
           "prepare_optuna_storage", "serve", "stop_all"]

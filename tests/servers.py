"""A real MLflow tracking server for tests, started and stopped on demand (the same port and store each time)."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from dashboards.serve import mlflow_service


def as_foreground() -> None:
    """``preexec_fn`` of a command a test interrupts as a user's Ctrl-C would: SIGINT and SIGQUIT at their defaults.

    A shell starts a background job (``make test-all &``, a CI step run with ``&``) with SIGINT and SIGQUIT
    ignored, every process it starts inherits that, and a Python started with SIGINT ignored installs no
    KeyboardInterrupt handler: the interrupted command would not even notice."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite store and proxied artifacts in ``folder`` (the launcher of
    ``proxmo ui``, so it stops with its whole process group)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.service = mlflow_service("127.0.0.1", free_port(), f"sqlite:///{self.folder}/mlflow.db",
                                      artifacts=self.folder / "artifacts")
        self.uri = self.service.url

    def start(self, timeout: float = 60.0) -> "MlflowServer":
        self.service.start(self.folder)
        deadline = time.monotonic() + timeout
        while not self.service.up():
            if self.service.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server is not up: {(self.folder / 'MLflow-UI.log').read_text()[-2000:]}")
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        self.service.stop()

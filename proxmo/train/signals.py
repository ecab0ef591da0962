"""SIGTERM ends a job as Ctrl-C does: the run is closed KILLED, in its folder and in MLflow, instead of the process
vanishing with its run left RUNNING (``kill``, ``timeout``, Docker and schedulers all send SIGTERM)."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


class Terminated(SystemExit):
    """SIGTERM (what ``kill``, ``timeout``, Docker and schedulers send) reached a job: it ends KILLED, like Ctrl-C."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)
        self.run_dir: Optional[Path] = None  # the run it ended, once known


@contextmanager
def terminate_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (so the run is closed KILLED) instead of ending the
    process at once. Only in the main thread and only where nobody else handles SIGTERM (a Ray worker does)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


__all__ = ["Terminated", "terminate_as_exit"]

"""SIGTERM ends a job as Ctrl-C does: the run is closed KILLED, in its folder and in MLflow, instead of the process
vanishing with its run left RUNNING (``kill``, ``timeout``, Docker and schedulers all send SIGTERM).

A SIGTERM that arrives while the run's record is being written (a tracker call: a line of metrics, a request to
MLflow in the middle of a database transaction) waits until that call is done, so the record is never cut and no
library is interrupted half-way through a transaction (:func:`deferred`, :class:`Uninterrupted`)."""

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
def terminate_as_exit(replace: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (so the run is closed KILLED) instead of ending the
    process at once. Only in the main thread and only where nobody else handles SIGTERM (a Ray worker does), unless
    ``replace``: then whatever handler there was (the one ``ray.init`` installs in a driver) is set aside for the
    block."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or (previous != signal.SIG_DFL and not replace):
        yield
        return

    _state["received"] = False

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
        _state["received"] = True
        if _state["deferring"]:
            _state["pending"] = True  # raised when the record's write is done
            return
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        _state["pending"] = False


_state = {"deferring": 0, "pending": False, "received": False}
"""How many :func:`deferred` blocks the main thread is in, whether a SIGTERM waits for them to end, and whether one
reached the last :func:`terminate_as_exit` block."""


def sigterm_received() -> bool:
    """Whether a SIGTERM reached the last :func:`terminate_as_exit` block (a library that waits in C, such as
    ``ray.get``, turns the :class:`Terminated` it raises into an exit of its own)."""
    return bool(_state["received"])


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block, a SIGTERM (under :func:`terminate_as_exit`) waits: :class:`Terminated` is raised when the
    outermost block ends. Elsewhere than in the main thread it does nothing (signals reach only the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        if not _state["deferring"] and _state["pending"]:
            _state["pending"] = False
            raise Terminated()


class Uninterrupted:
    """``target`` with every method call made in a :func:`deferred` block (the job wraps its tracker in it)."""

    def __init__(self, target):
        self._target = target

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def call(*args, **kwargs):
            with deferred():
                return value(*args, **kwargs)

        return call


__all__ = ["Terminated", "Uninterrupted", "deferred", "terminate_as_exit"]

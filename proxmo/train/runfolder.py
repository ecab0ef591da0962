"""A run folder has one live writer: the lock that says who it is, and how a writer creates and writes the folder.

The lock is an ``flock`` on ``RUN_DIR/writer.lock``, held for the life of the job: the kernel drops it when
the process ends in any way (SIGKILL included), so a dead job never blocks a resume, and a second job
started on a live folder is refused with one line naming the first (pid and host from ``process.json``).
``flock`` is local to one machine; on a shared network folder two hosts are not kept apart (say so to a
cluster's users: give each job its own ``run.name``).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from pathlib import Path
from typing import List, Optional

logger = logging.getLogger(__name__)

LOCK_FILE = "writer.lock"
PROCESS_FILE = "process.json"


class RunFolderBusy(RuntimeError):
    """Another live process writes this run folder."""


class WriterLock:
    """The exclusive right to write one run folder (see the module docstring); :meth:`release` gives it up."""

    def __init__(self, folder: Path, handle: int):
        self.folder = folder
        self._handle: Optional[int] = handle

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing the descriptor drops the flock
            self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None


def _try_lock(folder: Path) -> Optional[int]:
    """The descriptor of the folder's lock, taken; None when another process holds it."""
    import fcntl

    handle = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(handle)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return handle


def acquire_writer(folder: str | Path) -> WriterLock:
    """Take ``folder``'s writer lock (the folder must exist), or raise :class:`RunFolderBusy` saying who holds it."""
    folder = Path(folder)
    handle = _try_lock(folder)
    if handle is None:
        raise RunFolderBusy(f"run folder {folder} is being written by {describe_writer(folder)}; wait for it to end "
                            f"(or stop it), then continue it with run.resume={folder}; or choose another run.name")
    return WriterLock(folder, handle)


def writer_alive(folder: str | Path) -> bool:
    """Whether a live process holds ``folder``'s writer lock (a folder without one has no writer)."""
    folder = Path(folder)
    if not (folder / LOCK_FILE).exists():
        return False
    handle = _try_lock(folder)
    if handle is None:
        return True
    os.close(handle)
    return False


def wait_for_writer(folder: str | Path, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for the process that writes ``folder`` to let go of it (a job being stopped);
    answers whether it did."""
    deadline = time.monotonic() + timeout
    while writer_alive(folder):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def describe_writer(folder: Path) -> str:
    """``process 123 on host`` from the folder's ``process.json``, or ``another process``."""
    try:
        process = json.loads((folder / PROCESS_FILE).read_text())
        return f"process {process['pid']} on {process['host']}"
    except (OSError, ValueError, KeyError):
        return "another process"


def make_run_folder(run_dir: Path) -> None:
    """Create the run folder, or say in one line why it cannot be (the output folder is a file, read-only, ...)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(error.errno, f"run.output_dir: cannot write the run folder {run_dir}: "
                                   f"{error.strerror or error}") from None


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, removed if the write fails (a full disk)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise


def repair_cut_line(path: str | Path) -> bool:
    """Drop a cut-off last line (a job that died while writing it) from a JSON-lines file, so that the next
    line appended starts on a line of its own. Answers whether a line was dropped."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if size == 0:
        return False
    with open(path, "rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return False
        keep, block = 0, 1 << 16
        end = size
        while end > 0:  # find the last newline from the end, a block at a time
            start = max(0, end - block)
            handle.seek(start)
            found = handle.read(end - start).rfind(b"\n")
            if found >= 0:
                keep = start + found + 1
                break
            end = start
        handle.truncate(keep)
    logger.warning("%s: dropped a cut-off last line (%d bytes) left by a job that died while writing it",
                   path, size - keep)
    return True


def check_path_component(value: str, field: str) -> str:
    """``value`` if it names one folder inside another (a run, a variant, a study), else a ValueError naming ``field``:
    no ``/`` or ``\\``, not ``.`` or ``..``, not empty, no control characters."""
    if (not isinstance(value, str) or value.strip() in ("", ".", "..") or "/" in value or "\\" in value
            or any(ord(c) < 32 for c in value)):
        raise ValueError(f"{field}: {value!r} must name one folder (no '/', '\\', '.' or '..', not empty), "
                         "e.g. proxmo-seed0")
    return value


# -- checkpoints in a run folder -----------------------------------------------------------------
STATE_FILE = "trainer_state.pt"
"""In a checkpoint folder: the optimizer, random states and iteration (the weights lie beside it)."""


def resume_candidates(path: Path) -> List[Path]:
    """The checkpoints a resume from ``path`` may use, newest first: ``path`` itself (a checkpoint folder) and the
    older ones beside it, or every complete checkpoint of a run folder."""
    path = Path(path)
    if (path / STATE_FILE).is_file():
        older = [p for p in _complete(path.parent) if p.name < path.name]
        return [path, *reversed(older)]
    for root in (path / "checkpoints", path):
        found = _complete(root)
        if found:
            return list(reversed(found))
    return []


def _complete(root: Path) -> List[Path]:
    return sorted(p for p in Path(root).glob("iter_*")
                  if p.is_dir() and not p.name.endswith(".partial") and (p / STATE_FILE).is_file())


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest complete checkpoint of a run folder (or of its ``checkpoints`` folder), if any."""
    run_dir = Path(run_dir)
    for root in (run_dir / "checkpoints", run_dir):
        found = _complete(root)
        if found:
            return found[-1]
    return None


__all__ = ["LOCK_FILE", "PROCESS_FILE", "RunFolderBusy", "STATE_FILE", "WriterLock", "acquire_writer", "check_path_component",
           "describe_writer", "latest_checkpoint", "make_run_folder", "repair_cut_line", "resume_candidates",
           "write_atomic", "writer_alive"]

"""Following a run's record while its job writes it (in this process, another one or a Ray worker on the same file
system): every new record of ``metrics.jsonl`` handed to a callback as it is appended."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

from proxmo.results.contract import METRICS_FILE
from proxmo.train.tracking.record import parse_records

Record = Dict[str, Any]


@contextmanager
def follow_records(run_dir: Path, handle: Callable[[Record], None], every: float = 0.5) -> Iterator[None]:
    """While the block runs, call ``handle`` with every record appended to ``run_dir/metrics.jsonl`` (what it held
    before the block is skipped: a resumed run's earlier records), checked every ``every`` seconds and once at
    the end. A line being written is read the next time; a file that shrank (a run folder moved aside and
    started again) is read from its start."""
    path = Path(run_dir) / METRICS_FILE
    offset = path.stat().st_size if path.exists() else 0
    done = threading.Event()

    def read_new() -> None:
        nonlocal offset
        if not path.exists():
            return
        if path.stat().st_size < offset:
            offset = 0
        with open(path, "rb") as stream:
            stream.seek(offset)
            chunk = stream.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        offset += len(complete)
        for record in parse_records(complete.decode().splitlines(), path, strict=False):
            handle(record)

    def follow() -> None:
        while not done.wait(every):
            read_new()
        read_new()

    thread = threading.Thread(target=follow, name=f"follow-{Path(run_dir).name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


__all__ = ["follow_records"]

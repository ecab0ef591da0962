"""What a deployed run's log says while a job trains: one line per iteration and per evaluation, read from the run
folder's metrics file as the job (here or in a Ray worker on the same file system) appends to it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List, Mapping, Optional

from proxmo.results.contract import (GREEDY, ITERATION_SECONDS, LOSS, RANDOM, TRAIN_SUCCESS, VAL, quantity_key,
                                     success_key)


def progress_lines(record: Mapping[str, Any], iterations: Optional[int] = None) -> List[str]:
    """What a deployed run's log says about one metrics record: one line per iteration, one per evaluation."""
    step, metrics = int(record["step"]), record["metrics"]
    lines = []
    if TRAIN_SUCCESS in metrics:
        total = f"/{iterations}" if iterations else ""
        lines.append(f"iteration {step}{total}: train success {metrics[TRAIN_SUCCESS]:.3f}"
                     + (f", loss {metrics[LOSS]:.4f}" if LOSS in metrics else "")
                     + (f", {metrics[ITERATION_SECONDS]:.2f} s" if ITERATION_SECONDS in metrics else ""))
    for source, label in ((RANDOM, "random agent"), (VAL, "evaluation"), (GREEDY, "greedy evaluation")):
        if success_key(source) in metrics:
            lines.append(f"{label} at {step}: success {metrics[success_key(source)]:.3f}"
                         f" ± {metrics.get(quantity_key(source, 'success_se'), float('nan')):.3f}"
                         f" over {metrics.get(quantity_key(source, 'episodes'), float('nan')):.0f} episodes")
    return lines


@contextmanager
def follow_progress(run_dir: Optional[Path], iterations: Optional[int], log, every: float = 0.5) -> Iterator[None]:
    """While the block runs, log the lines of :func:`progress_lines` for every new record of
    ``run_dir/metrics.jsonl`` (written by the job here or in a Ray worker on the same file system)."""
    if run_dir is None:
        yield
        return
    from proxmo.train.tracking.follow import follow_records

    name = Path(run_dir).name

    def handle(record) -> None:
        for text in progress_lines(record, iterations):
            log.info("%s: %s", name, text)

    with follow_records(Path(run_dir), handle, every):
        yield


__all__ = ["follow_progress", "progress_lines"]

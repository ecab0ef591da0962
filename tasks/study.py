"""Optuna studies that several sweep workers share: heartbeats for live trials, retries of dead ones, a sampler
stream per worker.

Several workers on one study is what Optuna's RDB storage is for, and it has the mechanisms; this module sets
them up. Each worker records a heartbeat for its running trials every ``heartbeat_s`` seconds; a trial whose
heartbeat stopped for ``grace_s`` seconds belonged to a worker that died, and the next worker to open the study
fails it and queues a retry with the same parameters (once). A live worker's trials are left alone.

Each worker samples from its own random stream: the first worker of a fresh study uses the study's seed (so a
one-worker sweep repeats exactly), any other worker a stream derived from the seed and the number of its first
trial, which the storage hands out to one worker only.
"""

from __future__ import annotations

import threading
import warnings
import zlib
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Set

from proxmo.urls import OPTUNA_STORAGE_ENV as STORAGE_ENV, redact_url

HEARTBEAT_S = 30
"""Seconds between two heartbeats of a running trial."""
GRACE_S = 180
"""Seconds without a heartbeat after which a running trial counts as dead (its worker gone)."""
RETRIES = 1
"""How many times a dead trial is queued again with its parameters."""


@contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Optuna marks heartbeats as experimental and warns when they are used outside ``Study.optimize``."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def study_storage(url: str, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S, retries: int = RETRIES):
    """An RDB storage at ``url`` with heartbeats and retries of dead trials (see the module docstring).

    A URL that names no database Optuna can open raises ValueError in one line, the password hidden.
    """
    import optuna

    with _quiet_experimental():
        try:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat_s, grace_period=grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=retries),
            )
        except Exception as error:  # noqa: BLE001 - SQLAlchemy's errors for a bad URL or a database that is down
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ValueError(f"storage: cannot open the Optuna storage {redact_url(url)}: "
                             f"{reason.replace(url, redact_url(url))[:300]}") from None


def check_storage(url: str) -> None:
    """Fail in one line (ValueError naming ``storage``) when ``url`` is not an Optuna storage that opens."""
    study_storage(url).remove_session()


def open_study(name: str, storage, pruner, n_startup_trials: int = 8):
    """Create or load study ``name`` (maximised) and fail the trials of workers that died (queueing their retries).

    The sampler is a placeholder until :func:`use_worker_stream` seeds it from this worker's first trial.
    """
    import optuna

    with _quiet_experimental():
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                    sampler=optuna.samplers.TPESampler(n_startup_trials=n_startup_trials),
                                    pruner=pruner)
        optuna.storages.fail_stale_trials(study)
    return study


def stream_seed(seed: int, first_trial: int) -> int:
    """The sampler seed of the worker whose first trial has number ``first_trial``: ``seed`` for the first worker
    of a fresh study, else a stream of its own."""
    if first_trial == 0:
        return seed
    return zlib.crc32(f"{seed}:{first_trial}".encode())


def use_worker_stream(study, seed: int, first_trial: int, n_startup_trials: int = 8) -> None:
    """Give ``study`` this worker's own TPE stream (call after the first ``ask`` and before any ``suggest``)."""
    import optuna

    study.sampler = optuna.samplers.TPESampler(seed=stream_seed(seed, first_trial), n_startup_trials=n_startup_trials)


def ask(study):
    """``study.ask()`` without Optuna's warning that heartbeats are meant for ``optimize`` (they are kept here)."""
    with _quiet_experimental():
        return study.ask()


class Heartbeats:
    """Records a heartbeat for every trial in :meth:`add` every ``interval`` seconds until it is discarded; a
    context manager that stops its thread on exit."""

    def __init__(self, storage, interval: float | None = None):
        self.storage = storage
        self.interval = float(interval or storage.get_heartbeat_interval() or HEARTBEAT_S)
        self._trials: Set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="optuna-heartbeats", daemon=True)

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._trials.add(trial_id)
        self.storage.record_heartbeat(trial_id)

    def discard(self, trial_id: int) -> None:
        with self._lock:
            self._trials.discard(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                trials = list(self._trials)
            for trial_id in trials:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # noqa: BLE001 - a storage hiccup; the next beat tries again
                    pass

    def __enter__(self) -> "Heartbeats":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_pruner(spec: str):
    """The Optuna pruner named by ``spec``: ``median``, ``none``, or ``threshold:<lower>``.

    Pruners are not kept in the study's storage, so every process that asks ``should_prune`` builds the
    same one from this name.
    """
    import optuna

    if spec == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if spec == "none":
        return optuna.pruners.NopPruner()
    kind, _, value = spec.partition(":")
    if kind == "threshold":
        try:
            return optuna.pruners.ThresholdPruner(lower=float(value))
        except ValueError:
            pass
    raise ValueError(f"pruner: expected median, none or threshold:<lower>, got {spec!r}")


def trial_reporter(trial: Mapping[str, Any]):
    """An evaluation callback that reports to an Optuna trial (any process can: the study is in RDB storage) and
    stops the job when the study's pruner says so; with ``report`` false it only asks (another seed reports)."""
    import optuna

    from proxmo.train.job import StopRun

    storage = optuna.storages.get_storage(trial["storage"])
    study = optuna.load_study(study_name=trial["study"], storage=storage, pruner=make_pruner(trial.get("pruner", "median")))
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial["study"]),
                                                              int(trial["number"]))
    handle = optuna.trial.Trial(study, trial_id)
    metric = trial["metric"]

    def report(step: int, metrics: Mapping[str, float]) -> None:
        if metric in metrics and trial.get("report", True):
            handle.report(float(metrics[metric]), step)
        if handle.should_prune():
            raise StopRun(f"pruned by the study at step {step}")

    return report


__all__ = ["GRACE_S", "HEARTBEAT_S", "Heartbeats", "RETRIES", "STORAGE_ENV", "ask", "check_storage", "make_pruner",
           "open_study", "stream_seed", "study_storage", "trial_reporter", "use_worker_stream"]

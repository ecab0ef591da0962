"""Prefect tasks around the training job: run it here or as a Ray task that asks for CPUs and GPUs, several side by
side, a finished one not again, an unfinished one resumed; and Ray up for the jobs of a flow."""

from __future__ import annotations

import copy
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Mapping, Optional, Sequence

from prefect import get_run_logger, task

from proxmo.results.contract import SUMMARY_FILE, Summary
from tasks.progress import follow_progress
from tasks.specs import LaunchSpec

if TYPE_CHECKING:
    from proxmo.train.config import TrainConfig



def run_job(config: "TrainConfig | Mapping[str, Any]", trial: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Run one training job from its config (or the config's dict); answers a JSON-friendly summary.

    ``trial`` (``storage``, ``study``, ``number``, ``metric``, ``pruner``, ``report``) makes the job report ``metric`` at every
    evaluation to that Optuna trial and stop early when the study's pruner says so.

    A job whose named run folder already holds a finished run (``summary.json`` with all its
    iterations) is not run again; one that holds checkpoints continues from the latest; a folder
    with neither (a run that died before its first checkpoint) is moved aside, never trained over.
    """
    from proxmo.train.job import train

    checked = _checked(config)  # a bad config is refused before any work
    finished = _finished_run(checked)
    if finished is not None:
        return finished
    resume = _resume_or_move_aside(checked)
    if resume is not None:
        checked = checked.model_copy(update={"run": checked.run.model_copy(update={"resume": resume})})
    from tasks.study import trial_reporter

    callback = trial_reporter(trial) if trial else None
    result = train(checked, progress=False, on_evaluation=callback)
    return _job_summary(checked, result.run_dir, Summary.read(result.run_dir))


def _job_summary(config: "TrainConfig", run_dir: Path, summary: Summary) -> Dict[str, Any]:
    """What a job answers (JSON-friendly, so that it crosses a Ray task's boundary): where its run is, what it
    was (its config's env, estimator and seed) and its :class:`~proxmo.results.contract.Summary` as a dict."""
    return {
        "run_dir": str(run_dir),
        "run_name": run_dir.name,
        "iterations": summary.iterations,
        "env": config.env.name,
        "estimator": config.advantage.estimator,
        "seed": config.run.seed,
        "final_eval": summary.final_eval,
        "checkpoint": summary.checkpoint,
        "summary": summary.to_dict(),
        "pid": os.getpid(),  # which process ran (or found) the job: a Ray worker or this one
        "ray_node": _ray_node(),  # and on which Ray node (None outside Ray)
    }


def _ray_node() -> Optional[str]:
    import sys

    ray = sys.modules.get("ray")  # imported only where the job runs as a Ray task
    if ray is None or not ray.is_initialized():
        return None
    return ray.get_runtime_context().get_node_id()


def _named_run_dir(config: "TrainConfig") -> Optional[Path]:
    return Path(config.run.output_dir) / config.run.name if config.run.name else None


def _finished_run(config: "TrainConfig") -> Optional[Dict[str, Any]]:
    run_dir = _named_run_dir(config)
    if run_dir is None or not (run_dir / SUMMARY_FILE).is_file():
        return None
    summary = Summary.read(run_dir)
    if summary.iterations < config.run.iterations:
        return None
    return _job_summary(config, run_dir, summary)


def _resume_or_move_aside(config: "TrainConfig") -> Optional[str]:
    """The named run folder to resume (it holds a checkpoint), else None; a folder without one is moved aside."""
    from proxmo.train.runfolder import acquire_writer, latest_checkpoint

    run_dir = _named_run_dir(config)
    if run_dir is None or not run_dir.exists() or config.run.resume:
        return None
    acquire_writer(run_dir).release()  # a folder a live job writes is neither resumed nor moved: refused, saying so
    if latest_checkpoint(run_dir) is not None:
        return str(run_dir)
    run_dir.rename(run_dir.with_name(f"{run_dir.name}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}"))
    return None


def _checked(config: "TrainConfig | Mapping[str, Any]") -> "TrainConfig":
    from proxmo.train.config import TrainConfig, build_config

    return config if isinstance(config, TrainConfig) else build_config(copy.deepcopy(dict(config)))


def _no_retry_once_stopped(task, task_run, state) -> bool:
    """A job's task is retried unless the flow stopped it (a retry would bring Ray up again and continue the run)."""
    return not _RAY_JOBS.stopped_here()


@task(name="train-job", retry_condition_fn=_no_retry_once_stopped)
def train_job(config: "TrainConfig", launch: LaunchSpec = LaunchSpec(),
              trial: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """One training job, in this process (``local``) or as a Ray task asking for ``num_cpus`` and ``num_gpus`` (``ray``;
    a job on several workers asks for none itself, its workers ask for ``run.worker_cpus`` and ``run.worker_gpus``).

    Under a flow that started Ray, jobs submitted together run side by side on the cluster.
    """
    config = _checked(config)
    run_dir = _named_run_dir(config)
    with _RAY_JOBS.waiting():
        try:
            with follow_progress(run_dir, config.run.iterations, get_run_logger()):
                if launch.launcher == "local":
                    return run_job(config, trial)
                return _on_ray(config, trial, launch)
        except BaseException as error:
            # A job that died without ending its run (its process killed) must not stay RUNNING; a retry
            # continues the same run from its last checkpoint.
            if run_dir is not None:
                from proxmo.train.runfolder import wait_for_writer
                from proxmo.train.tracking import close_abandoned

                wait_for_writer(run_dir, WRITER_GRACE_S)  # a Ray worker being stopped lets go of the folder first
                close_abandoned(run_dir, "FAILED" if _failed(error) else "KILLED")
            raise


WRITER_GRACE_S = 30.0
"""How long a stopped job's task waits for the job's process to let go of its run folder before closing the run."""


def _on_ray(config: "TrainConfig", trial: Optional[Mapping[str, Any]], launch: LaunchSpec) -> Dict[str, Any]:
    import ray

    # a job on several workers only coordinates them: its workers ask for the CPUs and GPUs (run.worker_cpus, ...)
    alone = config.run.workers == 1
    with ray_session(launch):  # a no-op under a flow that started Ray already
        remote = ray.remote(num_gpus=launch.num_gpus if alone else 0, num_cpus=launch.num_cpus if alone else 0,
                            max_retries=0)(run_job)
        job = remote.remote(config, trial)
        try:
            _RAY_JOBS.track(job)  # from here an interrupted flow cancels it
            return ray.get(job)
        except BaseException:
            ray.cancel(job, force=True)  # the job's process goes too, so that its run can be closed
            raise


def _failed(error: BaseException) -> bool:
    """Whether ``error`` ends a job FAILED; else KILLED: interrupted, its process killed (a Ray worker that died),
    or stopped by its interrupted flow (whatever Ray answered the task once the job was cancelled)."""
    if not isinstance(error, Exception) or _RAY_JOBS.stopped_here():
        return False
    try:
        from ray.exceptions import WorkerCrashedError
    except ImportError:
        return True
    return not isinstance(error, WorkerCrashedError)


class JobStopped(RuntimeError):
    """The flow was interrupted before this task's job reached Ray: it is not submitted."""


class _RayJobs:
    """The Ray jobs this process's task threads wait on.

    A flow interrupted in its main thread (Ctrl-C, SIGTERM) leaves :func:`ray_session`, which would shut Ray down
    under the tasks still waiting on their jobs: they would see Ray's errors (and close their runs FAILED), and
    their retries would bring Ray up again and continue the runs. Instead :meth:`stop` cancels every job first,
    marks its task stopped (its run ends KILLED, it is not retried) and waits for the tasks to close their runs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: Dict[int, "_Waiter"] = {}  # by thread
        self._local = threading.local()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """The block of a task that may wait on a Ray job: done (its run closed) when the block ends."""
        waiter = _Waiter()
        self._local.waiter = waiter
        with self._lock:
            self._waiting[threading.get_ident()] = waiter
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(threading.get_ident(), None)
            waiter.done.set()

    def track(self, job: Any) -> None:
        """The job this thread's task now waits on; refused if the flow was stopped before it got here."""
        waiter = getattr(self._local, "waiter", None)
        if waiter is None:
            return
        with self._lock:
            waiter.job = job
        if waiter.stopped:
            raise JobStopped("the flow was interrupted before the job started")

    def stopped_here(self) -> bool:
        """Whether the flow stopped this thread's task (it ends KILLED and is not retried)."""
        waiter = getattr(self._local, "waiter", None)
        return waiter is not None and waiter.stopped

    def stop(self, grace_s: float) -> None:
        """Cancel the jobs other threads' tasks wait on and wait up to ``grace_s`` for those tasks to close their
        runs (a killed job's process lets go of its folder first)."""
        import ray

        with self._lock:
            waiters = [w for thread, w in self._waiting.items() if thread != threading.get_ident()]
            for waiter in waiters:
                waiter.stopped = True
        for waiter in waiters:
            if waiter.job is not None:
                try:
                    ray.cancel(waiter.job, force=True)
                except Exception:  # noqa: BLE001 - already ended, or Ray going down: its task closes the run either way
                    pass
        deadline = time.monotonic() + grace_s
        for waiter in waiters:
            waiter.done.wait(max(0.0, deadline - time.monotonic()))


class _Waiter:
    def __init__(self) -> None:
        self.job: Any = None
        self.stopped = False
        self.done = threading.Event()


_RAY_JOBS = _RayJobs()


def run_jobs(configs: Sequence["TrainConfig"], launch: LaunchSpec = LaunchSpec()) -> List[Dict[str, Any]]:
    """Run every config as a :func:`train_job` task (``launch.retries`` each; a retry resumes from the checkpoint)
    and answer their summaries in order: side by side as Ray tasks with ``launcher=ray``, else one after another
    (jobs in one process share torch's global state)."""
    launch = launch.launch()
    job = train_job.with_options(retries=launch.retries)
    with ray_session(launch):
        if launch.launcher == "ray":
            futures = [job.submit(config, launch) for config in configs]
            return [future.result() for future in futures]
        return [job(config, launch) for config in configs]


@contextmanager
def ray_session(launch: LaunchSpec) -> Iterator[None]:
    """With ``launcher=ray``: Ray is up for the block (started here, and shut down after, unless it already ran)."""
    if launch.launcher != "ray":
        yield
        return
    from envs.cluster import ray_running

    with ray_running(launch.ray_address):  # without an address: RAY_ADDRESS if set, else here with this machine's cores
        try:
            yield
        except BaseException as error:
            if not isinstance(error, Exception):  # interrupted: the jobs stop and their runs close before Ray goes
                _RAY_JOBS.stop(WRITER_GRACE_S + 15.0)
            raise



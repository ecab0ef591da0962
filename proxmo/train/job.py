"""The training job: group rollouts -> advantages -> PPO-style update -> metrics, evaluation, checkpoints.

Plain Python and torch: it imports neither Prefect, Ray nor MLflow (the MLflow tracker and the Ray
environment backend load them only when asked for), so it runs the same under ``python -m
proxmo.train``, inside a Ray task, or on a bare GPU machine.

One iteration (docs/training.md, "One iteration"): the pool resets K groups of n environments,
each group on one training task -> the policy acts step by step -> every step becomes a row of a
:class:`~proxmo.advantage.StepBatch` with its tokens -> :func:`~proxmo.advantage.compute_advantages`
-> :func:`~proxmo.train.update.ppo_update` -> metrics (per-category success, advantage diagnostics,
the time of every phase) -> tracker -> checkpoint. The iteration itself is :mod:`proxmo.train.iteration`; this
module builds the run (a new one or a resumed one) and drives the loop.

On several workers (``run.workers``, :mod:`proxmo.train.workers`) every worker runs a Trainer with its
:class:`~proxmo.train.distributed.Shard`: rank 0 owns the run folder, the tracker and the checkpoints, and hands
its weights, its resume decision and its random states to the others.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

import envs
from proxmo.results import contract
from proxmo.results.contract import ADV_FRACTION, METRICS_FILE, SUMMARY_FILE, SUCCESS, Summary
from proxmo.train.checkpoint import intact_checkpoint, load_trainer_state, resume_conflicts, save_checkpoint
from proxmo.train.config import TrainConfig, save_config
from proxmo.train.distributed import Shard, worker_seed
from proxmo.train.evaluation import Evaluation, logged_evaluations
from proxmo.train.iteration import Iterations
from proxmo.train.runfolder import PROCESS_FILE, acquire_writer, make_run_folder, write_atomic
from proxmo.train.sharding import frozen_shards, full_states, load_optimizer, make_actor, shard_model
from proxmo.train.setup import (build_policies, check_runtime, evaluation_key, prepare_env, quiet_transformers,
                                resume_candidates_of, run_name)
from proxmo.train.signals import Terminated, Uninterrupted, terminate_as_exit
from proxmo.train.tracking import (LINK_FILE, NullTracker, Tracker, check_tracking_server, make_tracker, read_metrics,
                                   skip_logged)

logger = logging.getLogger(__name__)


class StopRun(Exception):
    """Raised by an evaluation callback to end a run early (e.g. a pruned search trial).

    The run ends with status KILLED, its summary written and ``TrainResult.stopped`` set.
    """


EvaluationCallback = Callable[[int, Dict[str, float]], None]
"""Called after every evaluation with the step and the evaluation's metrics; may raise :class:`StopRun`."""


@dataclass
class TrainResult:
    """What a finished run leaves behind."""

    run_dir: Path
    iterations: int
    history: List[Dict[str, float]] = field(default_factory=list)
    """The metrics of every iteration (what the tracker got)."""
    evaluations: List[Dict[str, float]] = field(default_factory=list)
    baseline: Dict[str, float] = field(default_factory=dict)
    """The random agent's evaluation (``val/random/*``) when ``eval.random_baseline`` is on."""
    stopped: bool = False
    """An evaluation callback ended the run early."""
    checkpoint: Optional[Path] = None


class Trainer(Iterations):
    """Holds a run's policy, reference model, optimizer and pool; :meth:`run` trains it."""

    def __init__(self, config: TrainConfig, tracker: Optional[Tracker] = None, progress: bool = True,
                 on_evaluation: Optional[EvaluationCallback] = None, shard: Optional[Shard] = None) -> None:
        self.config = config
        self.shard = shard or Shard(0, 1)
        self.progress = progress and self.shard.leader
        self.on_evaluation = on_evaluation
        self._pool = None
        self._status = ""
        quiet_transformers()
        check_runtime(config)
        if not self.shard.leader:
            self._follow(config)
            return
        if tracker is None and config.run.tracker in ("mlflow", "both"):
            check_tracking_server(config.run.tracking_uri)
        candidates = resume_candidates_of(config.run.resume)
        self.run_dir = candidates[0].parent.parent if candidates else Path(config.run.output_dir) / run_name(config)
        created = not self.run_dir.exists()
        make_run_folder(self.run_dir)
        self._writer = acquire_writer(self.run_dir)  # a second job on this folder stops here, having touched nothing
        try:
            resume = self._check_before_writing(candidates)
            if resume:  # the record names the folder the run really goes on in
                self.config = config = config.model_copy(update={"run": config.run.model_copy(
                    update={"name": self.run_dir.name, "output_dir": str(self.run_dir.parent)})})
            self._build(config, self.shard.broadcast(resume))
            # which process trains the run (a worker on a cluster, this one here): to watch or stop it
            (self.run_dir / PROCESS_FILE).write_text(json.dumps(
                {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}))
            self.tracker = tracker or self._make_tracker(resume is not None)
            if resume:  # the iterations after the checkpoint are replayed: keep one point per step
                self.tracker = skip_logged(self.tracker)
            self.tracker = Uninterrupted(self.tracker)  # a SIGTERM waits until a record's write is done
        except BaseException:
            if created:  # a failed start leaves no half-made run folder behind
                shutil.rmtree(self.run_dir, ignore_errors=True)
            self._writer.release()
            raise

    def _follow(self, config: TrainConfig) -> None:
        """A worker other than rank 0 of a job on several workers: it trains its share and writes nothing (rank 0
        keeps the run folder, the tracker and the checkpoints); the weights and states come from rank 0."""
        self.run_dir = Path(config.run.output_dir) / str(config.run.name)
        self._writer = None
        resume = self.shard.broadcast(None)
        if resume:
            config = self.config = config.model_copy(update={"run": config.run.model_copy(
                update={"name": self.run_dir.name, "output_dir": str(self.run_dir.parent)})})
        self._build(config, resume)
        self.tracker = NullTracker()

    def _check_before_writing(self, candidates: List[Path]) -> Optional[Path]:
        """Everything a start can refuse, checked before the run folder is written: a new run does not write over
        an earlier one; a resume has a readable record, an intact checkpoint and settings the checkpoint honours.
        Answers the checkpoint to resume from."""
        if not candidates:
            held = [name for name in (METRICS_FILE, "status.json", "checkpoints") if (self.run_dir / name).exists()]
            if held:
                raise FileExistsError(f"run folder {self.run_dir} already holds a run ({', '.join(held)}); continue it "
                                      f"with run.resume={self.run_dir}, or choose another run.name")
            return None
        read_metrics(self.run_dir)  # a broken record fails here, before its status or its MLflow run is touched
        resume = intact_checkpoint(candidates)
        conflicts = resume_conflicts(resume, self.config)
        if conflicts:
            raise ValueError(f"run.resume: {resume} was trained with other settings, which it cannot honour: "
                             + "; ".join(conflicts) + ". Resume with the run's own settings (only its length, "
                             "checkpointing, tracking and devices may change), or start a new run")
        return resume

    def _build(self, config: TrainConfig, resume: Optional[Path]) -> None:
        shard, seed = self.shard, config.run.seed
        if shard.leader:
            save_config(config, self.run_dir / "config.yaml")
        torch.manual_seed(seed)
        self.setup = prepare_env(config)
        self.spec = envs.spec(config.env.name)
        self.eval_key = evaluation_key(config, self.setup)
        # the followers build the model as rank 0 did (or from scratch when it resumes) and take its weights
        self.policy, self.reference = build_policies(config, self.setup, self.run_dir, resume if shard.leader else None)
        shard.broadcast_parameters(self.policy.model)
        if self.reference is not None:
            shard.broadcast_parameters(self.reference.model)
        self.actor = self.policy  # the policy that plays the episodes
        self.sharded = config.run.shard_model and shard.world > 1
        if self.sharded:  # the layers sharded over the workers; the episodes played by a full copy
            self.actor = make_actor(self.policy, self.policy.compute_dtype)
            shard_model(self.policy.model, shard, self.policy.compute_dtype)
            if self.reference is not None and self.reference.model is not self.policy.model:
                self.reference = frozen_shards(self.reference, shard)  # not LoRA's adapters-off view: a model
        self.evaluation = Evaluation(config, self.setup, self._pool_for, shard)
        self.optimizer = torch.optim.AdamW(
            [p for p in self.policy.model.parameters() if p.requires_grad],
            lr=config.optim.lr,
            weight_decay=config.optim.weight_decay,
        )
        self.generator = torch.Generator().manual_seed(worker_seed(seed, shard.rank))
        # the update's mini-batches are drawn alike on every worker; one worker draws them from its only stream
        self.update_generator = self.generator if shard.world == 1 else torch.Generator().manual_seed(seed)
        self.task_rng = random.Random(seed)
        first, last = shard.share(config.rollout.n_groups)
        self.group_share = (first, last)
        self.local_rollout = config.rollout.model_copy(update={"n_groups": last - first})
        self.start_iteration = 0
        state = load_trainer_state(resume) if resume and shard.leader else None
        if self.sharded and resume:  # rank 0's full optimizer state, into every worker's shards
            load_optimizer(self.policy.model, self.optimizer, state["optimizer"] if state else None)
            state = shard.broadcast({k: v for k, v in state.items() if k != "optimizer"} if state else None)
        elif shard.world > 1:
            state = shard.broadcast(state)
        if state:
            if not self.sharded:
                self.optimizer.load_state_dict(state["optimizer"])
            mine = state["workers"][shard.rank] if shard.world > 1 else state
            self.generator.set_state(mine["generator"])
            self.task_rng.setstate(mine["task_rng"])
            if shard.world > 1:
                self.update_generator.set_state(state["update_generator"])
            self.start_iteration = int(state["iteration"])

    # -- set-up ------------------------------------------------------------------------------
    def _make_tracker(self, resuming: bool) -> Tracker:
        """The configured tracker; a resumed run continues its MLflow run (its id is kept in the run folder)."""
        c = self.config.run
        link = self.run_dir / LINK_FILE
        run_id = json.loads(link.read_text())["run_id"] if resuming and link.is_file() else None
        return make_tracker(c.tracker, self.run_dir, c.experiment, self.run_dir.name, c.tracking_uri, run_id=run_id,
                            parent_run_id=c.parent_run_id, tags=c.tags)


    # -- evaluation -------------------------------------------------------------------------
    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> TrainResult:
        c = self.config
        result = TrainResult(self.run_dir, self.start_iteration)
        if self.start_iteration > 0:  # a resumed run reports its whole history, not only what follows
            result.evaluations, result.baseline = logged_evaluations(self.run_dir, self.start_iteration)
        status = "FAILED"
        try:
            if self.start_iteration == 0:
                self.tracker.log_params(c.to_dict())
                self.tracker.set_tags({contract.TAG_ENV: c.env.name, contract.TAG_ESTIMATOR: c.advantage.estimator,
                                       contract.TAG_MODEL: c.model.kind, contract.TAG_EVAL_KEY: self.eval_key,
                                       **c.run.tags})
            if self.start_iteration == 0 and c.eval.random_baseline:
                self._log_random(result)
            if c.eval.at_start and self.start_iteration == 0:
                self._log_eval(result, 0)
            if self.start_iteration < c.run.iterations:
                self._build_train_pool()
            for index in self._iterations():
                metrics = self.iteration(index)
                step = index + 1
                result.history.append(metrics)
                self.tracker.log_metrics(metrics, step=step)
                result.iterations = step
                last = step == c.run.iterations
                if (c.eval.every and step % c.eval.every == 0) or last:
                    self._log_eval(result, step)
                if (c.run.save_every and step % c.run.save_every == 0) or last:
                    result.checkpoint = self.save(step)
            if self.start_iteration >= c.run.iterations and not result.evaluations:  # nothing to train: evaluate
                self._log_eval(result, self.start_iteration)
            status = "FINISHED"
        except StopRun as stop:
            status, result.stopped = "KILLED", True
            logger.info("run stopped at iteration %d: %s", result.iterations, stop)
        except BaseException as error:
            self._close_after_error("KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED")
            if isinstance(error, Terminated):
                error.run_dir = self.run_dir
            raise
        if not self.shard.leader:  # rank 0 writes what the run leaves behind
            self.close(status)
            return result
        try:
            summary = Summary(result.iterations, result.evaluations, result.baseline, self.eval_key, result.stopped,
                              _mean([m[ADV_FRACTION] for m in result.history if ADV_FRACTION in m]),
                              str(result.checkpoint) if result.checkpoint else None)
            write_atomic(self.run_dir / SUMMARY_FILE, summary.to_json())
            self._log_artifacts()
        except BaseException as error:
            self._close_after_error("KILLED" if isinstance(error, (KeyboardInterrupt, SystemExit)) else "FAILED")
            raise
        self.close(status)
        return result

    def _log_artifacts(self) -> None:
        """The config, the summary and (with MLflow, where matplotlib is) the learning curves go with the run."""
        if self.config.run.tracker not in ("mlflow", "both"):
            return
        self.tracker.log_artifact(self.run_dir / "config.yaml")
        self.tracker.log_artifact(self.run_dir / SUMMARY_FILE)
        try:
            from proxmo.results.curves import evaluation_curves, plot_run

            curves = evaluation_curves(read_metrics(self.run_dir))
            if not curves.get(SUCCESS):
                return
            picture = plot_run(curves, self.run_dir / "curves.png", title=self.run_dir.name)
        except ImportError as error:  # a machine without matplotlib or scipy: the curves can be drawn later
            logger.info("no learning curves: %s", error)
            return
        self.tracker.log_artifact(picture)

    def _iterations(self):
        indices = range(self.start_iteration, self.config.run.iterations)
        if not self.progress:
            yield from indices
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("{task.fields[status]}"))
        with Progress(*columns) as bar:
            task = bar.add_task("train", total=self.config.run.iterations, completed=self.start_iteration, status="")
            for index in indices:
                yield index
                bar.update(task, advance=1, status=self._status)

    def _log_eval(self, result: TrainResult, step: int) -> None:
        metrics = self.evaluation.policy(self.actor)
        if metrics:
            result.evaluations.append({"step": float(step), **metrics})
            self.tracker.log_metrics(metrics, step=step)
            if self.shard.leader:
                logger.info("eval at %d: success %.3f", step, metrics.get(SUCCESS, float("nan")))
            stop = None
            if self.on_evaluation is not None and self.shard.leader:
                try:
                    self.on_evaluation(step, metrics)
                except StopRun as error:
                    stop = error
            if self.shard.world > 1:  # every worker stops where rank 0's callback stops the run
                stop = self.shard.broadcast(str(stop) if stop else None)
                stop = StopRun(stop) if stop else None
            if stop is not None:
                raise stop

    def _log_random(self, result: TrainResult) -> None:
        metrics = self.evaluation.random()
        if metrics:
            result.baseline = metrics
            self.tracker.log_metrics(metrics, step=0)

    def save(self, step: int) -> Optional[Path]:
        """Checkpoint at ``step`` (rank 0 writes it, with every worker's random streams); the folder on rank 0."""
        workers = model_state = optimizer_state = None
        if self.sharded:  # the full weights and optimizer state, gathered on rank 0
            model_state, optimizer_state = full_states(self.policy.model, self.optimizer)
        if self.shard.world > 1:
            workers = self.shard.gather({"generator": self.generator.get_state(), "task_rng": self.task_rng.getstate()})
            if not self.shard.leader:
                return None
        folder = save_checkpoint(
            self.run_dir / "checkpoints", step, self.policy, self.optimizer, self.generator, self.task_rng, self.config,
            workers=workers, update_generator=self.update_generator if workers else None, model_state=model_state,
            optimizer_state=optimizer_state,
        )
        kept = sorted((self.run_dir / "checkpoints").glob("iter_*"))
        for old in kept[: -self.config.run.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return folder

    def close(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (its folder and MLflow) and give up the run folder."""
        try:
            if self._pool is not None:
                pool, self._pool = self._pool, None
                pool.close()
        finally:
            try:
                self.tracker.close(status)
            finally:
                if self._writer is not None:
                    self._writer.release()

    def _close_after_error(self, status: str) -> None:
        """Close while an error is on its way out: a failure to close (a full disk) is logged, not raised over it."""
        try:
            self.close(status)
        except Exception as error:  # noqa: BLE001 - the error being raised is the one to report
            logger.warning("ending the run %s hit: %s", status, error)


def _mean(values: List[float]) -> Optional[float]:
    return sum(values) / len(values) if values else None


def train(config: TrainConfig, tracker: Optional[Tracker] = None, progress: bool = True,
          on_evaluation: Optional[EvaluationCallback] = None) -> TrainResult:
    """Run a whole training job; see :class:`Trainer`. SIGTERM ends it KILLED (:func:`terminate_as_exit`).

    With ``run.workers > 1`` the job runs on that many workers through Ray Train (:mod:`proxmo.train.workers`); its
    tracker is rank 0's own, and an evaluation callback is not available there.
    """
    if config.run.workers > 1:
        if tracker is not None or on_evaluation is not None:
            raise ValueError(f"run.workers: a job on {config.run.workers} workers makes its tracker on rank 0 and takes "
                             "no evaluation callback (a pruned search trial); run it with run.workers=1")
        from proxmo.train.workers import train_on_workers

        with terminate_as_exit():
            return train_on_workers(config, progress)
    with terminate_as_exit():
        return Trainer(config, tracker, progress, on_evaluation).run()


__all__ = ["EvaluationCallback", "StopRun", "TrainResult", "Trainer", "run_name", "train"]


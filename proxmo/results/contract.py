"""The run contract: what a run is to everyone who reads it.

The training job writes runs by these rules; tasks, flows, the command line and the dashboard read them.
No other module spells a metric, tag or role name, builds a run name, or decides what "final", "best",
"objective" and "baseline" mean. Plain Python (no numpy, no MLflow), so that the job imports it on a bare
GPU machine.

* Metric names: ``<source>/<quantity>[/<category>]`` with the sources :data:`TRAIN`, :data:`VAL` (sampled
  evaluation), :data:`GREEDY` and :data:`RANDOM` (a uniformly random agent on the same episodes), and
  ``timing/<phase>_s`` for every timed phase of an iteration (:data:`PHASES`). Only
  ``[A-Za-z0-9_./ -]`` (what MLflow accepts): :func:`metric_key` replaces the rest.
* Tags on a run's MLflow run, roles and group names on the parent run a flow nests its jobs under.
* Run names: one rule per kind of job (a single run, an ablation's variant and seed, a sweep trial, a
  reproduction cell), each also read back by :func:`parse_variant_run`.
* The summary (``summary.json``, :class:`Summary`): the evaluations of a run and what is computed from them.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

# -- metric names -------------------------------------------------------------------------------
TRAIN = "train"
"""Episodes the policy trained on (sampled at the rollout temperature)."""
VAL = "val"
"""Evaluation episodes at the evaluation temperature: the numbers runs are compared on."""
GREEDY = "val/greedy"
"""The same evaluation episodes played greedily."""
RANDOM = "val/random"
"""A uniformly random agent over the same candidate actions on the same evaluation episodes."""
ACTOR, ADVANTAGE, BATCH, TIMING = "actor", "adv", "batch", "timing"
"""Sources of the update's statistics, the advantage diagnostics, the batch's sizes and the phase timings."""

PHASES = ("rollout", "adv", "update", "ref_logprob", "old_logprob")
"""The timed phases of a training iteration (``timing/<phase>_s`` and ``timing/<phase>_fraction``)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_./ -]")


def metric_key(*parts: str) -> str:
    """A metric name MLflow accepts: parts joined by '/', other characters replaced by '_'."""
    return "/".join(_UNSAFE.sub("_", str(part)) for part in parts)


def success_key(source: str = VAL, category: Optional[str] = None) -> str:
    """``val/success``, ``train/success``, ``val/greedy/success/Pick``: success of a source, overall or per category."""
    return metric_key(source, "success") if category is None else metric_key(source, "success", category)


def quantity_key(source: str, quantity: str) -> str:
    """``val/score``, ``val/success_se``, ``train/episodes``...: another quantity of a source's episodes."""
    return metric_key(source, quantity)


def timing_key(phase: str) -> str:
    """Seconds spent in ``phase`` in one iteration (or one evaluation)."""
    return metric_key(TIMING, f"{phase}_s")


def fraction_key(phase: str) -> str:
    """The share of an iteration's time spent in ``phase``."""
    return metric_key(TIMING, f"{phase}_fraction")


SUCCESS = success_key(VAL)
"""The metric runs, variants and trials are compared on: validation success."""
SUCCESS_SE = quantity_key(VAL, "success_se")
"""Its standard error over the evaluation's episodes."""
EPISODES = quantity_key(VAL, "episodes")
TRAIN_SUCCESS = success_key(TRAIN)
LOSS = metric_key(ACTOR, "loss")
ITERATION_SECONDS = timing_key("iteration")
STEPS_PER_SECOND = metric_key(TIMING, "steps_per_s")
BATCH_STEPS = metric_key(BATCH, "steps")
"""Rows (steps) the iteration's update trained on."""
KEPT_FRACTION = metric_key(BATCH, "kept_fraction")
"""Dynamic sampling: the share of collected groups whose episodes' returns differ (the others are dropped)."""
EXTRA_COLLECTIONS = metric_key(BATCH, "extra_collections")
"""Dynamic sampling: collections beyond the first that refilled the batch."""
WORKER_IMBALANCE = metric_key(BATCH, "worker_imbalance")
"""A job on several workers: the most steps one worker played into the batch, over the mean (1: even). The update's
rows are then moved between workers to even out their work; the rollout's are not."""
ADV_SECONDS = timing_key("adv")
ADV_FRACTION = fraction_key("adv")
"""The share of an iteration spent computing advantages: ProxMO's overhead."""


def environment_steps(metrics: Mapping[str, float]) -> float:
    """Environment steps of one training iteration: its episodes times their mean length."""
    return metrics[quantity_key(TRAIN, "episodes")] * metrics[quantity_key(TRAIN, "episode_length")]


def category_of(key: str, source: str = VAL) -> Optional[str]:
    """The category of a per-category success key of ``source`` (``val/success/Pick`` -> ``Pick``), else None."""
    prefix = success_key(source) + "/"
    if not key.startswith(prefix):
        return None
    rest = key[len(prefix):]
    return rest if rest and "/" not in rest else None


def categories(evaluations: Iterable[Mapping[str, Any]], source: str = VAL) -> List[str]:
    """Every category with a success value of ``source`` in any of the evaluations, sorted."""
    return sorted({c for metrics in evaluations for c in (category_of(k, source) for k in metrics) if c is not None})


def by_category(metrics: Mapping[str, Any], source: str = VAL) -> Dict[str, float]:
    """The per-category successes of ``source`` in one evaluation."""
    return {c: float(v) for k, v in metrics.items() if (c := category_of(k, source)) is not None}


# -- tags, roles and group names ----------------------------------------------------------------
TAG_ENV = "env"
TAG_ESTIMATOR = "estimator"
TAG_MODEL = "model"
TAG_EVAL_KEY = "eval_tasks_hash"
"""Hash of the evaluation task list and settings: runs compare only on the same one."""
TAG_VARIANT = "variant"
TAG_ABLATION = "ablation"
TAG_STUDY = "study"
TAG_TRIAL = "trial"
TAG_REPRODUCTION = "reproduction"
TAG_FLOW_RUN = "prefect.flow_run_id"
TAG_ROLE = "proxmo_role"
"""On a parent run: which kind of group it is (:data:`ROLES`)."""
TAG_GROUP = "proxmo_name"
"""On a parent run: the group's name (an ablation's, a study's)."""
TAG_BASELINE = "baseline"
"""On an ablation's parent run: the variant the others are compared with."""
TAG_PARENT = "mlflow.parentRunId"
ROLE_ABLATION, ROLE_STUDY, ROLE_REPRODUCTION = "ablation", "study", "reproduction"
SEED_PARAM = "run.seed"
"""The MLflow parameter that holds a run's seed."""

# -- run names ----------------------------------------------------------------------------------
SEPARATOR = "__"


def run_name(env: str, estimator: str, seed: int, stamp: Optional[str] = None) -> str:
    """A single run that was not given a name: ``env__estimator__s<seed>__<time>``."""
    return SEPARATOR.join([env, estimator, f"s{seed}", stamp or time.strftime("%Y%m%d-%H%M%S")])


def variant_run_name(variant: str, seed: int) -> str:
    """One seed of an ablation's variant: ``<variant>__s<seed>``."""
    return f"{variant}{SEPARATOR}s{seed}"


def parse_variant_run(name: str) -> Optional[Tuple[str, int]]:
    """(variant, seed) of a name made by :func:`variant_run_name`, else None."""
    variant, separator, seed = name.rpartition(f"{SEPARATOR}s")
    if not separator or not variant or not seed.isdigit():
        return None
    return variant, int(seed)


def trial_run_name(number: int, seed: Optional[int] = None) -> str:
    """A sweep trial's job: ``trial007``, or ``trial007__s<seed>`` when a trial trains several seeds."""
    name = f"trial{number:03d}"
    return name if seed is None else f"{name}{SEPARATOR}s{seed}"


def reproduction_run_name(env: str, estimator: str, seed: int) -> str:
    """One cell of the paper's table: ``<env>__<estimator>__s<seed>``."""
    return SEPARATOR.join([env, estimator, f"s{seed}"])


# -- final, best, objective, baseline -----------------------------------------------------------
OBJECTIVES = ("final", "auc")
"""What a search maximises over a run's evaluations: the last value, or their mean (area under the curve)."""


def final_value(values: Sequence[float]) -> float:
    """The value at the last evaluation."""
    if not values:
        raise ValueError("the run has no evaluation")
    return float(values[-1])


def best_value(values: Sequence[float]) -> float:
    """The best value over the evaluations (optimistic: the maximum of noisy values; never reported as typical)."""
    if not values:
        raise ValueError("the run has no evaluation")
    return float(max(values))


def objective_value(values: Sequence[float], objective: str = "final") -> float:
    """``final``: the last value; ``auc``: the mean over the evaluations."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: expected one of {OBJECTIVES}, got {objective!r}")
    if not values:
        raise ValueError("the run has no evaluation to score")
    return final_value(values) if objective == "final" else sum(values) / len(values)


def default_baseline(variants: Sequence[str]) -> Optional[str]:
    """The variant others are compared with when none is named: ``grpo`` if present, else the first in the order
    the variants were given (which an ablation records on its parent run, :data:`TAG_BASELINE`)."""
    variants = list(variants)
    if not variants:
        return None
    return "grpo" if "grpo" in variants else variants[0]


# -- the summary --------------------------------------------------------------------------------
SUMMARY_FILE = "summary.json"
"""In a run's folder: its :class:`Summary`, written when the run ends."""
METRICS_FILE = "metrics.jsonl"
"""In a run's folder: one JSON record ``{"step", "time", "metrics"}`` per logged step, appended as the run goes."""


@dataclass
class Summary:
    """What a finished (or stopped) run's folder says about it, in ``summary.json``."""

    iterations: int = 0
    evaluations: List[Dict[str, float]] = field(default_factory=list)
    """Every evaluation's metrics (``val/...``) with its ``step``, in order."""
    random_baseline: Dict[str, float] = field(default_factory=dict)
    """The random agent's evaluation (``val/random/...``), when measured."""
    eval_tasks_hash: str = ""
    stopped: bool = False
    """An evaluation callback ended the run early (a pruned trial)."""
    adv_fraction: Optional[float] = None
    """The mean share of an iteration spent computing advantages."""
    checkpoint: Optional[str] = None

    @property
    def final_eval(self) -> Dict[str, float]:
        return self.evaluations[-1] if self.evaluations else {}

    @property
    def first_eval(self) -> Dict[str, float]:
        return self.evaluations[0] if self.evaluations else {}

    def values(self, metric: str = SUCCESS) -> List[float]:
        """``metric`` at every evaluation that measured it, in order."""
        return [float(e[metric]) for e in self.evaluations if metric in e]

    def final(self, metric: str = SUCCESS) -> float:
        return final_value(self.values(metric))

    def best(self, metric: str = SUCCESS) -> float:
        return best_value(self.values(metric))

    def objective(self, objective: str = "final", metric: str = SUCCESS) -> float:
        return objective_value(self.values(metric), objective)

    def to_dict(self) -> Dict[str, Any]:
        data = asdict(self)
        data["final_eval"], data["first_eval"] = self.final_eval, self.first_eval
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Summary":
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        return cls(**known)

    @classmethod
    def read(cls, run_dir: str | Path) -> "Summary":
        """The summary of the run in ``run_dir``."""
        return cls.from_dict(json.loads((Path(run_dir) / SUMMARY_FILE).read_text()))

"""The flows' parameters as typed specs, one per flow, each holding where its jobs run and where they are tracked
(:class:`~tasks.specs.LaunchSpec`, :class:`~tasks.specs.TrackingSpec`).

A spec is the one place a setting and its default are declared: the flows take them as their parameter (Prefect
renders them as a form in its UI and validates what a deployment or an API call sends), and the command line
builds them from the options a user gave, leaving every other field at the spec's default. A spec refuses a bad
value when it is made, naming the field, before any job starts; values are not echoed in errors (a storage URL
may hold a password).
"""

from __future__ import annotations

from typing import Annotated, Dict, List, Literal, Optional, Tuple

from pydantic import AfterValidator, Field, field_validator, model_validator

from proxmo.results.contract import OBJECTIVES
from proxmo.train.runfolder import check_path_component
from tasks.specs import LaunchSpec, TrackingSpec

FolderName = Annotated[str, AfterValidator(lambda value: check_path_component(value, "name"))]
"""A name that is one folder (an ablation's, a study's): no '/', not '.' or '..', not empty."""

PAPER_VARIANTS: Dict[str, List[str]] = {
    "grpo": ["advantage.estimator=grpo"],
    "gigpo": ["advantage.estimator=gigpo"],
    "proxmo": ["advantage.estimator=proxmo"],
    "proxmo-no-modulation": ["advantage.estimator=proxmo", "advantage.modulation=false"],
    "proxmo-exact-groups": ["advantage.estimator=proxmo", "advantage.step_grouping=exact"],
    "proxmo-official": ["advantage.estimator=proxmo", "advantage.preset=official"],
}
"""The paper's ablation grid: the three estimators, ProxMO without modulation, with exact instead of soft
step groups, and with the released code's statistics."""



def zoo_variants() -> Dict[str, List[str]]:
    """Every registered estimator at its defaults, one variant each (``proxmo estimators`` lists them)."""
    from proxmo.advantage import ESTIMATORS

    return {name: [f"advantage.estimator={name}"] for name in ESTIMATORS}


GRIDS = {"paper": lambda: dict(PAPER_VARIANTS), "zoo": zoo_variants}
"""Named variant grids: the paper's ablation, and the zoo of every registered estimator."""

SEARCH_SPACE: Dict[str, Tuple[str, float, float, bool]] = {
    "delta": ("advantage.target_range", 0.01, 0.3, True),
    "beta": ("advantage.beta", 0.02, 1.0, True),
    "tau": ("advantage.temperature", 0.02, 1.0, True),
    "alpha": ("advantage.alpha", 1.0, 8.0, False),
    "omega": ("advantage.step_weight", 0.25, 2.0, False),
    "rollout_temperature": ("rollout.temperature", 0.5, 1.5, False),
}
"""Named search parameters: name -> (config field, low, high, log scale). δ (or β) and τ are searched by default.
Any other numeric config field (every estimator's numeric options among them) is searched by its dotted key,
with its range in ``ranges``."""


class TrainSpec(LaunchSpec):
    """One training run from a preset and dotted overrides."""

    preset: str = Field("configs/webshop_demo.yaml", description="A YAML preset (relative to the project or here).")
    overrides: List[str] = Field(default_factory=list, description="Dotted overrides, e.g. optim.lr=1e-4.")


class ReproduceSpec(LaunchSpec, TrackingSpec):
    """The paper's table: every estimator on every environment's preset and seed."""

    presets: Dict[str, Optional[str]] = Field(
        default_factory=lambda: {"alfworld": "configs/alfworld_demo.yaml", "webshop": "configs/webshop_demo.yaml"},
        description="Environment -> preset; an environment whose preset is null is not trained, its columns stay "
        "in the table, empty.")
    estimators: List[str] = Field(default_factory=lambda: ["grpo", "gigpo", "proxmo"], min_length=1,
                                  description="The methods: one row each.")
    seeds: List[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds of every cell.")
    overrides: List[str] = Field(default_factory=list, description="Dotted overrides for every job.")
    env_overrides: Dict[str, List[str]] = Field(
        default_factory=dict, description="Environment -> dotted overrides for that environment's jobs only.")
    output_dir: str = Field("runs/reproduce", description="Runs go to OUTPUT_DIR/<env>__<estimator>__s<seed>.")
    name: str = Field("reproduce", description="The parent MLflow run of the table.")
    experiment: str = Field("proxmo-reproduce", min_length=1, description="MLflow experiment of the parent run and "
                            "its jobs.")

    @model_validator(mode="after")
    def _known_environments(self) -> "ReproduceSpec":
        import envs

        for field, names in (("presets", self.presets), ("env_overrides", self.env_overrides)):
            unknown = [name for name in names if name not in envs.registered()]
            if unknown:
                raise ValueError(f"{field}: unknown environment(s) {unknown}; registered: {envs.registered()}")
        if not any(self.presets.values()):
            raise ValueError("presets: give at least one environment a preset")
        return self


class AblationSpec(LaunchSpec, TrackingSpec):
    """Named variants (each a list of overrides) x seeds, compared with paired differences to a baseline."""

    preset: str = Field("configs/alfworld_demo.yaml", description="The preset every variant starts from.")
    grid: Literal[tuple(GRIDS)] = Field("paper", description="The variants when none are given: paper (the paper's "
                                        "ablation) or zoo (every registered estimator at its defaults).")
    variants: Dict[str, List[str]] = Field(default_factory=dict, description="Variant name -> its dotted overrides "
                                           "(default: the grid's). Each name is a folder and a run name.")
    seeds: List[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description="Seeds of every variant.")
    overrides: List[str] = Field(default_factory=list, description="Dotted overrides for every job.")
    name: FolderName = Field("ablation", description="The ablation's folder, artifacts and parent MLflow run.")
    output_dir: str = Field("runs/ablations", description="Runs go to OUTPUT_DIR/NAME/<variant>__s<seed>.")
    baseline: Optional[str] = Field(None, description="The variant the others are compared with (default: grpo if "
                                    "it is one, else the first given).")
    experiment: str = Field("proxmo-ablations", min_length=1, description="MLflow experiment of the parent run and "
                            "its jobs.")

    @model_validator(mode="after")
    def _variants_and_baseline(self) -> "AblationSpec":
        if not self.variants:
            self.variants = GRIDS[self.grid]()
        for variant in self.variants:
            check_path_component(variant, "variant")
        if self.baseline is not None and self.baseline not in self.variants:
            raise ValueError(f"baseline: {self.baseline!r} is not one of the variants {list(self.variants)}")
        return self


class SweepSpec(LaunchSpec, TrackingSpec):
    """An Optuna study (TPE) over the search space, each trial a training job per seed."""

    preset: str = Field("configs/alfworld_demo.yaml", description="The preset every trial starts from.")
    name: FolderName = Field("sweep", description="The study's name: its folder, storage entry and parent MLflow run.")
    n_trials: int = Field(24, ge=1, description="Finished trials (complete, pruned or failed) the study should hold.")
    concurrency: int = Field(2, ge=1, description="Trials at a time.")
    params: List[str] = Field(default_factory=lambda: ["delta", "tau"], min_length=1,
                              description=f"Searched: names from {list(SEARCH_SPACE)}, or any numeric config field by "
                              "its dotted key (e.g. advantage.history_length), whose range ranges must give.")
    ranges: Dict[str, List[float]] = Field(default_factory=dict, description="Name -> [low, high] instead of the "
                                           "search space's range (required for a dotted key).")
    log_scale: List[str] = Field(default_factory=list, description="Dotted keys searched on a log scale.")
    objective: Literal[OBJECTIVES] = Field("final", description="final: the last validation success; auc: its "
                                               "mean over the run's evaluations.")
    pruner: str = Field("median", description="median, none or threshold:<lower>.")
    overrides: List[str] = Field(default_factory=list, description="Dotted overrides for every trial.")
    seeds: List[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds each trial trains; its "
                             "value is the mean of their objectives. The first also seeds the sampler.")
    storage: Optional[str] = Field(None, description="Optuna storage URL; default PROXMO_OPTUNA_STORAGE, else SQLite "
                                   "optuna.db here. One with a password only through that variable: Prefect keeps a "
                                   "flow's parameters in plain text.")
    output_dir: str = Field("runs/sweeps", description="Trials go to OUTPUT_DIR/NAME/trialNNN.")
    experiment: str = Field("proxmo-sweeps", min_length=1, description="MLflow experiment of the parent run and its "
                            "trials.")

    @field_validator("pruner")
    @classmethod
    def _pruner(cls, value: str) -> str:
        from tasks.study import make_pruner

        make_pruner(value)  # raises naming the pruner
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, value: List[int]) -> List[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds: give distinct seeds, got {value}")
        return value

    @field_validator("storage")
    @classmethod
    def _no_password(cls, value: Optional[str]) -> Optional[str]:
        from proxmo.urls import OPTUNA_STORAGE_ENV, redact_url

        if value and redact_url(value) != value:
            raise ValueError(f"storage: {redact_url(value)} holds a password, and Prefect keeps a flow's parameters "
                             f"in plain text; set it in {OPTUNA_STORAGE_ENV} instead (the `proxmo sweep` command does "
                             "that for --storage)")
        return value

    @model_validator(mode="after")
    def _searchable(self) -> "SweepSpec":
        self.space()
        return self

    def space(self) -> Dict[str, Tuple[str, float, float, bool]]:
        """Name -> (config field, low, high, log scale) of every searched parameter, its range as given."""
        unknown = [p for p in [*self.params, *self.ranges, *self.log_scale] if p not in SEARCH_SPACE and not _dotted(p)]
        if unknown:
            raise ValueError(f"params: unknown {unknown}; choose from {list(SEARCH_SPACE)} or give a dotted config "
                             "key (e.g. advantage.history_length)")
        if len(set(self.params)) != len(self.params):
            raise ValueError(f"params: each parameter once, got {self.params}")
        if "delta" in self.params and "beta" in self.params:
            raise ValueError("params: delta and beta set the same modulation strength; search one of them")
        unsearched = [p for p in [*self.ranges, *self.log_scale] if p not in self.params]
        if unsearched:
            raise ValueError(f"ranges: {unsearched} not among the searched params {self.params}")
        space = {}
        for name in self.params:
            if name in SEARCH_SPACE:
                key, low, high, log = SEARCH_SPACE[name]
            elif name not in self.ranges:
                raise ValueError(f"ranges.{name}: give [low, high] for a dotted parameter")
            else:
                key, low, high, log = name, 0.0, 0.0, name in self.log_scale
            if name in self.ranges:
                if len(self.ranges[name]) != 2:
                    raise ValueError(f"ranges.{name}: give [low, high]")
                low, high = (float(v) for v in self.ranges[name])
            if not low < high or (log and low <= 0):
                raise ValueError(f"ranges.{name}: need 0 < low < high on a log scale, got [{low}, {high}]")
            space[name] = (key, low, high, log)
        return space


def _dotted(name: str) -> bool:
    """A dotted config key: section.field (or deeper), every part an identifier."""
    parts = name.split(".")
    return len(parts) >= 2 and all(part.isidentifier() for part in parts)


__all__ = ["AblationSpec", "GRIDS", "LaunchSpec", "PAPER_VARIANTS", "ReproduceSpec", "SEARCH_SPACE", "SweepSpec", "TrackingSpec",
           "TrainSpec"]

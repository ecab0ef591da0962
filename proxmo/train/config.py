"""TrainConfig: every setting of a training run, with the reference runs' defaults, loaded from YAML plus overrides.

One source of truth: the field defaults below are the reference runs' settings (docs/training.md,
"Configuration"); the presets in ``configs/`` only override. ``load_config("configs/webshop_demo.yaml",
["optim.lr=1e-4", "advantage.estimator=gigpo"])`` reads a preset, applies dotted overrides (values
parsed as YAML) and validates; a bad value fails at once with the field's dotted name.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import envs
from proxmo.advantage import AdvantageConfig
from proxmo.policy import ModelConfig
from proxmo.policy.config import LENGTH_NORMALIZE
from proxmo.rollout.prompts import HISTORY_LENGTH, PromptStyle
from proxmo.train.runfolder import STATE_FILE, check_path_component, latest_checkpoint
from proxmo.train.tracking import check_tracking_uri

MAX_ENVIRONMENTS = 10_000
"""Most environments a run keeps live at once (rollouts of one iteration, or evaluation episodes side by side).
Each holds its game or shop in memory and is built before the first step; the reference runs use 128."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class EnvConfig(_Section):
    """Which environment, its options, and how the pool runs it."""

    name: str = Field("alfworld", description="Registered environment name (alfworld, webshop, or one of yours).")
    options: Dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the environment on top of its reference options (its EnvSpec.defaults, "
        "e.g. WebShop's catalog size and ALFWorld's engine). ALFWorld takes "
        "games={train, eval, seed, max_receptacles, distractors}: games generated under run.output_dir when "
        "options.data is unset and ALFWORLD_DATA holds no such split.",
    )
    train_split: Optional[str] = Field(None, description="Split the training tasks come from (default the environment's).")
    eval_split: Optional[str] = Field(None, description="Split evaluated on (alfworld: valid_unseen, webshop: test).")
    backend: Literal["local", "ray"] = Field("local", description="Environment pool backend.")
    envs_per_actor: int = Field(8, ge=1, description="Environments per Ray actor (backend ray).")
    ray_address: Optional[str] = Field(None, description="Ray cluster address (backend ray); local Ray when unset.")

    @model_validator(mode="after")
    def _env_defaults(self) -> "EnvConfig":
        if self.name not in envs.registered():
            raise ValueError(f"env.name: unknown environment {self.name!r}; registered: {envs.registered()}")
        spec = envs.spec(self.name)
        if self.train_split is None:
            self.train_split = spec.train_split
        if self.eval_split is None:
            self.eval_split = spec.eval_split
        merged = {**spec.defaults, **self.options}
        envs.check_options(self.name, merged)
        spec.check_options(merged)
        if merged != self.options:
            self.options = merged
        return self


class RolloutConfig(_Section):
    """Group rollouts: K groups of n episodes of one task instance, and how the policy acts."""

    n_groups: int = Field(16, ge=1, description="K: episode groups per iteration (distinct task instances).")
    group_size: int = Field(8, ge=1, description="n: episodes per group.")
    max_steps: Optional[int] = Field(
        None, ge=1, description="Episode cap; default the environment's (alfworld 50, webshop 15)."
    )
    history_length: int = Field(HISTORY_LENGTH, ge=0, description="Past (observation, action) pairs shown in the prompt.")
    temperature: float = Field(
        1.0, gt=0.0, description="Sampling temperature of training rollouts; the update trains the same distribution."
    )
    prompt_style: PromptStyle = Field(
        "chat",
        description="chat: the reference template (introduction, task, history, admissible actions, answer "
        "format); compact: task, recent actions and observation only (small models from scratch).",
    )
    action_mode: Literal["generate", "choose"] = Field(
        "generate",
        description="generate: the model writes <think>..</think><action>..</action> freely (the reference "
        "runs); choose: it samples one admissible action by the log-probability of its text (no format "
        "errors; lets small models learn).",
    )
    choose_score: Literal["mean", "sum"] = Field(
        "mean" if LENGTH_NORMALIZE else "sum",
        description="choose mode: rank candidates by the mean (length-normalised) or the summed token "
        "log-probability; the sum makes an untrained model always pick the shortest action.",
    )

    dynamic_sampling: bool = Field(
        False, description="Drop groups whose episodes all have the same return and refill the batch with new "
        "groups (DAPO's dynamic sampling; proxmo/train/sampling.py).")
    max_collections: int = Field(
        10, ge=1, description="Dynamic sampling: collections per iteration at most; after the last, the batch is "
        "filled with its dropped groups.")

    @property
    def length_normalize(self) -> bool:
        """Whether choose mode scores candidates by their mean token log-probability (what acting and the update use)."""
        return self.choose_score == "mean"


class OptimConfig(_Section):
    """The PPO-style actor update (no critic)."""

    lr: float = Field(1e-6, gt=0.0, description="AdamW learning rate (constant).")
    weight_decay: float = Field(0.01, ge=0.0, description="AdamW weight decay.")
    grad_clip: float = Field(1.0, gt=0.0, description="Gradient-norm clip.")
    clip_low: float = Field(0.2, ge=0.0, lt=1.0, description="Ratio clip below 1.")
    clip_high: float = Field(0.2, ge=0.0, description="Ratio clip above 1.")
    dual_clip: float = Field(3.0, gt=1.0, description="Dual-clip constant c for negative advantages.")
    kl_coef: float = Field(0.01, ge=0.0, description="Coefficient of the low-variance KL to the reference policy (0: no reference model).")
    entropy_coef: float = Field(0.001, ge=0.0, description="Entropy bonus coefficient.")
    loss_agg: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean"] = Field(
        "token-mean", description="How token losses are averaged."
    )
    ppo_epochs: int = Field(1, ge=1, description="Passes over each batch.")
    mini_batches: int = Field(1, ge=1, description="Optimizer steps per epoch (the batch split in this many parts).")
    micro_batch_size: int = Field(8, ge=1, description="Sequences per forward pass (gradient accumulation).")


class EvalConfig(_Section):
    """Evaluation on the eval split: success overall and per category, with its standard error."""

    every: int = Field(5, ge=0, description="Evaluate every this many iterations (0: only after the last).")
    at_start: bool = Field(False, description="Also evaluate before the first update.")
    tasks: Optional[int] = Field(None, ge=1, description="Evaluate on the first this many tasks (default all).")
    episodes_per_task: int = Field(1, ge=1, description="Episodes played on each eval task.")
    temperature: float = Field(0.4, ge=0.0, description="Sampling temperature of evaluation (0: greedy).")
    greedy: bool = Field(False, description="Also evaluate greedily (val/greedy/*), beside the sampled evaluation.")
    random_baseline: bool = Field(
        False, description="Before training, play a uniformly random agent over the same actions on the same "
        "episodes (val/random/*): the floor a learning claim is measured against.",
    )
    batch: int = Field(64, ge=1, description="Episodes run side by side.")


class RunConfig(_Section):
    """Length, seed, where results go, and how they are reported."""

    iterations: int = Field(100, ge=0, description="Training iterations (rollout + update).")
    seed: int = Field(0, description="Seeds task sampling, action sampling and the model's initialisation "
                      "(unless model.seed is set).")
    name: Optional[str] = Field(None, description="Run name; default env__estimator__seed__time.")
    output_dir: str = Field("runs", description="Runs are written to output_dir/name.")
    tracker: Literal["jsonl", "mlflow", "both", "none"] = Field(
        "jsonl", description="jsonl: the run folder records the run; mlflow (or both): and sends it to MLflow; none.")
    experiment: str = Field("proxmo", description="MLflow experiment name.")
    tracking_uri: Optional[str] = Field(None, description="MLflow tracking URI (default MLFLOW_TRACKING_URI).")
    parent_run_id: Optional[str] = Field(
        None, description="MLflow run this run is nested under (an ablation or a study sets it)."
    )
    tags: Dict[str, str] = Field(default_factory=dict, description="Extra tags of the run (e.g. the Prefect flow-run id).")

    @field_validator("name")
    @classmethod
    def _one_folder(cls, value: Optional[str]) -> Optional[str]:
        return None if value is None else check_path_component(value, "run.name")

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_scheme(cls, value: Optional[str]) -> Optional[str]:
        return check_tracking_uri(value)
    save_every: int = Field(0, ge=0, description="Checkpoint every this many iterations (0: only after the last).")
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept.")
    resume: Optional[str] = Field(None, description="A checkpoint folder (or a run folder: its latest) to continue from.")
    workers: int = Field(1, ge=1, description="Workers one job runs on (Ray Train, torch.distributed: gloo on CPUs, "
                         "NCCL on GPUs). Each plays a share of the task groups (rollout.n_groups split as evenly as "
                         "possible, the first workers one more) and the update sums their gradients, taking the step "
                         "one worker takes on the whole batch. 1: the job runs in this process.")
    worker_cpus: float = Field(1.0, gt=0, description="CPUs of one worker (run.workers > 1).")
    worker_gpus: float = Field(0.0, ge=0, description="GPUs of one worker (run.workers > 1); 1 gives each its own GPU.")
    shard_model: bool = Field(False, description="run.workers > 1: shard each decoder layer's parameters, gradients and "
                              "optimizer state over the workers (PyTorch FSDP2); the episodes are played by a full "
                              "copy of the weights in the compute dtype, refreshed after every update.")
    max_failures: int = Field(0, ge=0, description="run.workers > 1: how often the workers are restarted after one "
                              "dies; each restart continues from the run's last checkpoint (see run.save_every).")

    @field_validator("resume")
    @classmethod
    def _checkpoint_found(cls, value: Optional[str]) -> Optional[str]:
        if value is None:
            return None
        if not (Path(value) / STATE_FILE).is_file() and latest_checkpoint(Path(value)) is None:
            raise ValueError(f"run.resume: no checkpoint in {value!r} (expected {STATE_FILE} there, or iter_* or "
                             "checkpoints/iter_* folders)")
        return value


class TrainConfig(_Section):
    """A whole training run."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = Field(default_factory=AdvantageConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @model_validator(mode="after")
    def _consistent(self) -> "TrainConfig":
        """Checks across sections, each saying what to set."""
        r, o = self.rollout, self.optim
        if r.group_size < 2:
            raise ValueError(f"rollout.group_size: {r.group_size} gives each episode a group of its own, so group "
                             "baselines are empty; set rollout.group_size >= 2")
        for where, count in (("rollout.n_groups x rollout.group_size", r.n_groups * r.group_size),
                             ("eval.batch", self.eval.batch)):
            if count > MAX_ENVIRONMENTS:
                raise ValueError(f"{where}: {count:,} environments at once is past the limit of {MAX_ENVIRONMENTS:,} "
                                 "(each holds a live environment in memory and all are built before the first step; "
                                 "the reference runs use 16 x 8 = 128)")
        w = self.run.workers
        if w > r.n_groups:
            raise ValueError(f"run.workers: {w} workers for {r.n_groups} task groups (rollout.n_groups); each worker "
                             "plays whole groups, so set run.workers <= rollout.n_groups")
        if w > 1 and self.model.rollout_backend == "vllm":
            raise ValueError("run.workers: a job on several workers samples with its own model (model.rollout_backend"
                             "=hf); the vLLM engine runs in a one-worker job")
        if self.run.shard_model and w < 2:
            raise ValueError("run.shard_model: shards the model over the workers of one job; set run.workers >= 2")
        if w > 1 and self.run.worker_gpus > 0 and self.model.device == "cpu":
            raise ValueError(f"run.worker_gpus: {self.run.worker_gpus:g} GPUs per worker with model.device=cpu; set "
                             "model.device=auto (or cuda), or run.worker_gpus=0")
        if o.mini_batches > r.n_groups * r.group_size:
            raise ValueError(f"optim.mini_batches: {o.mini_batches} exceeds the {r.n_groups * r.group_size} episodes "
                             "of a batch (rollout.n_groups x rollout.group_size); lower it")
        return self

    # Defaults that depend on another section, resolved here and nowhere else.
    @property
    def policy_model(self) -> ModelConfig:
        """The model settings the run uses: ``model.seed`` defaults to ``run.seed``, so seeds differ in their
        initialisation."""
        return self.model if self.model.seed is not None else self.model.model_copy(update={"seed": self.run.seed})

    @property
    def env_options(self) -> Dict[str, Any]:
        """The environment's options as the run uses them: ``rollout.max_steps``, when set, is its episode cap."""
        options = dict(self.env.options)
        if self.rollout.max_steps is not None:
            options["max_steps"] = self.rollout.max_steps
        return options

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")

    def with_updates(self, **sections: Mapping[str, Any]) -> "TrainConfig":
        """A copy with some fields of some sections replaced (``run={"seed": 1}``), validated like a loaded config."""
        data = self.to_dict()
        for section, values in sections.items():
            if section not in data:
                raise ValueError(f"{section}: not a section of the config; sections are {list(data)}")
            data[section] = {**data[section], **values}
        return TrainConfig.model_validate(data)


class ConfigError(ValueError):
    """A configuration that cannot be loaded; the message names the file or field."""


def parse_override(override: str) -> Tuple[str, Any]:
    """``dotted.key=value`` -> (key, value): the one override grammar of every command.

    The value is read as YAML (``true``, ``null``, ``[a, b]``, ``{x: 1}``), numbers such as ``1e-4``
    included; an empty value is None.
    """
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as error:
        raise ConfigError(f"override {key}: cannot parse {raw!r}: {error}") from None
    return key, _number_if_numeric(value)


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (see :func:`parse_override`) to a nested dict, returning a new dict."""
    result = copy.deepcopy(dict(data))
    for override in overrides:
        key, value = parse_override(override)
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"override {key}: {part!r} is a value, not a section")
            node = child
        node[parts[-1]] = value
    return result


def _number_if_numeric(value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as text; a user typing it means the number."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value.lower() for c in ".e") else int(value)
        except ValueError:
            return value
    return value


def _describe_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{where}: {item['msg']}" + (f" (got {item['input']!r})" if "input" in item and not isinstance(item["input"], dict) else ""))
    return "; ".join(lines)


def build_config(data: Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """Validate a nested dict (plus overrides) into a TrainConfig; errors name the dotted field."""
    merged = apply_overrides(data, overrides)
    try:
        return TrainConfig.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(f"invalid config: {_describe_errors(error)}") from None


def load_config(path: Optional[str | Path] = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read a YAML preset (or start from the defaults) and apply dotted overrides."""
    data: Dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"config file {str(file)!r} does not exist")
        try:
            loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ConfigError(f"config file {str(file)!r} is not UTF-8 text ({error.reason} at byte {error.start})") from None
        except OSError as error:
            raise ConfigError(f"config file {str(file)!r} cannot be read: {error.strerror or error}") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"config file {str(file)!r} is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {str(file)!r} must hold a mapping of sections")
        data = loaded or {}
    return build_config(data, overrides)


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the full, resolved config as YAML (what a run actually used)."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def config_lines(config: TrainConfig) -> List[str]:
    """``section.field = value`` lines for a quick look (``proxmo train --show-config``)."""
    lines: List[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and value:
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        else:
            lines.append(f"{prefix} = {value!r}")

    walk("", config.to_dict())
    return lines

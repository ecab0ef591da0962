"""TrainConfig: every setting of a training run, with the reference runs' defaults, loaded from YAML plus overrides.

One source of truth: the field defaults below are the reference settings (ALGORITHM.md section 7);
the presets in ``configs/`` only override. ``load_config("configs/webshop_demo.yaml",
["optim.lr=1e-4", "advantage.estimator=gigpo"])`` reads a preset, applies dotted overrides (values
parsed as YAML) and validates; a bad value fails at once with the field's dotted name.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, List, Literal, Mapping, Optional, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from proxmo.advantage import AdvantageConfig
from proxmo.policy import ModelConfig

ENV_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # eval split of each environment and the options the reference runs use
    "alfworld": {"eval_split": "valid_unseen", "options": {"engine": "python"}},
    "webshop": {"eval_split": "test", "options": {"num_products": 1000, "show_instruction": False}},
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GamesConfig(_Section):
    """ALFWorld games generated for the run when no data folder is given (see ``proxmo games generate``)."""

    train: int = Field(48, ge=1, description="Training games to generate.")
    eval: int = Field(24, ge=1, description="valid_unseen games to generate for evaluation.")
    seed: int = Field(0, description="Generator seed (same seed, same games).")
    max_receptacles: int = Field(0, ge=0, description="Cap on receptacles per game (0: all of the floor plan).")
    distractors: int = Field(12, ge=0, description="Distractor objects per game.")


class EnvConfig(_Section):
    """Which environment, its options, and how the pool runs it."""

    name: Literal["alfworld", "webshop"] = Field("alfworld", description="Registered environment name.")
    options: Dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments of the environment factory, on top of the environment's reference "
        "options (webshop: num_products=1000, show_instruction=false; alfworld: engine=python).",
    )
    train_split: str = Field("train", description="Split the training tasks come from.")
    eval_split: Optional[str] = Field(None, description="Split evaluated on (alfworld: valid_unseen, webshop: test).")
    games: GamesConfig = Field(
        default_factory=GamesConfig,
        description="ALFWorld only: games generated under run.output_dir when options.data is unset and "
        "ALFWORLD_DATA holds no such split.",
    )
    backend: Literal["local", "ray"] = Field("local", description="Environment pool backend.")
    envs_per_actor: int = Field(8, ge=1, description="Environments per Ray actor (backend ray).")
    ray_address: Optional[str] = Field(None, description="Ray cluster address (backend ray); local Ray when unset.")

    @model_validator(mode="after")
    def _env_defaults(self) -> "EnvConfig":
        defaults = ENV_DEFAULTS[self.name]
        if self.eval_split is None:
            self.eval_split = defaults["eval_split"]
        merged = {**defaults["options"], **self.options}
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
    history_length: int = Field(2, ge=0, description="Past (observation, action) pairs shown in the prompt.")
    temperature: float = Field(1.0, ge=0.0, description="Sampling temperature of training rollouts.")
    action_mode: Literal["generate", "choose"] = Field(
        "generate",
        description="generate: the model writes <think>..</think><action>..</action> freely (the reference "
        "runs); choose: it samples one admissible action by the log-probability of its text (no format "
        "errors; lets small models learn).",
    )
    choose_score: Literal["mean", "sum"] = Field(
        "mean",
        description="choose mode: rank candidates by the mean (length-normalised) or the summed token "
        "log-probability; the sum makes an untrained model always pick the shortest action.",
    )


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
    """Evaluation on the eval split: one episode per task, success per category."""

    every: int = Field(5, ge=0, description="Evaluate every this many iterations (0: only after the last).")
    at_start: bool = Field(False, description="Also evaluate before the first update.")
    tasks: Optional[int] = Field(None, ge=1, description="Evaluate on the first this many tasks (default all).")
    temperature: float = Field(0.4, ge=0.0, description="Sampling temperature of evaluation.")
    batch: int = Field(32, ge=1, description="Episodes run side by side.")


class RunConfig(_Section):
    """Length, seed, where results go, and how they are reported."""

    iterations: int = Field(100, ge=0, description="Training iterations (rollout + update).")
    seed: int = Field(0, description="Seeds task sampling, action sampling and the tiny model.")
    name: Optional[str] = Field(None, description="Run name; default env__estimator__seed__time.")
    output_dir: str = Field("runs", description="Runs are written to output_dir/name.")
    tracker: Literal["jsonl", "mlflow", "both", "none"] = Field("jsonl", description="Where metrics go.")
    experiment: str = Field("proxmo", description="MLflow experiment name.")
    tracking_uri: Optional[str] = Field(None, description="MLflow tracking URI (default MLFLOW_TRACKING_URI).")
    save_every: int = Field(0, ge=0, description="Checkpoint every this many iterations (0: only after the last).")
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept.")
    resume: Optional[str] = Field(None, description="A checkpoint folder (or a run folder: its latest) to continue from.")
    device: Optional[str] = Field(None, description="Overrides model.device.")


class TrainConfig(_Section):
    """A whole training run."""

    env: EnvConfig = Field(default_factory=EnvConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    advantage: AdvantageConfig = Field(default_factory=AdvantageConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    def to_dict(self) -> Dict[str, Any]:
        return self.model_dump(mode="json")


class ConfigError(ValueError):
    """A configuration that cannot be loaded; the message names the file or field."""


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (value parsed as YAML) to a nested dict, returning a new dict."""
    result = copy.deepcopy(dict(data))
    for override in overrides:
        key, sep, raw = override.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {override!r}: expected dotted.key=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as error:
            raise ConfigError(f"override {key}: cannot parse {raw!r}: {error}") from None
        value = _number_if_numeric(value)
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
            loaded = yaml.safe_load(file.read_text())
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

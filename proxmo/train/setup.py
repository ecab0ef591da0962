"""What a run is set up from before its first iteration: its name, its environment's options and task lists, the
key of its evaluation, the tokenizer corpus of the tiny model, its policy and KL reference, how its policy acts,
and the checks of what this machine can honour."""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

import envs
from proxmo.policy import AdaptersOff, ModelConfig, Policy
from proxmo.policy.model import check_model_path
from proxmo.results import contract
from proxmo.rollout import RolloutSettings
from proxmo.rollout.prompts import ANSWER
from proxmo.train.config import TrainConfig
from proxmo.train.runfolder import STATE_FILE, resume_candidates


@dataclass
class EnvSetup:
    """The environment options and task lists of a run."""

    name: str
    train_options: Dict[str, Any]
    eval_options: Dict[str, Any]
    train_tasks: List[Any]
    eval_tasks: List[Any]


def run_name(config: TrainConfig) -> str:
    """The config's run name, else one by the contract's rule (:func:`proxmo.results.contract.run_name`)."""
    return config.run.name or contract.run_name(config.env.name, config.advantage.estimator, config.run.seed)


def prepare_env(config: TrainConfig) -> EnvSetup:
    """Resolve the environment options of both splits (preparing their data) and list their tasks."""
    name = config.env.name
    spec = envs.spec(name)
    options = spec.prepare(config.env_options, Path(config.run.output_dir),
                           (config.env.train_split, config.env.eval_split))
    accepted = envs.option_names(name)
    if accepted is None or "split" in accepted:
        train_options = {**options, "split": config.env.train_split}
        eval_options = {**options, "split": config.env.eval_split}
    else:  # an environment without splits: training and evaluation draw from the same tasks
        train_options, eval_options = dict(options), dict(options)
    train_env = envs.make(name, **train_options)
    eval_env = envs.make(name, **eval_options)
    try:
        train_tasks, eval_tasks = train_env.tasks(), eval_env.tasks()
    finally:
        train_env.close()
        eval_env.close()
    if config.eval.tasks is not None:
        eval_tasks = eval_tasks[: config.eval.tasks]
    if not train_tasks:
        raise ValueError(f"env: split {config.env.train_split!r} of {name} has no tasks")
    return EnvSetup(name, train_options, eval_options, list(train_tasks), list(eval_tasks))


def tokenizer_corpus(setup: EnvSetup, samples: int = 24, seed: int = 0) -> List[str]:
    """Texts the tiny model's tokenizer is trained on: the prompt wording and random episodes of the environment."""
    spec = envs.spec(setup.name)
    corpus = [spec.intro, *ANSWER.values(), "task: did: now:"]
    rng = random.Random(seed)
    env = envs.make(setup.name, **setup.train_options)
    try:
        for task in rng.sample(setup.train_tasks, min(samples, len(setup.train_tasks))):
            observation, info = env.reset(task)
            task_line = spec.task_text(observation, info)
            corpus.extend([observation, task_line, *spec.corpus(info)])
            for _ in range(4):
                commands = spec.candidates(info.get("admissible_commands", []), task_line)
                if not commands:
                    break
                corpus.extend(commands)
                observation, _, done, info = env.step(rng.choice(commands))
                corpus.append(observation)
                if done:
                    break
    finally:
        env.close()
    return corpus


def evaluation_key(config: TrainConfig, setup: EnvSetup) -> str:
    """A hash of what an evaluation plays: the environment, its options, the tasks and how they are played.

    Two runs with the same key were evaluated on the same task list the same way, so their validation
    numbers can be compared; where the data lives (e.g. a games folder under another output folder) does
    not change the key, the tasks' own identities do.
    """
    spec = envs.spec(setup.name)
    options = {k: v for k, v in setup.eval_options.items() if k not in spec.location_options}
    described = {
        "env": setup.name,
        "options": options,
        "tasks": [spec.task_key(task) for task in setup.eval_tasks],
        "episodes_per_task": config.eval.episodes_per_task,
        "temperature": config.eval.temperature,
        "max_steps": config.rollout.max_steps,
    }
    text = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_runtime(config: TrainConfig) -> None:
    """Fail before any work on settings this machine cannot honour."""
    device = config.model.resolved_device()
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"model.device: {config.model.device!r} asks for CUDA, but this torch "
                         f"({torch.__version__}) sees no CUDA device; use model.device=cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"model.device: {config.model.device!r}, but only {torch.cuda.device_count()} CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"model.device: {config.model.device!r}, but MPS is not available here")
    check_model_path(config.model)


def rollout_settings(config: TrainConfig, spec: envs.EnvSpec, temperature: float) -> RolloutSettings:
    """How the policy acts in this run's episodes at ``temperature`` (training, evaluation, greedy)."""
    r = config.rollout
    return RolloutSettings(spec, r.history_length, temperature, r.action_mode, length_normalize=r.length_normalize,
                           prompt_style=r.prompt_style)


def build_policies(config: TrainConfig, setup: EnvSetup, run_dir: Path,
                   resume: Optional[Path]) -> Tuple[Policy, Optional[Policy]]:
    """The run's policy (new, or its checkpoint's) and its KL reference (None without KL): the initial policy, kept
    in the run folder when it exists nowhere else (a tiny model), or with LoRA the policy with its adapters off."""
    model = config.policy_model
    reference_dir = run_dir / "reference"
    corpus = tokenizer_corpus(setup, seed=config.run.seed) if model.kind == "tiny" and not resume else ()
    if model.lora_rank and model.kind == "tiny":  # LoRA trains on a base that exists only in this run: keep it
        base = run_dir / "base"
        if not resume:
            Policy.from_config(model.model_copy(update={"lora_rank": 0}), corpus).save(base)
        model = model.model_copy(update={"kind": "hf", "path": str(base)})
    if resume:
        policy = Policy.from_config(saved_model_config(model, resume / "model"))
    else:
        policy = Policy.from_config(model, corpus)
    if model.lora_rank:  # the KL reference is the same model with its adapters off: no copy
        return policy, (AdaptersOff(policy) if config.optim.kl_coef > 0 else None)
    reference = None
    if config.optim.kl_coef > 0:  # the KL reference is the initial policy
        if not resume:
            reference = Policy(copy.deepcopy(policy.model), policy.tokenizer, model, policy.compute_dtype)
            if model.kind == "tiny":  # its initial weights exist only in this run: keep them
                policy.save(reference_dir)
        else:
            initial = saved_model_config(model, reference_dir) if model.kind == "tiny" else model
            reference = Policy.from_config(initial)
        reference.model.eval()
        reference.model.requires_grad_(False)
    return policy, reference


def quiet_transformers() -> None:
    """Saving and loading weights draw progress bars of their own, which break the job's bar."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resume_candidates_of(resume: Optional[str]) -> List[Path]:
    """The checkpoints a resume may use, newest first ([] without ``run.resume``)."""
    if not resume:
        return []
    found = resume_candidates(Path(resume))
    if not found:
        raise FileNotFoundError(f"run.resume: no checkpoint in {resume} (expected {STATE_FILE} or checkpoints/iter_*)")
    return found


def saved_model_config(model: ModelConfig, folder: Path) -> ModelConfig:
    """The config that loads a checkpoint's model folder: the whole model, or with LoRA the adapter on its base."""
    if model.lora_rank:
        return model.model_copy(update={"adapter": str(folder)})
    return model.model_copy(update={"kind": "hf", "path": str(folder), "gguf_file": None})


__all__ = ["EnvSetup", "build_policies", "check_runtime", "evaluation_key", "prepare_env", "quiet_transformers",
           "resume_candidates_of", "rollout_settings", "run_name", "saved_model_config", "tokenizer_corpus"]

"""Prefect flows of the training job: one run (``train``) and the paper's results table (``reproduce``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from prefect import flow

from proxmo.train.config import load_config
from proxmo.train.job import run_name
from tasks.training import publish_results, results_row, train_job

ROOT = Path(__file__).resolve().parents[1]


def _preset(path: str) -> str:
    """A preset path as given, or relative to the project (``configs/webshop_demo.yaml`` works from anywhere)."""
    candidate = Path(path)
    if not candidate.is_file() and (ROOT / path).is_file():
        return str(ROOT / path)
    return path


def artifact_key(text: str) -> str:
    """A Prefect artifact key: lower-case letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


@flow(name="train", log_prints=True)
def train_flow(
    preset: str = "configs/webshop_demo.yaml",
    overrides: Optional[List[str]] = None,
    launcher: Literal["local", "ray"] = "local",
    num_gpus: float = 0.0,
    ray_address: Optional[str] = None,
) -> Dict[str, Any]:
    """Train one policy from a preset plus dotted overrides; publishes its final evaluation as a table."""
    config = load_config(_preset(preset), overrides or [])
    data = config.to_dict()
    data["run"]["name"] = run_name(config)  # fixed here so the artifact key and the run folder agree
    summary = train_job(data, launcher, num_gpus, ray_address)
    row = results_row([summary])
    publish_results([row], key=f"train-{artifact_key(summary['run_name'])}", title=f"run {summary['run_name']}")
    print(f"run {summary['run_name']}: {summary['final_eval'].get('val/success')} success -> {summary['run_dir']}")
    return summary


@flow(name="reproduce", log_prints=True)
def reproduce_flow(
    alfworld_preset: Optional[str] = "configs/alfworld_demo.yaml",
    webshop_preset: Optional[str] = "configs/webshop_demo.yaml",
    estimators: Optional[List[str]] = None,
    seeds: Optional[List[int]] = None,
    overrides: Optional[List[str]] = None,
    alfworld_overrides: Optional[List[str]] = None,
    webshop_overrides: Optional[List[str]] = None,
    output_dir: str = "runs/reproduce",
    launcher: Literal["local", "ray"] = "local",
    num_gpus: float = 0.0,
    ray_address: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Train every estimator on each environment and seed; publish the paper-style table ``reproduce-table``.

    Rows are methods; columns the ALFWorld success rate per category and overall, and the WebShop
    score and success (percent), averaged over seeds. Leave a preset empty to skip its environment.
    ``overrides`` go to every job, ``alfworld_overrides`` / ``webshop_overrides`` only to that
    environment's. Every job's config is checked before the first one starts.
    """
    estimators = estimators or ["grpo", "gigpo", "proxmo"]
    seeds = seeds if seeds is not None else [0]
    presets = {"alfworld": (alfworld_preset, alfworld_overrides), "webshop": (webshop_preset, webshop_overrides)}
    jobs = []
    for estimator in estimators:
        for env, (preset, env_overrides) in presets.items():
            if not preset:
                continue
            for seed in seeds:
                config = load_config(_preset(preset), [
                    *(overrides or []), *(env_overrides or []), f"advantage.estimator={estimator}",
                    f"run.seed={seed}", f"run.output_dir={output_dir}", f"run.name={env}__{estimator}__s{seed}",
                ])
                jobs.append((estimator, config.to_dict()))
    summaries: Dict[str, List[Dict[str, Any]]] = {name: [] for name in estimators}
    for estimator, data in jobs:
        summaries[estimator].append(train_job(data, launcher, num_gpus, ray_address))
    rows = [results_row(summaries[name]) for name in estimators]
    publish_results(rows, key="reproduce-table", title="ALFWorld success (%) and WebShop score / success (%)")
    return rows

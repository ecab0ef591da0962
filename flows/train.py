"""Prefect flows of the training job: one run (``train``) and the paper's results table (``reproduce``)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from prefect import flow
from prefect.runtime import flow_run

from proxmo.results import contract
from proxmo.train.config import load_config
from proxmo.train.setup import run_name
from tasks.publish import parent_run, publish_results, results_row
from tasks.training import run_jobs, train_job

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
    row = results_row([summary], [config.env.name])
    publish_results([row], key=f"train-{artifact_key(summary['run_name'])}", title=f"run {summary['run_name']}")
    print(f"run {summary['run_name']}: {summary['final_eval'].get(contract.SUCCESS)} success -> {summary['run_dir']}")
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
    num_cpus: float = 1.0,
    retries: int = 1,
    name: str = "reproduce",
    experiment: str = "proxmo-reproduce",
    tracking_uri: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Train every estimator on each environment and seed; publish the paper-style table ``reproduce-table``.

    Rows are methods; columns the ALFWorld success rate per category and overall, and the WebShop
    score and success (percent), each the mean over seeds with its 95% interval. Leave a preset empty to
    skip its environment. ``overrides`` go to every job, ``alfworld_overrides`` / ``webshop_overrides`` only
    to that environment's. Every job's config is checked before the first one starts. Jobs run side by side
    with ``launcher=ray``; each is an MLflow run under the parent run ``name``, which holds the table
    (markdown, and every seed's value as CSV). Running the flow again skips finished jobs and resumes the rest.
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
                    f"run.seed={seed}", f"run.output_dir={output_dir}",
                    f"run.name={contract.reproduction_run_name(env, estimator, seed)}",
                ])
                jobs.append((estimator, config.to_dict()))
    flow_run_id = str(flow_run.get_id() or "")
    parent = parent_run(experiment, name, contract.ROLE_REPRODUCTION, tracking_uri, {contract.TAG_FLOW_RUN: flow_run_id})
    with parent:  # ends FINISHED, FAILED, or KILLED when interrupted
        for _, data in jobs:
            data["run"].update(tracker="both", experiment=experiment, tracking_uri=tracking_uri,
                               parent_run_id=parent.run_id)
            data["run"]["tags"] = {**data["run"]["tags"], contract.TAG_REPRODUCTION: name, contract.TAG_FLOW_RUN: flow_run_id}
        done = run_jobs([data for _, data in jobs], launcher, retries, num_gpus, ray_address, num_cpus)
        summaries: Dict[str, List[Dict[str, Any]]] = {estimator: [] for estimator in estimators}
        for (estimator, _), summary in zip(jobs, done):
            summaries[estimator].append(summary)
        rows = [results_row(summaries[estimator], list(presets)) for estimator in estimators]  # the paper's columns
        title = "ALFWorld success (%) and WebShop score / success (%), mean [95% CI] over seeds"
        markdown = publish_results(rows, key="reproduce-table", title=title)
        _log_results(parent, markdown, done)
        return rows


def _log_results(parent, markdown: str, summaries: List[Dict[str, Any]]) -> None:
    """The table (markdown) and every job's final numbers (CSV, one line per run) on the parent run."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "reproduce.md").write_text(markdown)
        with open(Path(folder) / "reproduce.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["env", "estimator", "seed", "metric", "value"])
            for summary in summaries:
                for key, value in sorted(summary["final_eval"].items()):
                    if key.startswith(contract.VAL + "/") and not key.endswith(("_se", "episodes", "aborted")):
                        writer.writerow([summary["env"], summary["estimator"], summary["seed"], key, value])
        parent.log_artifact(Path(folder) / "reproduce.md")
        parent.log_artifact(Path(folder) / "reproduce.csv")

"""Prefect flows of the training job: one run (``train``) and the paper's results table (``reproduce``)."""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from prefect import flow
from prefect.runtime import flow_run

from flows.specs import ReproduceSpec, TrainSpec
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
def train_flow(spec: TrainSpec = TrainSpec()) -> Dict[str, Any]:
    """Train one policy from a preset plus dotted overrides; publishes its final evaluation as a table."""
    config = load_config(_preset(spec.preset), spec.overrides)
    config = config.with_updates(run={"name": run_name(config)})  # fixed here: the artifact key and the folder agree
    summary = train_job.with_options(retries=spec.retries)(config, spec.launch())
    row = results_row([summary], [config.env.name])
    publish_results([row], key=f"train-{artifact_key(summary['run_name'])}", title=f"run {summary['run_name']}")
    print(f"run {summary['run_name']}: {summary['final_eval'].get(contract.SUCCESS)} success -> {summary['run_dir']}")
    return summary


@flow(name="reproduce", log_prints=True)
def reproduce_flow(spec: ReproduceSpec = ReproduceSpec()) -> List[Dict[str, Any]]:
    """Train every estimator on each environment and seed; publish the paper-style table ``reproduce-table``.

    Rows are methods; columns each environment's results columns (ALFWorld: success per category and overall;
    WebShop: score and success), each the mean over seeds with its 95% interval. An environment whose preset is
    null is skipped (its columns stay, empty). ``overrides`` go to every job, ``env_overrides[env]`` only to that
    environment's. Every job's config is checked before the first one starts. Jobs run side by side with
    ``launcher=ray``; each is an MLflow run under the parent run ``name``, which holds the table (markdown, and
    every seed's value as CSV). Running the flow again skips finished jobs and resumes the rest.
    """
    jobs = []
    for estimator in spec.estimators:
        for env, preset in spec.presets.items():
            if not preset:
                continue
            for seed in spec.seeds:
                config = load_config(_preset(preset), [
                    *spec.overrides, *spec.env_overrides.get(env, []), f"advantage.estimator={estimator}",
                    f"run.seed={seed}", f"run.output_dir={spec.output_dir}",
                    f"run.name={contract.reproduction_run_name(env, estimator, seed)}",
                ])
                jobs.append((estimator, config))
    flow_run_id = str(flow_run.get_id() or "")
    parent = parent_run(spec.experiment, spec.name, contract.ROLE_REPRODUCTION, spec.tracking_uri,
                        {contract.TAG_FLOW_RUN: flow_run_id})
    with parent:  # ends FINISHED, FAILED, or KILLED when interrupted
        configs = [config.with_updates(run={
            "tracker": "both", "experiment": spec.experiment, "tracking_uri": spec.tracking_uri,
            "parent_run_id": parent.run_id,
            "tags": {**config.run.tags, contract.TAG_REPRODUCTION: spec.name, contract.TAG_FLOW_RUN: flow_run_id}})
            for _, config in jobs]
        done = run_jobs(configs, spec)
        summaries: Dict[str, List[Dict[str, Any]]] = {estimator: [] for estimator in spec.estimators}
        for (estimator, _), summary in zip(jobs, done):
            summaries[estimator].append(summary)
        rows = [results_row(summaries[estimator], list(spec.presets)) for estimator in spec.estimators]
        title = "Success (%) and scores per environment, mean [95% CI] over seeds"
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


__all__ = ["artifact_key", "reproduce_flow", "train_flow"]

"""The ablation flow: named variants (each a list of overrides) x seeds, run side by side, compared with honest statistics."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.train import _preset, artifact_key
from proxmo.results import RunSummary, comparison_table, compare_variants, contract
from proxmo.train.config import check_path_component, load_config
from tasks.publish import parent_run, publish_results
from tasks.training import run_jobs

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


def variant_configs(preset: str, variants: Dict[str, List[str]], seeds: List[int], overrides: List[str],
                    output_dir: str, name: str) -> List[Dict[str, Any]]:
    """Every (variant, seed) job's resolved config, validated before anything runs (errors name the variant)."""
    if not variants:
        raise ValueError("variants: give at least one variant")
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    configs = []
    for variant, extra in variants.items():
        for seed in seeds:
            try:
                config = load_config(_preset(preset), [*overrides, *extra, f"run.seed={seed}",
                                                       f"run.output_dir={output_dir}/{name}",
                                                       f"run.name={contract.variant_run_name(variant, seed)}"])
            except ValueError as error:
                raise ValueError(f"variant {variant!r}: {error}") from None
            data = config.to_dict()
            data["run"]["tags"] = {**data["run"]["tags"], contract.TAG_VARIANT: variant, contract.TAG_ABLATION: name}
            configs.append(data)
    return configs


@flow(name="ablate", log_prints=True)
def ablate_flow(
    preset: str = "configs/alfworld_demo.yaml",
    variants: Optional[Dict[str, List[str]]] = None,
    seeds: Optional[List[int]] = None,
    overrides: Optional[List[str]] = None,
    name: str = "ablation",
    output_dir: str = "runs/ablations",
    baseline: Optional[str] = None,
    launcher: Literal["local", "ray"] = "local",
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    ray_address: Optional[str] = None,
    retries: int = 1,
    experiment: str = "proxmo-ablations",
    tracking_uri: Optional[str] = None,
) -> Dict[str, Any]:
    """Run every variant on every seed and publish the comparison table (``ablation-<name>``).

    Jobs run as Prefect tasks (``retries`` each; a retried job resumes from its checkpoint); with
    ``launcher=ray`` each is a Ray task asking for ``num_cpus``/``num_gpus``, so they run side by side
    (locally Ray starts with this machine's cores; on a cluster give ``ray_address``). Every job is an
    MLflow run nested under the ablation's parent run, which holds the table (CSV and markdown).
    Running the flow again resumes unfinished jobs and skips finished ones.
    """
    logger = get_run_logger()
    variants = variants or dict(PAPER_VARIANTS)
    check_path_component(name, "name")  # the ablation's folder
    for variant in variants:  # each becomes a run name
        check_path_component(variant, "variant")
    seeds = seeds if seeds is not None else [0, 1, 2]
    if baseline is None:
        baseline = contract.default_baseline(list(variants))
    elif baseline not in variants:
        raise ValueError(f"baseline: {baseline!r} is not one of the variants {list(variants)}")
    configs = variant_configs(preset, variants, seeds, overrides or [], output_dir, name)
    flow_run_id = str(flow_run.get_id() or "")
    parent = parent_run(experiment, name, contract.ROLE_ABLATION, tracking_uri,
                        {contract.TAG_FLOW_RUN: flow_run_id, contract.TAG_BASELINE: baseline})
    with parent:  # ends FINISHED, FAILED, or KILLED when interrupted
        for data in configs:
            data["run"].update(tracker="both", experiment=experiment, tracking_uri=tracking_uri,
                               parent_run_id=parent.run_id)
            data["run"]["tags"][contract.TAG_FLOW_RUN] = flow_run_id
        summaries = run_jobs(configs, launcher, retries, num_gpus, ray_address, num_cpus)
        runs = [RunSummary.from_summary(d["run"]["tags"][contract.TAG_VARIANT], d["run"]["seed"], s["summary"])
                for d, s in zip(configs, summaries)]
        rows = compare_variants(runs, baseline=baseline)
        table = comparison_table(rows, baseline=baseline)
        logger.info("ablation %s:\n%s", name, table)
        _log_table(parent, rows, table)
        _log_curves(parent, configs, summaries, name)
        publish_results([_row(r) for r in rows], key=f"ablation-{artifact_key(name)}",
                        title=f"ablation {name}: validation success (%), mean [95% CI] over seeds")
        return {"parent_run_id": parent.run_id, "table": table, "runs": [s["run_dir"] for s in summaries],
                "pids": [s["pid"] for s in summaries]}


def _row(row) -> Dict[str, Any]:
    return {"variant": row.variant, "seeds": len(row.seeds), "final": row.final.format(),
            "difference": row.difference.format() if row.difference is not None else None,
            "best (optimistic)": row.best.format(),
            "final per seed": ", ".join(f"{100 * v:.1f}" for v in row.final_by_seed.values())}


def _log_table(parent, rows, table: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        markdown = Path(folder) / "ablation.md"
        markdown.write_text(table + "\n")
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["variant", "seed", "final_success"])
        for row in rows:
            for seed, value in row.final_by_seed.items():
                writer.writerow([row.variant, seed, value])
        (Path(folder) / "ablation.csv").write_text(buffer.getvalue())
        parent.log_artifact(markdown)
        parent.log_artifact(Path(folder) / "ablation.csv")


def _log_curves(parent, configs, summaries, name: str) -> None:
    """Every variant's validation success over iterations, mean over seeds with its 95% band, on the parent."""
    from proxmo.results.curves import evaluation_curves, plot_variants
    from proxmo.train.tracking import read_metrics

    curves: Dict[str, List[Any]] = {}
    for data, summary in zip(configs, summaries):
        curve = evaluation_curves(read_metrics(summary["run_dir"])).get(contract.SUCCESS)
        if curve:
            curves.setdefault(data["run"]["tags"][contract.TAG_VARIANT], []).append(curve)
    if curves:
        with tempfile.TemporaryDirectory() as folder:
            parent.log_artifact(plot_variants(curves, Path(folder) / "curves.png",
                                              title=f"ablation {name}: mean over seeds, 95% CI band"))


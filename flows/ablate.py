"""The ablation flow: named variants (each a list of overrides) x seeds, run side by side, compared with honest statistics."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.specs import AblationSpec
from flows.train import _preset, artifact_key
from proxmo.results import RunSummary, comparison_table, compare_variants, contract
from proxmo.train.config import TrainConfig, load_config
from tasks.publish import parent_run, publish_results
from tasks.training import run_jobs


def variant_configs(spec: AblationSpec) -> List[TrainConfig]:
    """Every (variant, seed) job's config, validated before anything runs (errors name the variant)."""
    configs = []
    for variant, extra in spec.variants.items():
        for seed in spec.seeds:
            try:
                config = load_config(_preset(spec.preset), [
                    *spec.overrides, *extra, f"run.seed={seed}", f"run.output_dir={spec.output_dir}/{spec.name}",
                    f"run.name={contract.variant_run_name(variant, seed)}"])
            except ValueError as error:
                raise ValueError(f"variant {variant!r}: {error}") from None
            configs.append(config.with_updates(run={"tags": {**config.run.tags, contract.TAG_VARIANT: variant,
                                                            contract.TAG_ABLATION: spec.name}}))
    return configs


@flow(name="ablate", log_prints=True)
def ablate_flow(spec: AblationSpec = AblationSpec()) -> Dict[str, Any]:
    """Run every variant on every seed and publish the comparison table (``ablation-<name>``).

    Jobs run as Prefect tasks (``retries`` each; a retried job resumes from its checkpoint); with
    ``launcher=ray`` each is a Ray task asking for ``num_cpus``/``num_gpus``, so they run side by side
    (locally Ray starts with this machine's cores; on a cluster give ``ray_address``). Every job is an
    MLflow run nested under the ablation's parent run, which holds the table (CSV and markdown).
    Running the flow again resumes unfinished jobs and skips finished ones.
    """
    logger = get_run_logger()
    baseline = spec.baseline or contract.default_baseline(list(spec.variants))
    configs = variant_configs(spec)
    flow_run_id = str(flow_run.get_id() or "")
    parent = parent_run(spec.experiment, spec.name, contract.ROLE_ABLATION, spec.tracking_uri,
                        {contract.TAG_FLOW_RUN: flow_run_id, contract.TAG_BASELINE: baseline})
    with parent:  # ends FINISHED, FAILED, or KILLED when interrupted
        configs = [config.with_updates(run={
            "tracker": "both", "experiment": spec.experiment, "tracking_uri": spec.tracking_uri,
            "parent_run_id": parent.run_id, "tags": {**config.run.tags, contract.TAG_FLOW_RUN: flow_run_id}})
            for config in configs]
        summaries = run_jobs(configs, spec)
        runs = [RunSummary.from_summary(c.run.tags[contract.TAG_VARIANT], c.run.seed, s["summary"])
                for c, s in zip(configs, summaries)]
        rows = compare_variants(runs, baseline=baseline)
        table = comparison_table(rows, baseline=baseline)
        logger.info("ablation %s:\n%s", spec.name, table)
        _log_table(parent, rows, table)
        _log_curves(parent, configs, summaries, spec.name)
        publish_results([_row(r) for r in rows], key=f"ablation-{artifact_key(spec.name)}",
                        title=f"ablation {spec.name}: validation success (%), mean [95% CI] over seeds")
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
    for config, summary in zip(configs, summaries):
        curve = evaluation_curves(read_metrics(summary["run_dir"])).get(contract.SUCCESS)
        if curve:
            curves.setdefault(config.run.tags[contract.TAG_VARIANT], []).append(curve)
    if curves:
        with tempfile.TemporaryDirectory() as folder:
            parent.log_artifact(plot_variants(curves, Path(folder) / "curves.png",
                                              title=f"ablation {name}: mean over seeds, 95% CI band"))


__all__ = ["ablate_flow", "variant_configs"]

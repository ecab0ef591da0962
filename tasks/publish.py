"""Where a flow's results go: the parent MLflow run its jobs nest under, the paper's results table (a row per
method, the columns of each environment's ``EnvSpec``), and Prefect artifacts."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from proxmo.results import contract
from proxmo.results.contract import VAL, quantity_key, success_key


def parent_run(experiment: str, name: str, role: str, tracking_uri: Optional[str], tags: Mapping[str, str]):
    """The MLflow run that a flow's jobs nest under (an ablation, a study): the earlier one of the same name
    and role when the flow is run again, else a new one. Returns an open :class:`MlflowTracker`."""
    import mlflow

    from proxmo.train.tracking import MlflowTracker, check_tracking_server, check_tracking_uri

    check_tracking_uri(tracking_uri)
    check_tracking_server(tracking_uri)  # a server that is down fails the flow in seconds, before any job
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    record = client.get_experiment_by_name(experiment)
    if record is not None:  # roles are fixed words; a name may hold any character, so it is compared here
        found = [run for run in client.search_runs([record.experiment_id], f"tags.{contract.TAG_ROLE} = '{role}'")
                 if run.data.tags.get(contract.TAG_GROUP) == name]
        if found:
            return MlflowTracker(experiment, tracking_uri=tracking_uri, run_id=found[0].info.run_id, tags=tags)
    return MlflowTracker(experiment, run_name=name, tracking_uri=tracking_uri,
                         tags={**tags, contract.TAG_GROUP: name, contract.TAG_ROLE: role})


def results_row(summaries: Sequence[Mapping[str, Any]], env_names: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """One line of the paper's results table from runs of one method over its seeds (job summaries).

    The columns are the ``result_columns`` of each environment's :class:`~envs.EnvSpec`, in the order of
    ``env_names`` (default: the environments of ``summaries`` in order of appearance): for ALFWorld the
    success per category and ``All``, for WebShop ``WS score`` and ``WS succ``. A cell is the mean over seeds
    with its 95% Student-t interval (``47.2 [39.2, 55.2]``; the mean alone for one seed); a column no run
    measured stays empty.
    """
    import envs
    from proxmo.results import t_interval

    names = list(env_names) if env_names is not None else list(dict.fromkeys(s["env"] for s in summaries))
    columns = {name: envs.spec(name).result_columns for name in names}
    values: Dict[str, List[float]] = {}
    for summary in summaries:
        final = summary.get("final_eval", {})
        for column in columns.get(summary["env"], ()):
            key = success_key(VAL, column.category) if column.quantity == "success" else quantity_key(VAL, column.quantity)
            if key in final:
                values.setdefault(column.label, []).append(column.scale * final[key])
    row: Dict[str, Any] = {"method": summaries[0].get("estimator", "?") if summaries else "?"}
    for column in (c for name in names for c in columns[name]):
        found = values.get(column.label)
        row[column.label] = t_interval(found).format(scale=1.0) if found else None
    row["seeds"] = len({s.get("seed") for s in summaries})
    return row


@task(name="publish-results")
def publish_results(rows: List[Dict[str, Any]], key: str, title: str) -> str:
    """Publish ``rows`` as a Prefect table artifact ``key`` and a markdown artifact ``key-md``; answers the markdown."""
    from proxmo.results.table import markdown_table

    markdown = markdown_table(rows, title)
    create_table_artifact(key=key, table=rows, description=title)
    create_markdown_artifact(key=f"{key}-md", markdown=markdown, description=title)
    return markdown


__all__ = ["parent_run", "publish_results", "results_row"]

"""The flows' commands, mounted on `proxmo`: ``proxmo ablate`` and ``proxmo sweep``. Each builds its flow's spec from
the options given (the rest keep the spec's defaults, which the help shows), checks the stores, and runs the flow."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Dict, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from flows.specs import AblationSpec, SweepSpec
from proxmo.terminal import console, field_help, refuse
from proxmo.urls import OPTUNA_STORAGE_ENV


def _variants(items: List[str]) -> Dict[str, List[str]]:
    grid: Dict[str, List[str]] = {}
    for item in items:
        label, sep, text = item.partition("=")
        if not sep or not label.strip():
            raise typer.BadParameter(f"expected NAME=OVERRIDES, got {item!r}", param_hint="--variant")
        if label.strip() in grid:
            raise typer.BadParameter(f"variant {label.strip()!r} is given twice; give each variant its own name",
                                     param_hint="--variant")
        grid[label.strip()] = shlex.split(text)
    return grid


def _check_stores(tracking_uri: Optional[str], storage: Optional[str] = None) -> None:
    """A dead MLflow server or an Optuna storage that cannot be opened ends the command in one line, exit 2,
    before the flow starts."""
    from proxmo.train.tracking import check_tracking_server

    try:
        check_tracking_server(tracking_uri)
        if storage is not None:
            from tasks.study import check_storage

            check_storage(storage)
    except (ConnectionError, ValueError) as error:
        refuse(error)


def _params(items: List[str]) -> tuple[List[str], Dict[str, List[float]], List[str]]:
    """``--param NAME[=LOW:HIGH[:log]]`` -> (names, ranges, names on a log scale)."""
    names, ranges, log_scale = [], {}, []
    for item in items:
        name, _, bounds = item.partition("=")
        name = name.strip()
        names.append(name)
        if not bounds:
            continue
        parts = bounds.split(":")
        if len(parts) == 3 and parts[2] == "log":
            log_scale.append(name)
            parts = parts[:2]
        try:
            if len(parts) != 2:
                raise ValueError
            ranges[name] = [float(parts[0]), float(parts[1])]
        except ValueError:
            raise typer.BadParameter(f"expected NAME=LOW:HIGH or NAME=LOW:HIGH:log, got {item!r}",
                                     param_hint="--param") from None
    return names, ranges, log_scale


def ablate(
    preset: Optional[Path] = typer.Argument(None, help=field_help(AblationSpec, "preset"), show_default=False),
    overrides: Optional[List[str]] = typer.Argument(None, help=field_help(AblationSpec, "overrides")),
    variant: List[str] = typer.Option([], "--variant", help="NAME=OVERRIDES, e.g. 'cold=advantage.temperature=0.05 "
                                      "advantage.estimator=proxmo' (repeat; default: the grid's variants)."),
    grid: Optional[str] = typer.Option(None, help=field_help(AblationSpec, "grid"), show_default=False),
    seeds: List[int] = typer.Option([], "--seed", help=field_help(AblationSpec, "seeds") + " (repeat the option)"),
    name: Optional[str] = typer.Option(None, help=field_help(AblationSpec, "name"), show_default=False),
    baseline: Optional[str] = typer.Option(None, help=field_help(AblationSpec, "baseline")),
    launcher: Optional[str] = typer.Option(None, help=field_help(AblationSpec, "launcher"), show_default=False),
    output_dir: Optional[str] = typer.Option(None, help=field_help(AblationSpec, "output_dir"), show_default=False),
    retries: Optional[int] = typer.Option(None, help=field_help(AblationSpec, "retries"), show_default=False),
    experiment: Optional[str] = typer.Option(None, help=field_help(AblationSpec, "experiment"), show_default=False),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help=field_help(AblationSpec, "tracking_uri")),
) -> None:
    """Run an ablation grid (variants x seeds) through the Prefect flow and print the comparison table."""
    try:
        spec = AblationSpec.build(preset=str(preset) if preset else None, overrides=overrides or None,
                                  variants=_variants(variant) or None, grid=grid, seeds=seeds or None, name=name,
                                  baseline=baseline, launcher=launcher, output_dir=output_dir, retries=retries,
                                  experiment=experiment, tracking_uri=tracking_uri)
    except ValueError as error:
        refuse(error)
    _check_stores(spec.tracking_uri)
    from flows.ablate import ablate_flow

    try:
        result = ablate_flow(spec)
    except ValueError as error:
        refuse(error)
    console.print(result["table"], highlight=False, soft_wrap=True)
    console.print(f"parent MLflow run: {result['parent_run_id']}")


def sweep(
    preset: Optional[Path] = typer.Argument(None, help=field_help(SweepSpec, "preset"), show_default=False),
    overrides: Optional[List[str]] = typer.Argument(None, help=field_help(SweepSpec, "overrides")),
    name: Optional[str] = typer.Option(None, help=field_help(SweepSpec, "name"), show_default=False),
    trials: Optional[int] = typer.Option(None, help=field_help(SweepSpec, "n_trials"), show_default=False),
    concurrency: Optional[int] = typer.Option(None, help=field_help(SweepSpec, "concurrency"), show_default=False),
    param: List[str] = typer.Option([], "--param", help="NAME[=LOW:HIGH[:log]]: " + field_help(SweepSpec, "params")
                                    + " (repeat the option)"),
    objective: Optional[str] = typer.Option(None, help=field_help(SweepSpec, "objective"), show_default=False),
    pruner: Optional[str] = typer.Option(None, help=field_help(SweepSpec, "pruner"), show_default=False),
    storage: Optional[str] = typer.Option(None, envvar=OPTUNA_STORAGE_ENV, show_envvar=False,
                                          help=field_help(SweepSpec, "storage") + " A URL given here reaches the flow "
                                          "through that variable."),
    launcher: Optional[str] = typer.Option(None, help=field_help(SweepSpec, "launcher"), show_default=False),
    output_dir: Optional[str] = typer.Option(None, help=field_help(SweepSpec, "output_dir"), show_default=False),
    seeds: List[int] = typer.Option([], "--seed", help=field_help(SweepSpec, "seeds") + " (repeat the option)"),
    experiment: Optional[str] = typer.Option(None, help=field_help(SweepSpec, "experiment"), show_default=False),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help=field_help(SweepSpec, "tracking_uri")),
) -> None:
    """Run an Optuna study (TPE) over ProxMO's settings through the Prefect flow and print its trials."""
    try:  # the storage goes to the flow through the environment: Prefect keeps a flow's parameters in plain text
        params, ranges, log_scale = _params(param)
        spec = SweepSpec.build(preset=str(preset) if preset else None, overrides=overrides or None, name=name,
                               n_trials=trials, concurrency=concurrency, params=params or None, ranges=ranges or None,
                               log_scale=log_scale or None, objective=objective,
                               pruner=pruner, launcher=launcher, output_dir=output_dir, seeds=seeds or None,
                               experiment=experiment, tracking_uri=tracking_uri)
    except ValueError as error:
        refuse(error)
    _check_stores(spec.tracking_uri, storage)
    from flows.sweep import sweep_flow

    previous = os.environ.get(OPTUNA_STORAGE_ENV)
    if storage:
        os.environ[OPTUNA_STORAGE_ENV] = storage
    try:
        result = sweep_flow(spec)
    except ValueError as error:
        refuse(error)
    finally:
        if previous is None:
            os.environ.pop(OPTUNA_STORAGE_ENV, None)
        else:
            os.environ[OPTUNA_STORAGE_ENV] = previous
    rows = result["trials"]
    table = Table(*(rows[0].keys() if rows else ["trial"]), title=f"study {escape(spec.name)} ({result['storage']})")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
    console.print(f"best: {result['best_params']} -> {result['best_value']}; parent MLflow run: {result['parent_run_id']}",
                  soft_wrap=True)


__all__ = ["ablate", "sweep"]

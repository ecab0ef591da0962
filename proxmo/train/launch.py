"""One code path from a command line to a training job, shared by ``proxmo train`` and ``python -m proxmo.train``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from proxmo.results.contract import EPISODES, VAL
from proxmo.train.config import ConfigError, config_lines, load_config
from proxmo.train.report import learning_gain, success_table
from proxmo.train.runfolder import RunFolderBusy
from proxmo.urls import DASHBOARD_PORT, MLFLOW_PORT, OPTUNA_PORT, local_url

# Errors a user can fix from the message alone (a full disk and a busy run folder included); anything else is a
# bug and keeps its traceback.
USER_ERRORS = (ConfigError, ValueError, KeyError, ImportError, OSError, RunFolderBusy)


def launch(config: Optional[str], overrides: Sequence[str] = (), *, quiet: bool = False, show_config: bool = False,
           debug: bool = False, console: Optional[Console] = None) -> int:
    """Load the config (a preset path and dotted overrides), train, print the report; returns an exit code.

    A first argument that contains ``=`` is an override, not a preset. Bad input prints one line naming
    what is wrong (exit 2 for the config, 1 for the run); ``debug`` re-raises with the traceback.
    """
    console = console or Console()
    overrides = list(overrides)
    if config is not None and "=" in str(config):
        overrides.insert(0, str(config))
        config = None
    try:
        resolved = load_config(config, overrides)
    except ConfigError as error:
        if debug:
            raise
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        return 2
    if show_config:
        for line in config_lines(resolved):
            console.print(escape(line), highlight=False)
        return 0
    from proxmo.train.job import train
    from proxmo.train.signals import Terminated

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs every index build
    try:
        result = train(resolved, progress=not quiet)
    except Terminated as stop:
        folder = escape(str(stop.run_dir)) if stop.run_dir else "<its run folder>"
        console.print(f"[red]terminated[/red] (SIGTERM): the run ended KILLED; continue it with run.resume={folder}",
                      soft_wrap=True)
        return int(stop.code)
    except USER_ERRORS as error:
        if debug:
            raise
        console.print(f"[red]error:[/red] {escape(str(error))}  (--debug shows the traceback)", soft_wrap=True)
        return 1
    import envs

    print_report(console, result, envs.spec(resolved.env.name).categories)
    return 0


def print_report(console: Console, result, categories: Sequence[str] = ()) -> None:
    """The success table (random agent, first and last evaluation; ``categories`` in this order), the gain, and
    where the run is."""
    columns, rows = success_table(result.evaluations, result.baseline, categories)
    if rows:
        table = Table("validation success (%)", *columns, title=f"run {escape(result.run_dir.name)}")
        for label, cells in rows:
            table.add_row(label, *cells)
        console.print(table)
        episodes = int(result.evaluations[-1].get(EPISODES, 0))
        gain = learning_gain(result.evaluations)
        line = f"{episodes} evaluation episodes; ± is one standard error"
        if gain is not None:
            line += f"; sampled success gained {gain['gain']:+.1f} ± {gain['se']:.1f} points"
        console.print(line)
    final = result.evaluations[-1] if result.evaluations else {}
    extra = {k: v for k, v in final.items() if k.startswith(VAL + "/") and "/success" not in k and not k.endswith("episodes")}
    if extra:
        table = Table("metric", "value")
        for key in sorted(extra):
            table.add_row(escape(key), f"{extra[key]:.4f}")
        console.print(table)
    console.print(f"run folder: {escape(str(Path(result.run_dir)))}")
    link = Path(result.run_dir) / "mlflow.json"
    if link.is_file():
        import json

        mirrored = json.loads(link.read_text())
        console.print(f"MLflow run {mirrored['run_id']} in {escape(mirrored['tracking_uri'])}; open the UIs with "
                      f"`proxmo ui` (MLflow {local_url(MLFLOW_PORT)}, dashboard {local_url(DASHBOARD_PORT)}, "
                      f"optuna-dashboard {local_url(OPTUNA_PORT)})", soft_wrap=True)


__all__ = ["USER_ERRORS", "launch", "print_report"]

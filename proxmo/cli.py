"""The `proxmo` command line: the library's own commands (estimators, advantages, train, sync, curves, version), and
those other packages of the distribution mount on it through the ``proxmo.commands`` entry points (the
environments' ``games`` and ``play``, the flows' ``ablate`` and ``sweep``, the dashboards' ``dashboard`` and
``ui``). A command whose package cannot be imported here (its extra is not installed) is still listed, and says
which extra to install."""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from proxmo.results.contract import METRICS_FILE, SUCCESS, parse_variant_run
from proxmo.telemetry import keep_local
from proxmo.terminal import console, parse_pairs, refuse

keep_local()  # before any command imports MLflow, Prefect or Ray

COMMANDS_GROUP = "proxmo.commands"
"""The entry-point group through which a package adds commands: a function (a command) or a Typer (a group)."""

app = typer.Typer(help="ProxMO: group-based RL for multi-turn LLM agents.", no_args_is_help=True, add_completion=False)


def _read_records(path: Path) -> list:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise typer.BadParameter(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})",
                                 param_hint="INPUT") from None
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as error:
            raise typer.BadParameter(f"{path}:{error.lineno}:{error.colno}: not a valid JSON list ({error.msg})",
                                     param_hint="INPUT") from None
        if not all(isinstance(record, dict) for record in records):
            raise typer.BadParameter(f"{path}: the JSON list must hold one object per step", param_hint="INPUT")
        return records
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise typer.BadParameter(f"{path}:{number}: not valid JSON ({error.msg})", param_hint="INPUT") from error
    return records


@app.command()
def estimators(
    name: Optional[str] = typer.Argument(None, help="An estimator: list its options with types, ranges and help."),
) -> None:
    """List the registered advantage estimators and their options (set them as advantage.<option>=value)."""
    from proxmo.advantage import ESTIMATORS
    from proxmo.advantage.options import option_table

    if name is None:
        table = Table("estimator", "options (defaults)", "description")
        for key, estimator in ESTIMATORS.items():
            options = ", ".join(f"{option}={row['default']}" for option, row in option_table(estimator.options).items())
            table.add_row(key, options or "-", estimator.description)
        console.print(table)
        console.print("Shared by all: preset (paper | official), gamma, invalid_penalty, epsilon.")
        return
    if name not in ESTIMATORS:
        refuse(f"estimator: unknown estimator {name!r}; registered: {', '.join(ESTIMATORS)}")
    estimator = ESTIMATORS[name]
    console.print(f"{name}: {estimator.description}")
    table = Table("option", "type", "default", "range", "description")
    for option, row in option_table(estimator.options).items():
        bounds = " ".join(f"{key} {value}" for key, value in row["bounds"].items())
        table.add_row(option, row["type"], str(row["default"]), bounds, row["description"])
    console.print(table)


@app.command()
def advantages(
    input: Path = typer.Argument(..., exists=True, dir_okay=False, help="Step records: JSON lines or a JSON list, "
                                 "each with group, traj, t, reward, invalid, won, anchor."),
    estimator: str = typer.Option("proxmo", help="A registered estimator (proxmo estimators lists them)."),
    preset: str = typer.Option("paper", help="paper or official."),
    set_: List[str] = typer.Option([], "--set", help="A shared field or an option of the estimator, e.g. --set "
                                   "temperature=0.2 (proxmo estimators NAME lists them)."),
    out: Optional[Path] = typer.Option(None, help="Write the records with their advantages here (JSON lines)."),
) -> None:
    """Compute advantages for a file of step records, the way a trainer would call the library."""
    from pydantic import ValidationError

    from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages

    records = _read_records(input)
    try:
        config = AdvantageConfig(estimator=estimator, preset=preset, **parse_pairs(set_))
        batch = StepBatch.from_records(records)
        result = compute_advantages(batch, config)
    except (ValidationError, ValueError, TypeError, KeyError, MemoryError) as error:
        refuse(error)
    if out is not None:
        with out.open("w") as handle:
            for record, total, episode, step in zip(records, result.advantages, result.episode, result.step):
                handle.write(json.dumps({**record, "advantage": float(total), "episode_advantage": float(episode),
                                         "step_advantage": float(step)}) + "\n")
    table = Table("diagnostic", "value")
    for key, value in result.diagnostics.items():
        table.add_row(key, f"{value:.6g}")
    console.print(table)
    if out is not None:
        console.print(f"wrote {len(records)} rows to {out}")


@app.command(context_settings={"allow_extra_args": False})
def train(
    config: Optional[Path] = typer.Argument(None, help="A YAML preset, e.g. configs/alfworld_demo.yaml (default: the reference settings)."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides, e.g. optim.lr=1e-4 advantage.estimator=gigpo"),
    show_config: bool = typer.Option(False, "--show-config", help="Print the resolved config and exit."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks instead of one-line errors."),
) -> None:
    """Train a policy with group rollouts and the PPO-style update; metrics go to runs/<name>/ (and MLflow)."""
    from proxmo.train.launch import launch

    code = launch(str(config) if config is not None else None, overrides or [], quiet=quiet, show_config=show_config,
                  debug=debug, console=console)
    if code:
        raise typer.Exit(code=code)


@app.command()
def sync(
    run_dirs: List[Path] = typer.Argument(..., help="Run folders (runs/<name>) to send."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="Send there instead of the store each run "
                                               "was recorded with (or MLflow's default for runs never sent)."),
) -> None:
    """Send to MLflow what it lacks of runs recorded in their folders: a run tracked while the server was down,
    or one trained with run.tracker=jsonl. Safe to repeat."""
    from proxmo.train.tracking import sync_run

    failed = False
    for folder in run_dirs:
        try:
            sent = sync_run(folder, tracking_uri)
        except Exception as error:  # one line per run; the others still go
            console.print(f"[red]{escape(str(folder))}: {escape(str(error).splitlines()[0])}[/red]", soft_wrap=True)
            failed = True
            continue
        console.print(f"{escape(str(folder))} -> run {sent['run_id']} at {escape(sent['tracking_uri'])}: "
                      f"{sent['metric_points']} metric points, {sent['params']} params, {sent['tags']} tags, "
                      f"{sent['artifacts']} artifacts, status {sent['status'] or 'unchanged (no status yet)'}",
                      soft_wrap=True)
    if failed:
        raise typer.Exit(code=1)


@app.command()
def curves(
    folder: Path = typer.Argument(..., help="An ablation's folder (its runs are <variant>__s<seed>/) or one run's folder."),
    output: Path = typer.Option(Path("curves.png"), "--output", "-o", help="The PNG to write."),
    metric: str = typer.Option(SUCCESS, help="The evaluation metric to plot."),
) -> None:
    """Plot learning curves from run folders: one run's overall and per-category success, or every variant of an
    ablation as its mean over seeds with a 95% band."""
    from proxmo.results.curves import evaluation_curves, plot_run, plot_variants
    from proxmo.train.tracking import read_metrics

    if (folder / METRICS_FILE).is_file():
        plot_run(evaluation_curves(read_metrics(folder)), output, title=folder.name)
        console.print(f"{escape(str(output))}: {escape(folder.name)}", soft_wrap=True)
        return
    grouped = {}
    for run in sorted(p for p in folder.iterdir() if parse_variant_run(p.name) and (p / METRICS_FILE).is_file()):
        curve = evaluation_curves(read_metrics(run)).get(metric)
        if curve:
            grouped.setdefault(parse_variant_run(run.name)[0], []).append(curve)
    if not grouped:
        raise typer.BadParameter(f"no run folder with {metric!r} evaluations under {folder}", param_hint="FOLDER")
    plot_variants(grouped, output, title=f"{folder.name}: {metric}, mean over seeds, 95% CI band", ylabel=metric)
    console.print(f"{escape(str(output))}: " + ", ".join(f"{k} ({len(v)} seeds)" for k, v in grouped.items()),
                  soft_wrap=True)


@app.command()
def leaderboard(
    folder: Path = typer.Argument(..., exists=True, file_okay=False, help="An ablation's folder (runs <variant>__s<seed>/)."),
    baseline: Optional[str] = typer.Option(None, help="The variant the others are compared with (default: grpo if "
                                           "it is one, else the first)."),
) -> None:
    """Rank an ablation's variants: final success and its mean over evaluations with 95% intervals, paired
    differences to the baseline with Holm-adjusted p-values, advantage share and minutes per run."""
    from proxmo.results.leaderboard import leaderboard as rank, leaderboard_table, read_entries

    try:
        entries = read_entries(folder)
        rows = rank(entries, baseline)
    except ValueError as error:
        refuse(error)
    base = next(row.variant for row in rows if row.is_baseline)
    console.print(leaderboard_table(rows, base), highlight=False, soft_wrap=True)


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as installed

    console.print(installed("proxmo"))


ANY_ARGUMENTS = {"allow_extra_args": True, "ignore_unknown_options": True}


def _unavailable(reason: str):
    """A stand-in for a command that cannot load here: whatever it is given, it says ``reason``."""
    def command(ctx: typer.Context) -> None:
        refuse(reason)

    command.__doc__ = f"(not installed here: {reason})"
    command.context_settings = ANY_ARGUMENTS
    return command


def mount(target: typer.Typer, name: str, command: Any) -> None:
    """Add ``command`` to ``target`` as ``name``: a Typer as a group of commands, a function as one command."""
    if isinstance(command, typer.Typer):
        target.add_typer(command, name=name)
    else:
        target.command(name=name, context_settings=getattr(command, "context_settings", None))(command)


def _mount_all(target: typer.Typer) -> None:
    for entry in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            command = entry.load()
        except ImportError as error:  # its extra is missing: the command stays, and says what to install
            command = _unavailable(str(error))
        mount(target, entry.name, command)


_mount_all(app)


if __name__ == "__main__":  # pragma: no cover
    app()

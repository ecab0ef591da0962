"""The `proxmo` command line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from proxmo.telemetry import keep_local
from proxmo.results.contract import METRICS_FILE, SUCCESS, parse_variant_run
from proxmo.urls import DASHBOARD_PORT, MLFLOW_PORT, MLFLOW_UI, OPTUNA_PORT, OPTUNA_STORAGE_ENV, redact_url

keep_local()  # before any command imports MLflow, Prefect or Ray

app = typer.Typer(help="ProxMO: group-based RL for multi-turn LLM agents.", no_args_is_help=True, add_completion=False)
console = Console()


def _parse_overrides(pairs: List[str]) -> dict:
    """`key=value` pairs, read with the same grammar as the training overrides (values as YAML)."""
    from proxmo.train.config import ConfigError, parse_override

    overrides = {}
    for pair in pairs:
        try:
            key, value = parse_override(pair)
        except ConfigError as error:
            raise typer.BadParameter(str(error), param_hint="--set") from None
        overrides[key] = value
    return overrides


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
def estimators() -> None:
    """List the registered advantage estimators and their defaults."""
    from proxmo.advantage import ESTIMATORS

    table = Table("estimator", "normalization", "modulation", "step grouping", "description")
    for name, estimator in ESTIMATORS.items():
        d = estimator.defaults
        table.add_row(name, d["normalization"], str(d["modulation"]), d["step_grouping"], estimator.description)
    console.print(table)


@app.command()
def advantages(
    input: Path = typer.Argument(..., exists=True, dir_okay=False, help="Step records: JSON lines or a JSON list, "
                                 "each with group, traj, t, reward, invalid, won, anchor."),
    estimator: str = typer.Option("proxmo", help="grpo, gigpo, proxmo or another registered estimator."),
    preset: str = typer.Option("paper", help="paper or official."),
    set_: List[str] = typer.Option([], "--set", help="Any AdvantageConfig field, e.g. --set temperature=0.2"),
    out: Optional[Path] = typer.Option(None, help="Write the records with their advantages here (JSON lines)."),
) -> None:
    """Compute advantages for a file of step records, the way a trainer would call the library."""
    from pydantic import ValidationError

    from proxmo.advantage import AdvantageConfig, StepBatch, compute_advantages

    records = _read_records(input)
    try:
        config = AdvantageConfig(estimator=estimator, preset=preset, **_parse_overrides(set_))
        batch = StepBatch.from_records(records)
        result = compute_advantages(batch, config)
    except (ValidationError, ValueError, TypeError, KeyError, MemoryError) as error:
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(code=2) from None
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


games_app = typer.Typer(help="ALFWorld games: generate them in the official format.", no_args_is_help=True)
app.add_typer(games_app, name="games")


@games_app.command("generate")
def games_generate(
    out: Path = typer.Option(..., help="Root folder; games go to OUT/<split>/<task>/<trial>/."),
    split: str = typer.Option("train", help="train, valid_seen or valid_unseen (unseen uses floor plans train never uses)."),
    count: int = typer.Option(..., min=0, help="How many games."),
    seed: int = typer.Option(0, help="Games are deterministic per (seed, split, index)."),
    max_receptacles: Optional[int] = typer.Option(None, min=0, help="Cap receptacles (0: all; default: the "
                                                  "generator's); those the task needs are kept."),
    distractors: Optional[int] = typer.Option(None, min=0, help="Distractor objects per game (default: the generator's)."),
    task_types: Optional[List[str]] = typer.Option(None, "--task-type", help="Only these task types (repeat the option)."),
) -> None:
    """Generate solvable ALFWorld games (six task types in turn), each with the expert's walkthrough."""
    from collections import Counter

    from rich.progress import track

    from envs.alfworld.categories import TASK_TYPES, category_of_path
    from envs.alfworld.game import SPLITS
    from envs.alfworld.generate import Knobs, generate

    if split not in SPLITS:
        raise typer.BadParameter(f"expected one of {list(SPLITS)}, got {split!r}", param_hint="--split")
    types = tuple(task_types) if task_types else TASK_TYPES
    unknown = [t for t in types if t not in TASK_TYPES]
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; choose from {list(TASK_TYPES)}", param_hint="--task-type")
    knobs = Knobs(**{k: v for k, v in {"max_receptacles": max_receptacles, "distractors": distractors}.items()
                     if v is not None})
    written = Counter()
    games = generate(out, split, count, seed, types, knobs)
    for path in track(games, total=count, description=f"generating {split}", console=console, transient=True):
        written[category_of_path(path)] += 1
    console.print(f"wrote {sum(written.values())} games to {out / split}: "
                  + ", ".join(f"{c} {n}" for c, n in sorted(written.items())))


@app.command()
def play(
    env: str = typer.Option("alfworld", help="A registered environment: alfworld, webshop, or one of yours."),
    game: Optional[Path] = typer.Option(None, help="ALFWorld: a game file or trial folder (default: a bundled game)."),
    task: Optional[str] = typer.Option(None, help="The task to reset to (an ALFWorld game file, a WebShop goal index)."),
    set_: List[str] = typer.Option([], "--set", help="Environment options, e.g. --set split=test --set max_steps=15"),
) -> None:
    """Play an environment in the terminal: type a command or the number of an admissible one ('quit' ends)."""
    import envs

    config = _parse_overrides(set_)
    if game is not None:
        config["game"] = str(game)
    try:
        config = {**envs.spec(env).play_options(), **config}
        environment = envs.make(env, **config)
    except (KeyError, ValueError, TypeError, FileNotFoundError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    reset_task = int(task) if task is not None and task.isdigit() else task
    observation, info = environment.reset(task=reset_task)
    done, total = False, 0.0
    while True:
        console.print(f"\n[bold]{escape(observation)}[/bold]")
        if done:
            break
        commands = info.get("admissible_commands", [])
        for number, command in enumerate(commands, start=1):
            console.print(f"  {number:>2}. {escape(command)}")
        answer = typer.prompt(">", prompt_suffix=" ").strip()
        if answer in ("quit", "exit"):
            break
        action = commands[int(answer) - 1] if answer.isdigit() and 0 < int(answer) <= len(commands) else answer
        observation, reward, done, info = environment.step(action)
        total += reward
    console.print(f"\nepisode over: won={info.get('won')} reward={total:g}"
                  + (f" score={info['score']:.3f}" if "score" in info else ""))
    environment.close()


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
def ablate(
    preset: Path = typer.Argument(Path("configs/alfworld_demo.yaml"), help="The preset every variant starts from."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides for every job."),
    variant: List[str] = typer.Option([], "--variant", help="NAME=OVERRIDES, e.g. 'cold=advantage.temperature=0.05 "
                                      "advantage.estimator=proxmo' (repeat; default: the paper's grid)."),
    seeds: List[int] = typer.Option([0, 1, 2], "--seed", help="Seeds (repeat the option)."),
    name: str = typer.Option("ablation", help="Name of the ablation: its folder, artifacts and parent MLflow run."),
    baseline: Optional[str] = typer.Option(None, help="The variant paired differences are taken against "
                                           "(default: grpo if it is one, else the first)."),
    launcher: str = typer.Option("local", help="local (one job after another) or ray (side by side)."),
    output_dir: str = typer.Option("runs/ablations", help="Runs go to OUTPUT_DIR/NAME/<variant>__s<seed>."),
    retries: int = typer.Option(1, min=0, help="Retries of a job that fails or whose process dies (it resumes)."),
    experiment: str = typer.Option("proxmo-ablations", help="MLflow experiment of the parent run and its jobs."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI)."),
) -> None:
    """Run an ablation grid (variants x seeds) through the Prefect flow and print the comparison table."""
    import shlex

    from flows.ablate import PAPER_VARIANTS, ablate_flow

    grid = {}
    for item in variant:
        label, sep, text = item.partition("=")
        if not sep or not label.strip():
            raise typer.BadParameter(f"expected NAME=OVERRIDES, got {item!r}", param_hint="--variant")
        if label.strip() in grid:
            raise typer.BadParameter(f"variant {label.strip()!r} is given twice; give each variant its own name",
                                     param_hint="--variant")
        grid[label.strip()] = shlex.split(text)
    if launcher not in ("local", "ray"):
        raise typer.BadParameter(f"expected local or ray, got {launcher!r}", param_hint="--launcher")
    _check_stores(tracking_uri)
    try:
        result = ablate_flow(preset=str(preset), variants=grid or dict(PAPER_VARIANTS), seeds=list(seeds),
                             overrides=list(overrides or []), name=name, output_dir=output_dir, baseline=baseline,
                             launcher=launcher, retries=retries, experiment=experiment, tracking_uri=tracking_uri)
    except ValueError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(code=2) from None
    console.print(result["table"], highlight=False, soft_wrap=True)
    console.print(f"parent MLflow run: {result['parent_run_id']}")


@app.command()
def sweep(
    preset: Path = typer.Argument(Path("configs/alfworld_demo.yaml"), help="The preset every trial starts from."),
    overrides: Optional[List[str]] = typer.Argument(None, help="Dotted overrides for every trial."),
    name: str = typer.Option("sweep", help="Study name (its folder, storage entry and parent MLflow run)."),
    trials: int = typer.Option(24, min=1, help="Finished trials the study should hold."),
    concurrency: int = typer.Option(2, min=1, help="Trials at a time."),
    param: List[str] = typer.Option(["delta", "tau"], "--param", help="Searched: delta, beta, tau, alpha, omega, "
                                    "rollout_temperature (repeat)."),
    objective: str = typer.Option("final", help="final or auc (mean validation success over evaluations)."),
    pruner: str = typer.Option("median", help="median, none or threshold:<lower>."),
    storage: Optional[str] = typer.Option(None, envvar=OPTUNA_STORAGE_ENV, show_envvar=False,
                                          help="Optuna storage URL (default PROXMO_OPTUNA_STORAGE, else SQLite optuna.db "
                                          "here); one with a password is best set in that variable, out of `ps`."),
    launcher: str = typer.Option("local", help="local (one trial after another) or ray (side by side)."),
    output_dir: str = typer.Option("runs/sweeps", help="Trials go to OUTPUT_DIR/NAME/trialNNN."),
    seeds: List[int] = typer.Option([0], "--seed", help="Seeds each trial trains (repeat); its value is their mean. "
                                    "The first also seeds the sampler."),
    experiment: str = typer.Option("proxmo-sweeps", help="MLflow experiment of the study's parent run and its trials."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI)."),
) -> None:
    """Run an Optuna study (TPE) over ProxMO's settings through the Prefect flow and print its trials."""
    from flows.sweep import sweep_flow

    if launcher not in ("local", "ray"):
        raise typer.BadParameter(f"expected local or ray, got {launcher!r}", param_hint="--launcher")
    if objective not in ("final", "auc"):
        raise typer.BadParameter(f"expected final or auc, got {objective!r}", param_hint="--objective")
    _check_stores(tracking_uri, storage)
    previous = os.environ.get(OPTUNA_STORAGE_ENV)
    if storage:  # to the flow through the environment: Prefect keeps a flow's parameters in plain text
        os.environ[OPTUNA_STORAGE_ENV] = storage
    try:
        result = sweep_flow(preset=str(preset), name=name, n_trials=trials, concurrency=concurrency, params=list(param),
                            objective=objective, pruner=pruner, overrides=list(overrides or []), storage=None,
                            output_dir=output_dir, launcher=launcher, experiment=experiment, tracking_uri=tracking_uri,
                            seed=seeds[0], seeds=list(seeds))
    except ValueError as error:
        console.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(code=2) from None
    finally:
        if previous is None:
            os.environ.pop(OPTUNA_STORAGE_ENV, None)
        else:
            os.environ[OPTUNA_STORAGE_ENV] = previous
    rows = result["trials"]
    table = Table(*(rows[0].keys() if rows else ["trial"]), title=f"study {escape(name)} ({result['storage']})")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
    console.print(f"best: {result['best_params']} -> {result['best_value']}; parent MLflow run: {result['parent_run_id']}",
                  soft_wrap=True)


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
        console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(code=2) from None


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


def _stores(tracking_uri: Optional[str], storage: Optional[str]) -> dict:
    from dashboards.serve import default_stores

    stores = default_stores()
    if tracking_uri:
        stores["tracking_uri"] = tracking_uri
    if storage:
        stores["optuna_storage"] = storage
    return stores


@app.command()
def dashboard(
    port: int = typer.Option(DASHBOARD_PORT, help="Port of the dashboard."),
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this machine only)."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI, "
                                               "else mlflow.db here)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage (default optuna.db here)."),
    mlflow_ui: str = typer.Option(MLFLOW_UI, "--mlflow-ui", help="The MLflow UI that run links open."),
) -> None:
    """Serve the ablation and sweep dashboard (Streamlit) until Ctrl-C."""
    from dashboards.serve import dashboard_service, serve

    stores = _stores(tracking_uri, storage)
    service = dashboard_service(host, port, stores["tracking_uri"], stores["optuna_storage"], mlflow_ui)
    raise typer.Exit(code=serve([service], Path(".proxmo-ui"), announce=lambda line: console.print(line, soft_wrap=True)))


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="Address to bind (127.0.0.1: this machine only)."),
    mlflow_port: int = typer.Option(MLFLOW_PORT, help="Port of the MLflow UI."),
    optuna_port: int = typer.Option(OPTUNA_PORT, help="Port of optuna-dashboard."),
    dashboard_port: int = typer.Option(DASHBOARD_PORT, help="Port of the proxmo dashboard."),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow store (default MLFLOW_TRACKING_URI, "
                                               "else mlflow.db here)."),
    storage: Optional[str] = typer.Option(None, help="Optuna storage (default optuna.db here)."),
) -> None:
    """Serve the MLflow UI, optuna-dashboard and the proxmo dashboard on the project's stores until Ctrl-C."""
    from dashboards.serve import dashboard_service, mlflow_service, optuna_service, prepare_optuna_storage, serve
    from proxmo.train.tracking import prepare_store

    stores = _stores(tracking_uri, storage)
    prepare_store(stores["tracking_uri"])  # a fresh SQLite store's schema made once, also when a job starts beside it
    prepare_optuna_storage(stores["optuna_storage"])
    mlflow = mlflow_service(host, mlflow_port, stores["tracking_uri"])
    services = [mlflow, optuna_service(host, optuna_port, stores["optuna_storage"]),
                dashboard_service(host, dashboard_port, stores["tracking_uri"], stores["optuna_storage"], mlflow.url)]
    console.print(f"MLflow store {escape(redact_url(stores['tracking_uri']))}; Optuna storage "
                  f"{escape(redact_url(stores['optuna_storage']))}", soft_wrap=True)
    raise typer.Exit(code=serve(services, Path(".proxmo-ui"), announce=lambda line: console.print(line, soft_wrap=True)))


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as installed

    console.print(installed("proxmo"))


if __name__ == "__main__":  # pragma: no cover
    app()

"""The `proxmo` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="ProxMO: group-based RL for multi-turn LLM agents.", no_args_is_help=True, add_completion=False)
console = Console()

RECORD_FIELDS = ("group", "traj", "t", "reward", "invalid", "won", "anchor")


def _parse_overrides(pairs: List[str]) -> dict:
    """`key=value` pairs; values are read as JSON when they parse (numbers, true/false, null), else as text."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--set")
        try:
            overrides[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key.strip()] = value
    return overrides


def _read_records(path: Path) -> list:
    text = path.read_text()
    if text.lstrip().startswith("["):
        return json.loads(text)
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
    except (ValidationError, ValueError, TypeError, KeyError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(code=2) from error
    result = compute_advantages(batch, config)
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


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as installed

    console.print(installed("proxmo"))


if __name__ == "__main__":  # pragma: no cover
    app()

"""The environments' commands, mounted on `proxmo`: ``proxmo games generate`` and ``proxmo play``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from proxmo.terminal import console, parse_pairs


games = typer.Typer(help="ALFWorld games: generate them in the official format.", no_args_is_help=True)


@games.command("generate")
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


def play(
    env: str = typer.Option("alfworld", help="A registered environment: alfworld, webshop, or one of yours."),
    game: Optional[Path] = typer.Option(None, help="ALFWorld: a game file or trial folder (default: a bundled game)."),
    task: Optional[str] = typer.Option(None, help="The task to reset to (an ALFWorld game file, a WebShop goal index)."),
    set_: List[str] = typer.Option([], "--set", help="Environment options, e.g. --set split=test --set max_steps=15"),
) -> None:
    """Play an environment in the terminal: type a command or the number of an admissible one ('quit' ends)."""
    import envs

    config = parse_pairs(set_)
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


__all__ = ["games", "play"]

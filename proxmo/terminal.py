"""What every `proxmo` command shares, whichever package mounts it: the console, ``key=value`` options, a
refusal in one line with exit code 2, and the help text of a setting declared elsewhere."""

from __future__ import annotations

from typing import Any, Dict, List, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()


def parse_pairs(pairs: List[str], option: str = "--set") -> Dict[str, Any]:
    """``key=value`` pairs, read with the same grammar as the training overrides (values as YAML)."""
    from proxmo.train.config import ConfigError, parse_override

    parsed = {}
    for pair in pairs:
        try:
            key, value = parse_override(pair)
        except ConfigError as error:
            raise typer.BadParameter(str(error), param_hint=option) from None
        parsed[key] = value
    return parsed


def refuse(error: BaseException | str) -> NoReturn:
    """Print ``error`` in one line and end the command with exit code 2 (bad input, nothing done)."""
    console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
    raise typer.Exit(code=2)


def field_help(model: Any, name: str) -> str:
    """The description of ``model``'s field ``name`` and its default: a command's help says what the spec says."""
    field = model.model_fields[name]
    default = field.get_default(call_default_factory=True)
    shown = " ".join(map(str, default)) if isinstance(default, list) else default
    return f"{field.description} (default: {shown})" if default not in (None, [], {}) else str(field.description)


__all__ = ["console", "field_help", "parse_pairs", "refuse"]

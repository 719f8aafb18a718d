"""What every command's CLI shares: context settings, opening the repository, safe printing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

STATUS_COLOURS = {
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "interrupted": "yellow",
    "crashed": "magenta",
    "unreadable": "red",
}
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def open_repo() -> Any:
    """The repository of the current directory (pygit2 is imported only when needed)."""
    from gitexp.repository import open_repository

    return open_repository(Path.cwd())


def log_line(run: Any, now: float, id_width: int) -> str:
    """One run as `git exp log` prints it."""
    from gitexp.display import format_duration, format_when, metrics_line

    record = run.record or {}
    status = click.style(f"{run.status:<11}", fg=STATUS_COLOURS.get(run.status))
    raw_tags, raw_message = record.get("tags"), record.get("message")
    tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
    message: str = raw_message if isinstance(raw_message, str) else ""
    label = " ".join([*(f"[{safe(str(tag))}]" for tag in tags), safe(message.split("\n", 1)[0])])
    parts = [
        click.style(f"{run.id:<{id_width}}", fg="yellow"),
        status,
        f"{format_when(run.started, now):>8}",
        f"{format_duration(record.get('duration_s')):>7}",
        run.commit[:7],
        metrics_line(record.get("metrics")) or ("" if run.record else safe(run.problem or "")),
        label.strip(),
    ]
    return "  ".join(part for part in parts if part)


def safe(text: str, keep_colour: bool = False) -> str:
    """Escape control characters from records (they may come from other people's remotes)."""
    from gitexp.ids import printable

    if keep_colour:
        return "\x1b".join(printable(piece) for piece in text.split("\x1b"))
    return printable(text)


def echo_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout."""
    import orjson

    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())

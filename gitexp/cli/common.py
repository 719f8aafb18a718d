"""What every command's CLI shares: context settings, opening the repository, safe printing."""

from __future__ import annotations

import re
from collections.abc import Sequence
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
COLOUR_SEQUENCE = re.compile(r"\x1b\[[0-9;]*m")
JSON_UNSAFE = {
    code: f"\\u{code:04x}"
    for code in [*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
}
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def open_repo() -> Any:
    """The repository of the current directory (pygit2 is imported only when needed)."""
    from gitexp.repository import open_repository

    return open_repository(Path.cwd())


def log_lines(runs: Sequence[Any], now: float, colour: bool) -> list[str]:
    """Every run as `git exp log` prints it, one line each (ANSI colours when `colour`)."""
    from gitexp.display import format_duration, format_value, format_when

    # Only the runs' summaries: parsing 100,000 records to print a line each costs seconds.
    id_width = max((len(run.id) for run in runs), default=0)
    style = click.style if colour else _unstyled
    statuses: dict[str, str] = {}  # a handful of distinct statuses: style each once
    lines = []
    for run in runs:
        pairs = run.headline_metrics
        metrics = (
            safe(" ".join(f"{name}={format_value(value)}" for name, value in pairs))
            if pairs
            else ""
        )
        tags, message = run.tags, run.message
        label = (
            " ".join([*(f"[{safe(tag)}]" for tag in tags), safe(message)]).strip()
            if tags or message
            else ""
        )
        status = statuses.get(run.status)
        if status is None:
            status = style(f"{safe(run.status):<11}", fg=STATUS_COLOURS.get(run.status))
            statuses[run.status] = status
        parts = [
            style(f"{run.id:<{id_width}}", fg="yellow"),
            status,
            f"{format_when(run.started, now):>8}",
            f"{format_duration(run.duration_s):>7}",
            run.commit[:7],
            metrics or safe(run.problem or ""),
            style("(deleted)", fg="red") if run.deleted else "",
            label,
        ]
        lines.append("  ".join(filter(None, parts)))
    return lines


def _unstyled(text: str, fg: str | None = None) -> str:
    return text


def safe(text: str, keep_colour: bool = False) -> str:
    """Escape control characters from records (they may come from other people's remotes)."""
    if text.isprintable():
        return text
    from gitexp.ids import printable

    if keep_colour:
        # Only colour (SGR) sequences survive: anything else from a record, such as a
        # title change (ESC ] ... BEL) or a screen clear (ESC [ 2 J), is shown escaped.
        pieces = COLOUR_SEQUENCE.split(text)
        colours = COLOUR_SEQUENCE.findall(text)
        shown = [printable(piece) for piece in pieces]
        return "".join(p + c for p, c in zip(shown, [*colours, ""], strict=True))
    return printable(text)


def echo_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout."""
    import orjson

    text = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    # orjson escapes C0 controls only; records from other remotes can hold C1 controls and
    # bidi overrides too, which a terminal acts on (valid JSON either way).
    click.echo(text if text.isascii() else text.translate(JSON_UNSAFE))

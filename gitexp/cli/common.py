"""What every command's CLI shares: context settings, opening the repository, safe printing."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import click

# After `run` or `rerun` could not write the final record (a full disk, say).
RECORD_LATER = "exit.json in the run directory keeps how it ended; the next git exp log records it"
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
OutputFormat = Literal["text", "json", "csv", "md"]
TABLE_HELP = {"csv": "Print a CSV table with a header row.", "md": "Print a Markdown table."}


def output_options(json_help: str, tables: bool = False) -> Callable[[Any], Any]:
    """`--json` (and with `tables`, `--csv` and `--md`) for a command, which gets them as one
    `fmt` argument ("text" when none is given); two of them together are a usage error."""
    flags = ["json", "csv", "md"] if tables else ["json"]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def with_format(*args: Any, **kwargs: Any) -> Any:
            chosen = [flag for flag in flags if kwargs.pop(f"as_{flag}")]
            if len(chosen) > 1:
                raise click.UsageError(f"choose one of {_one_of(flags)}")
            return command(*args, fmt=chosen[0] if chosen else "text", **kwargs)

        for flag in reversed(flags):
            help_text = json_help if flag == "json" else TABLE_HELP[flag]
            click.option(f"--{flag}", f"as_{flag}", is_flag=True, help=help_text)(with_format)
        return with_format

    return decorate


def _one_of(flags: list[str]) -> str:
    names = [f"--{flag}" for flag in flags]
    return f"{', '.join(names[:-1])} and {names[-1]}"


def open_repo() -> Any:
    """The repository of the current directory (pygit2 is imported only when needed)."""
    from gitexp.repository import open_repository

    return open_repository(Path.cwd())


def log_lines(entries: Sequence[Any], now: float, colour: bool) -> list[str]:
    """Every run's line in `git exp log` (ANSI colours when `colour`); `entries` are
    listing.LogEntry tuples."""
    from gitexp.display import DATE_AFTER_S, format_when

    # Written for speed: at 100,000 runs every call in the loop costs 0.01 s or more.
    id_width = max((len(entry[0]) for entry in entries), default=0)  # entry[0]: the run's id
    style = click.style if colour else _unstyled
    statuses: dict[str, str] = {}  # a handful of distinct statuses: style each once
    dates: dict[int, str] = {}  # a run over a week old shows its date: one per quarter hour
    deleted_mark = style("(deleted)", fg="red")
    lines = []
    for run_id, status, started, deleted, middle, label, _commit, _host in entries:
        if started > 0 and now - started >= DATE_AFTER_S:
            # Every time zone's offset is a whole number of quarter hours.
            when = dates.get(int(started) // 900)
            if when is None:
                when = dates[int(started) // 900] = format_when(started, now).rjust(8)
        else:
            when = format_when(started, now).rjust(8)
        shown = statuses.get(status)
        if shown is None:
            shown = statuses[status] = style(f"{safe(status):<11}", fg=STATUS_COLOURS.get(status))
        name = run_id.ljust(id_width)
        if colour:
            name = style(name, fg="yellow")
        line = f"{name}  {shown}  {when}  {middle}"
        if deleted:
            line = f"{line}  {deleted_mark}"
        lines.append(f"{line}  {label}" if label else line)
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


def echo_json_array(items: Sequence[bytes]) -> None:
    """Print a JSON array of already serialised, indented items, as `echo_json` would."""
    if not items:
        click.echo("[]")
        return
    # Exactly what OPT_INDENT_2 makes of a list: each item's lines indented one more level.
    body = b",\n".join(b"  " + item.replace(b"\n", b"\n  ") for item in items)
    data = b"[\n" + body + b"\n]\n"
    if not data.isascii():
        data = data.decode().translate(JSON_UNSAFE).encode()
    click.echo(data, nl=False)

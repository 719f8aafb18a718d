"""`git exp log` on the command line."""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

import click

from gitexp.cli.common import (
    CONTEXT,
    OutputFormat,
    echo_json_array,
    log_lines,
    open_repo,
    output_options,
    safe,
)

STATUS_CHOICES = ["running", "succeeded", "failed", "interrupted", "crashed", "saved", "unreadable"]
TABLE_COLUMNS = ["id", "status", "started_at", "duration_s", "commit", "metrics", "tags", "message"]


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUS_CHOICES),
    help="Only runs with this status (repeatable).",
)
@click.option(
    "-t", "--tag", "tags", multiple=True, help="Only runs with this tag (repeatable: any of them)."
)
@click.option(
    "--where",
    metavar="EXPR",
    help="Only runs whose record matches EXPR (see above).",
)
@click.option("--since", metavar="WHEN", help="Only runs started since WHEN (2d, 12h, 2026-11-01).")
@click.option(
    "--sort", "sort", metavar="KEY", help="Sort by a record field, ascending (params.lr)."
)
@click.option("-r", "--reverse", is_flag=True, help="Reverse the order.")
@click.option("--all", "include_deleted", is_flag=True, help="Include runs marked deleted.")
@click.option("-n", "--max-count", type=click.IntRange(min=0), help="Show at most this many runs.")
@output_options("Print the records as a JSON array.", tables=True)
def log(
    names: tuple[str, ...],
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    where: str | None,
    since: str | None,
    sort: str | None,
    reverse: bool,
    include_deleted: bool,
    max_count: int | None,
    fmt: OutputFormat,
) -> None:
    """List runs, newest first, one line each (all names, or only NAMES).

    Each line: id, status, when, duration, snapshot, headline metrics, tags and
    message. A run whose supervising process died shows as crashed. Runs marked
    deleted (git exp rm) are hidden unless --all.

    --where selects with comparisons (== != < <= > >= =~), and, or, not,
    `in [a, b]` and `exists` (present and not null) over record fields: status, name, tags,
    params.<name>, metrics.<name>.last/min/max/count (metrics.<name> alone means
    .last), duration_s, started_at, ... Quote a field with other characters:
    metrics."train/loss".min. See docs/format.md.

    \b
    Examples:
      git exp log
      git exp log train --status failed -n 5
      git exp log --where 'metrics.val_acc.max > 0.9 and params.lr <= 0.01'
      git exp log --sort metrics.val_acc.max -r -n 3
      git exp log --since 2d --md
      git exp log --json | jq '.[0].metrics'
    """
    from gitexp.commands.log import plain_log
    from gitexp.query import parse_since
    from gitexp.selection import select_runs

    # 100,000 runs in memory: every few hundred objects made while printing, a cyclic
    # collection would rescan them all (seconds in total), and nothing here makes a cycle.
    collecting = gc.isenabled()
    gc.disable()
    try:
        repo = open_repo()
        if fmt == "text" and not (names or statuses or tags or where or since or sort):
            # The plain listing: lines straight from the listing cache, no run objects.
            entries = plain_log(repo, max_count, include_deleted=include_deleted, reverse=reverse)
            _print_lines(entries)
            return
        runs = select_runs(
            repo,
            names=names,
            statuses=statuses,
            tags=tags,
            limit=max_count,
            where=where,
            since=parse_since(since, _now()) if since else None,
            include_deleted=include_deleted,
            sort=sort,
            reverse=reverse,
        )
        _print_runs(repo, runs, fmt)
    finally:
        if collecting:
            gc.enable()


def _print_runs(repo: Any, runs: list[Any], fmt: OutputFormat) -> None:
    if fmt == "json":
        import pygit2

        # libgit2 re-hashes every object it reads unless told not to (git does not): a
        # third of the time of reading 10,000 notes. This process only prints them.
        pygit2.option(pygit2.enums.Option.ENABLE_STRICT_HASH_VERIFICATION, False)
        echo_json_array([run.json_bytes(repo) for run in runs])
    elif fmt == "csv" or fmt == "md":
        from gitexp.cli.tables import render_table

        rows = [_table_row(run) for run in runs]
        click.echo(render_table(TABLE_COLUMNS, rows, "csv" if fmt == "csv" else "md"))
    else:
        _print_lines([run.log_entry() for run in runs])


def _print_lines(entries: list[Any]) -> None:
    context = click.get_current_context()
    colour = context.color if context.color is not None else sys.stdout.isatty()
    lines = log_lines(entries, time.time(), colour)
    if lines:
        click.echo("\n".join(lines))


def _table_row(run: Any) -> list[str]:
    from gitexp.display import format_value, metrics_line

    record = run.record or {}
    raw_message = record.get("message")
    message = raw_message if isinstance(raw_message, str) else ""
    return [
        run.id,
        safe(run.status),
        safe(str(record.get("started_at") or "")),
        safe(
            format_value(record.get("duration_s")) if record.get("duration_s") is not None else ""
        ),
        run.commit[:12],
        safe(metrics_line(record.get("metrics"))),
        " ".join(safe(tag) for tag in run.tags),
        safe(message.split("\n", 1)[0]),
    ]


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now().astimezone()

"""`git exp log` on the command line."""

from __future__ import annotations

import time

import click

from gitexp.cli.common import CONTEXT, echo_json, log_line, open_repo


@click.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["running", "succeeded", "failed", "interrupted", "crashed", "unreadable"]),
    help="Only runs with this status (repeatable).",
)
@click.option(
    "-t", "--tag", "tags", multiple=True, help="Only runs with this tag (repeatable: any of them)."
)
@click.option("-n", "--max-count", type=click.IntRange(min=0), help="Show at most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON array.")
def log(
    names: tuple[str, ...],
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    max_count: int | None,
    as_json: bool,
) -> None:
    """List runs, newest first, one line each (all names, or only NAMES).

    Each line: id, status, when, duration, snapshot, headline metrics, tags and
    message. A run whose supervising process died shows as crashed.

    \b
    Examples:
      git exp log
      git exp log train --status failed -n 5
      git exp log --json | jq '.[0].metrics'
    """
    from gitexp.commands.log import log_runs

    runs = log_runs(open_repo(), names, statuses, tags, max_count)
    if as_json:
        echo_json([run.as_json() for run in runs])
        return
    now = time.time()
    id_width = max((len(run.id) for run in runs), default=0)
    for run in runs:
        click.echo(log_line(run, now, id_width))

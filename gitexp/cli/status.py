"""`git exp status` on the command line."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from gitexp.cli.common import (
    CONTEXT,
    STATUS_COLOURS,
    OutputFormat,
    echo_json,
    open_repo,
    output_options,
    safe,
)

if TYPE_CHECKING:
    from gitexp.commands.status import ActiveRun


@click.command(context_settings=CONTEXT)
@output_options("Print the runs as JSON.")
def status(fmt: OutputFormat) -> None:
    """Show the runs in progress on this machine, and the runs that crashed.

    A run in progress shows its id, the pid of its `git exp run`, the time since
    it started and its command. A crashed run is one whose record still says
    running but whose supervising process is gone (`git exp rm` hides it).

    \b
    Examples:
      git exp status
      git exp status --json | jq '.running[].id'
    """
    from gitexp.commands.status import run_status

    report = run_status(open_repo())
    if fmt == "json":
        echo_json(report.as_json())
        return
    if not report.running:
        click.echo("no runs in progress")
    else:
        click.echo(f"in progress on {safe(report.host)}:")
        for run in report.running:
            click.echo(_line(run))
    if report.crashed:
        click.echo("crashed:")
        for run in report.crashed:
            click.echo(_line(run))


def _line(run: ActiveRun) -> str:
    from gitexp.display import format_duration

    if run.status == "running":
        when = f"running for {format_duration(run.elapsed_s)}"
    else:
        when = f"started {format_duration(run.elapsed_s)} ago on {safe(run.host or '-')}"
    parts = [
        click.style(run.id, fg="yellow"),
        f"pid {run.pid if run.pid is not None else '-'}",
        click.style(when, fg=STATUS_COLOURS.get(run.status)),
        safe(shlex.join(run.command)),
    ]
    return "  " + safe("  ".join(parts), keep_colour=True)

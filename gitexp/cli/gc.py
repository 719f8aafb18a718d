"""`git exp gc` on the command line."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe

if TYPE_CHECKING:
    from gitexp.commands.gc import GcSkip


@click.command(context_settings=CONTEXT)
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would be removed.")
@click.option(
    "--older-than",
    metavar="AGE",
    default="0",
    show_default=True,
    help="Only runs marked deleted at least AGE ago: 30d, 12h, 90m, 2w (0: all marked).",
)
@output_options("Print what was removed as JSON.")
def gc(dry_run: bool, older_than: str, fmt: OutputFormat) -> None:
    """Physically remove the runs marked deleted by `git exp rm`, and nothing else.

    For each such run: its ref and its run directory go, and the space freed is
    reported. Its record stays, marked deleted, so that `git exp push` tells other
    clones the run was deleted (and `git exp pull` does not bring it back). A
    marked run that is still running is skipped, and so is a run whose run
    directory is here when its mark came with a pull (`git exp rm` it here).
    Runs not marked deleted are never touched. The snapshot commits become
    unreachable; `git gc` prunes them on its own schedule (this command does
    not run it).

    \b
    Examples:
      git exp gc --dry-run
      git exp gc --older-than 30d
      git exp gc --json
    """
    from gitexp.commands.gc import collect_garbage
    from gitexp.display import format_size
    from gitexp.query import parse_duration

    age = parse_duration(older_than, "--older-than")
    report = collect_garbage(
        open_repo(),
        older_than=age,
        dry_run=dry_run,
        env_logdir=os.environ.get("GITEXP_LOGDIR"),
    )
    if fmt == "json":
        answer = report.as_json()
        answer["skipped"] = [
            {"id": skip.id, "reason": skip_reason(skip)} for skip in report.skipped
        ]
        echo_json(answer)
    else:
        verb = "would remove" if dry_run else "removed"
        for run in report.removed:
            click.echo(f"{verb} {run.id} ({format_size(run.bytes)})")
            if run.run_dir_kept:
                click.echo(safe(f"  run directory {run.run_dir_kept}"), err=True)
        count = f"{len(report.removed)} run" + ("" if len(report.removed) == 1 else "s")
        freed = format_size(report.bytes_freed)
        if dry_run:
            click.echo(f"would remove {count}, freeing {freed} (dry run: nothing changed)")
        else:
            click.echo(f"removed {count}, freed {freed}")
    if fmt != "json":
        for skip in report.skipped:
            click.echo(safe(f"skipped {skip.id}: {skip_reason(skip)}"), err=True)
    for problem in report.problems:
        click.echo(safe(f"warning: {problem}"), err=True)
    if report.problems:
        click.get_current_context().exit(1)


def skip_reason(skip: GcSkip) -> str:
    """Why gc kept a run marked deleted, as printed."""
    from gitexp.display import format_duration

    if skip.marked_ago_s is None:
        return skip.reason
    return f"marked deleted {format_duration(skip.marked_ago_s)} ago, {skip.reason}"

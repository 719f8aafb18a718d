"""`git exp rerun` on the command line."""

from __future__ import annotations

import os
import sys

import click

from gitexp.cli.common import CONTEXT, RECORD_LATER, open_repo, safe


@click.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@click.argument("extra_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- EXTRA_ARGS...]")
@click.option(
    "--here",
    is_flag=True,
    help="Run in the current working tree, checked out at the run's snapshot (detached), "
    "after the same checks as `git exp checkout`.",
)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="With --here: save the local state as a snapshot (saved/<id>) first, then overwrite it.",
)
@click.option("-n", "--name", help="Experiment name (default: the original run's).")
@click.option("-m", "--message", help="A message describing this run.")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the run (repeatable).")
def rerun(
    run_spec: str,
    extra_args: tuple[str, ...],
    here: bool,
    force: bool,
    name: str | None,
    message: str | None,
    tags: tuple[str, ...],
) -> None:
    """Run a run's recorded command again, on its recorded code, as a new run.

    The program runs in its recorded directory inside a temporary linked worktree
    checked out at the run's snapshot, never in your working tree. The new run's
    record has rerun_of; the original lists the new run in reruns. EXTRA_ARGS
    (after --) are appended to the command: a flag given again there wins for the
    params (and for argparse). Whatever the program writes in the worktree
    (checkpoints, outputs, ignored files too) is moved into the new run's directory
    under outputs/ before the worktree is removed. Ignored files the original had
    (data sets, say) are not in the snapshot: use --here for those. Exits with the
    program's exit status.

    \b
    Examples:
      git exp rerun @
      git exp rerun k3f9 -- --epochs 50 --seed 2
      git exp rerun k3f9 -m "same code, new seed" -t repro -- --seed 3
      git exp rerun k3f9 --here
    """
    from gitexp.commands.rerun import RerunRequest, rerun_run
    from gitexp.display import format_duration, metrics_line

    if force and not here:
        raise click.UsageError("--force only applies with --here")
    request = RerunRequest(
        spec=run_spec,
        environ=dict(os.environ),
        extra_args=list(extra_args),
        here=here,
        force=force,
        name=name,
        message=message,
        tags=list(tags),
    )
    result = rerun_run(open_repo(), request, report=lambda line: click.echo(safe(line), err=True))
    record = result.run.record
    summary = (
        f"gitexp: {result.run.run_id} (rerun of {result.original}) {record['status']} "
        f"in {format_duration(record.get('duration_s'))}"
    )
    headline = metrics_line(record.get("metrics"))
    if headline:
        summary += f" · {headline}"
    click.echo(safe(summary), err=True)
    if result.run.record_error:
        click.echo(safe(f"error: {result.run.record_error} ({RECORD_LATER})"), err=True)
    sys.exit(result.run.exit_status)

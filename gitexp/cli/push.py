"""`git exp push` on the command line."""

from __future__ import annotations

import os

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options


@click.command(context_settings=CONTEXT)
@click.argument("remote", required=False)
@click.argument("run_specs", metavar="[RUN]...", nargs=-1)
@output_options("Print what was pushed as JSON.")
def push(remote: str | None, run_specs: tuple[str, ...], fmt: OutputFormat) -> None:
    """Send runs (all, or the RUNs named) and their records to REMOTE.

    Pushes refs/experiments/* and refs/notes/experiments through git, so your
    credentials and SSH setup apply, in one atomic push. Never forces: when the
    remote has records you do not, nothing is pushed and you are asked to `git exp
    pull` first; when the remote refuses for its own reasons (a hook, fsck), its
    message is shown; a run id the remote holds with another snapshot is left out with
    a warning. REMOTE defaults to exp.remote, then the current branch's remote,
    then origin.

    \b
    Examples:
      git exp push
      git exp push origin
      git exp push origin @ k3f9
    """
    from gitexp.commands.push import push_runs

    result = push_runs(open_repo(), remote, run_specs, os.environ)
    if fmt == "json":
        echo_json(vars(result))
        return
    pushed = len(result.pushed)
    click.echo(
        f"{result.remote}: {pushed} run(s) pushed, {result.up_to_date} already there, "
        f"records {result.records}"
    )
    for run in result.conflicts:
        click.echo(
            f"warning: {run} exists on {result.remote} with another snapshot; not pushed",
            err=True,
        )

"""`git exp tag` on the command line."""

from __future__ import annotations

import os

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe


@click.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@click.argument("tags", nargs=-1)
@click.option("-d", "--delete", is_flag=True, help="Remove the TAGs instead of adding them.")
@output_options("Print the run's tags as JSON.")
def tag(run_spec: str, tags: tuple[str, ...], delete: bool, fmt: OutputFormat) -> None:
    """Add TAGs to a run (or remove them with -d); without TAGs, list its tags.

    A tag has no spaces, commas or control characters (at most 100 characters).

    Tags filter `git exp log -t TAG` and `git exp compare -t TAG`. Works while
    the run is still going.

    \b
    Examples:
      git exp tag @ best baseline
      git exp tag -d k3f9 baseline
      git exp tag train/20261127.001.k3f9
    """
    from gitexp.commands.tag import change_tags
    from gitexp.runspec import find_run

    repo = open_repo()
    if not tags:
        if delete:
            raise click.UsageError("-d needs at least one TAG")
        current = find_run(repo, run_spec).tags
    else:
        add, remove = ((), tags) if delete else (tags, ())
        record = change_tags(repo, run_spec, os.environ, add=add, remove=remove)
        current = [str(tag) for tag in record.get("tags") or []]
        if fmt != "json":
            return
    if fmt == "json":
        echo_json(current)
    else:
        for name in current:
            click.echo(safe(name))

"""`git exp rm` and `git exp restore` on the command line."""

from __future__ import annotations

import os

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options


@click.command(context_settings=CONTEXT)
@click.argument("run_specs", metavar="RUN...", nargs=-1, required=True)
@output_options("Print what changed as JSON.")
def rm(run_specs: tuple[str, ...], fmt: OutputFormat) -> None:
    """Mark runs deleted: hidden from `git exp log` (unless --all), never erased.

    The mark is a time in the record; `git exp restore` clears it, and only
    `git exp gc` physically removes runs that carry it.

    \b
    Examples:
      git exp rm @
      git exp rm k3f9 train/20261127.002.p0qz
    """
    _mark(run_specs, deleted=True, as_json=fmt == "json")


@click.command(context_settings=CONTEXT)
@click.argument("run_specs", metavar="RUN...", nargs=-1, required=True)
@output_options("Print what changed as JSON.")
def restore(run_specs: tuple[str, ...], fmt: OutputFormat) -> None:
    """Clear the deletion mark of runs marked by `git exp rm`.

    \b
    Examples:
      git exp log --all --where 'deleted != null'
      git exp restore k3f9
    """
    _mark(run_specs, deleted=False, as_json=fmt == "json")


def _mark(run_specs: tuple[str, ...], deleted: bool, as_json: bool) -> None:
    from gitexp.commands.rm import mark_deleted

    changes = mark_deleted(open_repo(), run_specs, deleted, os.environ)
    if as_json:
        echo_json([vars(change) for change in changes])
        return
    for change in changes:
        if deleted:
            state = "marked deleted" if change.changed else "was already marked deleted"
        else:
            state = "restored" if change.changed else "was not marked deleted"
        click.echo(f"{change.run} {state}")

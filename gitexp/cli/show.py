"""`git exp show` on the command line."""

from __future__ import annotations

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe


@click.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@output_options("Print the record as JSON.")
def show(run_spec: str, fmt: OutputFormat) -> None:
    """Show one run's whole record.

    RUN is <name>/<id>, <id>, any unique suffix of an id (such as its random
    part), the full ref, @ (the newest run) or @~N (N runs before it).

    \b
    Examples:
      git exp show @
      git exp show train/20261127.001.k3f9
      git exp show k3f9 --json
    """
    from gitexp.commands.show import show_run

    run = show_run(open_repo(), run_spec)
    if fmt == "json":
        echo_json(run.as_json())
        return
    from gitexp.cli.showtext import render_run

    for number, line in enumerate(render_run(run)):
        # Only the first line (the run's id) is coloured; a record's own escapes never pass.
        click.echo(safe(line, keep_colour=number == 0))

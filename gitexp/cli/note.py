"""`git exp note` on the command line."""

from __future__ import annotations

import os

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe


@click.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@click.argument("message", required=False)
@click.option("-a", "--append", is_flag=True, help="Add MESSAGE as a timestamped annotation.")
@click.option("--clear", is_flag=True, help="Remove the run's message.")
@output_options("Print the updated record as JSON.")
def note(run_spec: str, message: str | None, append: bool, clear: bool, fmt: OutputFormat) -> None:
    """Set a run's message, or add a timestamped annotation to it.

    Without MESSAGE, prints the run's message and annotations. Works while the
    run is still going: the run's own final update keeps the note.

    \b
    Examples:
      git exp note @ "best so far: keep this config"
      git exp note k3f9 --append "val_acc drops after epoch 30"
      git exp note train/20261127.001.k3f9
      git exp note @~2 --clear
    """
    from gitexp.cli.showtext import annotation_text
    from gitexp.commands.note import set_message
    from gitexp.runspec import find_run

    repo = open_repo()
    if message is None and not clear:
        if append:
            raise click.UsageError("--append needs a MESSAGE")
        record = find_run(repo, run_spec).as_json()
    else:
        if clear and (message is not None or append):
            raise click.UsageError("--clear takes no MESSAGE and no --append")
        record = set_message(repo, run_spec, None if clear else message, os.environ, append)
        if fmt != "json":
            return
    if fmt == "json":
        echo_json(record)
        return
    if record.get("message"):
        click.echo(safe(str(record["message"])))
    for entry in record.get("annotations") or []:
        click.echo(safe(annotation_text(entry)))

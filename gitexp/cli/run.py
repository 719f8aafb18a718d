"""`git exp run` on the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from gitexp.cli.common import CONTEXT, RECORD_LATER, open_repo, safe


@click.command(
    context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("-n", "--name", help="Experiment name (default: the program's file name).")
@click.option("-m", "--message", help="A message describing this run.")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the run (repeatable).")
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(
    name: str | None,
    message: str | None,
    tags: tuple[str, ...],
    program: str,
    args: tuple[str, ...],
) -> None:
    """Snapshot the working tree and run PROGRAM as a recorded experiment.

    Everything after PROGRAM belongs to the program. A PROGRAM ending in .py runs
    under the `python` on your PATH. Hyperparameters are read from the arguments
    (--lr 0.1, --lr=0.1, lr=0.1, --flag). Exits with the program's exit status.

    \b
    Examples:
      git exp run train.py --lr 0.1 --epochs 20
      git exp run -n baseline -m "no dropout" -t ablation train.py --dropout 0
      git exp run -- ./train.sh 100
    """
    from gitexp.commands.run import RunRequest, run_experiment
    from gitexp.display import format_duration, metrics_line

    repo = open_repo()
    request = RunRequest(
        command=[program, *args],
        cwd=Path.cwd(),
        environ=dict(os.environ),
        name=name,
        message=message,
        tags=list(tags),
    )
    result = run_experiment(repo, request, report=lambda line: click.echo(safe(line), err=True))
    record = result.record
    summary = (
        f"gitexp: {result.run_id} {record['status']} in {format_duration(record.get('duration_s'))}"
    )
    headline = metrics_line(record.get("metrics"))
    error = record.get("error")
    if headline:
        summary += f" · {headline}"
    if isinstance(error, dict) and record["status"] == "failed":
        summary += f" · {error.get('type')}: {error.get('message')}"
    click.echo(safe(summary), err=True)
    if result.record_error:
        click.echo(safe(f"error: {result.record_error} ({RECORD_LATER})"), err=True)
    sys.exit(result.exit_status)

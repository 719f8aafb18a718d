"""`git exp plot` on the command line."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe
from gitexp.errors import GitExpError

if TYPE_CHECKING:
    from gitexp.series import Series

OUTPUT_FORMATS = (".png", ".svg", ".html")
MAX_TERMINAL_WIDTH = 120


@click.command(context_settings=CONTEXT)
@click.argument("specs", nargs=-1, required=True, metavar="RUN...")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="NAME",
    help="Plot this metric (repeatable). Default: the metrics the runs share, at most 6.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the plot to FILE.png, FILE.svg or FILE.html instead of the terminal.",
)
@output_options("Print the series as JSON instead.")
def plot(
    specs: tuple[str, ...], metrics: tuple[str, ...], output: Path | None, fmt: OutputFormat
) -> None:
    """Plot metric curves against step: one subplot per metric, the RUNs overlaid.

    The legend names each run by <name>/<random part> (or its full id when that is
    ambiguous) and marks runs still going; a running run shows what it has logged
    so far. Without -o, a compact plot in the terminal. Needs the ui extra:
    pip install 'gitexp[ui]' (--json does not).

    \b
    Examples:
      git exp plot @
      git exp plot @~2 @~1 @ --metric loss --metric val_acc
      git exp plot k3f9 p0qz -o curves.png
      git exp plot @ -o report.html
      git exp plot @ --json | jq '.runs[0].series.loss[-1]'
    """
    from gitexp.commands.plot import plot_data

    if output is not None and output.suffix.lower() not in OUTPUT_FORMATS:
        raise click.BadParameter(
            f"'{output}' must end in .png, .svg or .html", param_hint="'-o' / '--output'"
        )
    data = plot_data(open_repo(), specs, metrics, env_logdir=os.environ.get("GITEXP_LOGDIR"))
    for run_id in data.without_metrics:
        click.echo(f"gitexp: {run_id} has no metrics yet; left out", err=True)
    for run_id in data.not_here:
        click.echo(
            f"gitexp: {run_id}: its run directory is not on this machine; left out", err=True
        )
    hidden = [name for name in data.available if name not in data.metrics]
    if hidden and not metrics:
        click.echo(f"gitexp: also logged (--metric NAME): {safe(', '.join(hidden))}", err=True)
    curves = [(_legend_label(run.label, run.status), run.series) for run in data.runs]
    if output is not None:
        _write(output, data.metrics, curves)
        click.echo(f"gitexp: wrote {output}", err=True)
    if fmt == "json":
        echo_json(data.as_json())
    elif output is None:
        from gitexp.plotting import render_terminal

        width = min(shutil.get_terminal_size().columns, MAX_TERMINAL_WIDTH)
        colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        click.echo(render_terminal(data.metrics, curves, width, colour), color=colour)


def _legend_label(label: str, status: str) -> str:
    return f"{label} (running)" if status == "running" else label


def _write(output: Path, metrics: list[str], curves: list[tuple[str, Series]]) -> None:
    from gitexp.plotting import render_html, render_image

    suffix = output.suffix.lower()
    if suffix == ".html":
        title = "git exp plot: " + ", ".join(label for label, _series in curves)
        content = render_html(metrics, curves, title=title).encode()
    else:
        content = render_image(metrics, curves, "png" if suffix == ".png" else "svg")
    try:
        output.write_bytes(content)
    except OSError as exc:
        raise GitExpError(f"cannot write {output}: {exc.strerror or exc}") from None

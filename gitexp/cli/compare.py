"""`git exp compare` on the command line."""

from __future__ import annotations

from typing import Any, cast

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


@click.command(context_settings=CONTEXT)
@click.argument("specs", nargs=-1, metavar="[RUN]...")
@click.option("--where", "where", metavar="EXPR", help="Only runs matching EXPR (as git exp log).")
@click.option(
    "-t", "--tag", "tags", multiple=True, help="Only runs with this tag (repeatable: any of them)."
)
@click.option("--name", "names", multiple=True, help="Only runs of this experiment (repeatable).")
@click.option("--all", "include_deleted", is_flag=True, help="Include runs marked deleted.")
@click.option("-n", "--max-count", type=click.IntRange(min=0), help="At most this many runs.")
@click.option(
    "--metric-stat",
    type=click.Choice(["last", "min", "max"]),
    default="last",
    show_default=True,
    help="Which summary of each metric to show.",
)
@click.option("--all-columns", is_flag=True, help="Also show columns whose values are all equal.")
@output_options("Print a JSON list of row objects.", tables=True)
def compare(
    specs: tuple[str, ...],
    where: str | None,
    tags: tuple[str, ...],
    names: tuple[str, ...],
    include_deleted: bool,
    max_count: int | None,
    metric_stat: str,
    all_columns: bool,
    fmt: OutputFormat,
) -> None:
    """Compare runs in a table: one row a run, columns for params and metrics.

    Rows are the RUNs given, in that order, or else every run newest first (runs
    marked deleted only with --all or when named). Filters narrow either. Columns:
    id, status, params.<key>..., then each metric's last value (<metric>) or, with
    --metric-stat min|max, <metric>.min / <metric>.max. Only the columns whose values
    differ between the rows are shown unless --all-columns.

    \b
    Examples:
      git exp compare
      git exp compare @~2 @~1 @
      git exp compare --name train -t sweep --where 'params.lr <= 0.01' -n 10
      git exp compare --metric-stat max --md > results.md
      git exp compare --csv --all-columns > runs.csv
    """
    from gitexp.commands.compare import MetricStat, compare_runs

    table = compare_runs(
        open_repo(),
        specs,
        where=where,
        tags=tags,
        names=names,
        include_deleted=include_deleted,
        max_count=max_count,
        metric_stat=cast("MetricStat", metric_stat),
        all_columns=all_columns,
    )
    if fmt == "json":
        echo_json(table.as_json())
        return
    from gitexp.cli.tables import render_table

    cells = [
        [_cell(row.get(column), column, fmt) for column in table.columns] for row in table.rows
    ]
    click.echo(render_table([safe(column) for column in table.columns], cells, fmt))


def _cell(value: Any, column: str, fmt: str) -> str:
    if value is None:
        return "" if fmt == "csv" else "-"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float) and fmt != "csv":
        text = f"{value:.6g}"
    elif isinstance(value, (dict, list)):
        import orjson

        text = orjson.dumps(value).decode()
    else:
        text = str(value)
    text = safe(text)
    if column == "status" and fmt == "text":
        return click.style(text, fg=STATUS_COLOURS.get(text))
    return text

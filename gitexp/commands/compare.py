"""`git exp compare`: runs side by side, one row a run, columns for params and metrics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import pygit2

from gitexp.listing import Run
from gitexp.selection import select_runs

MetricStat = Literal["last", "min", "max"]
METRIC_STATS: tuple[MetricStat, ...] = ("last", "min", "max")
FIXED_COLUMNS = ("id", "status")
MISSING = object()


@dataclass
class Comparison:
    """The table: column names, and one row per run mapping a column to its JSON value."""

    columns: list[str]
    rows: list[dict[str, Any]]
    runs: list[Run]

    def as_json(self) -> list[dict[str, Any]]:
        """The rows as `git exp compare --json` prints them (missing values are null)."""
        return [{column: row.get(column) for column in self.columns} for row in self.rows]


def compare_runs(
    repo: pygit2.Repository,
    specs: Sequence[str] = (),
    *,
    where: str | None = None,
    tags: Sequence[str] = (),
    names: Sequence[str] = (),
    include_deleted: bool = False,
    max_count: int | None = None,
    metric_stat: MetricStat = "last",
    all_columns: bool = False,
) -> Comparison:
    """The runs named by `specs` (in that order) or else all runs newest first, filtered.

    Deleted runs are left out unless named or `include_deleted`. Only the params and metric
    columns whose values differ between the rows are kept unless `all_columns` (or there is
    a single row).
    """
    runs = select_runs(
        repo,
        specs,
        names=names,
        tags=tags,
        where=where,
        include_deleted=include_deleted,
        limit=max_count,
    )
    rows = [_row(run, metric_stat) for run in runs]
    columns = _columns(rows)
    if not all_columns and len(rows) > 1:
        columns = [c for c in columns if c in FIXED_COLUMNS or _differs(rows, c)]
    return Comparison(columns=columns, rows=rows, runs=runs)


def _row(run: Run, metric_stat: MetricStat) -> dict[str, Any]:
    record = run.record or {}
    row: dict[str, Any] = {"id": run.id, "status": run.status}
    params = record.get("params")
    if isinstance(params, dict):
        row.update({f"params.{key}": value for key, value in params.items()})
    metrics = record.get("metrics")
    if isinstance(metrics, dict):
        suffix = "" if metric_stat == "last" else f".{metric_stat}"
        for name, summary in metrics.items():
            if isinstance(summary, dict):
                row[f"{name}{suffix}"] = summary.get(metric_stat)
    return row


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    """id, status, the params columns, then the metric columns, each in first-seen order."""
    seen: dict[str, None] = dict.fromkeys(FIXED_COLUMNS)
    for row in rows:
        seen.update(dict.fromkeys(key for key in row if key.startswith("params.")))
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _differs(rows: list[dict[str, Any]], column: str) -> bool:
    values = {_canonical(row.get(column, MISSING)) for row in rows}
    return len(values) > 1


def _canonical(value: Any) -> bytes:
    if value is MISSING:
        return b"<missing>"
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return repr(value).encode()

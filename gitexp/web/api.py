"""The JSON the dashboard's page asks for (`git exp ui`), as plain data.

Every function takes an open repository and returns what the server sends as JSON; edits go
through the same compare-and-swap cores as `git exp tag` and `git exp note`. Nothing is
precomputed: each request lists the runs again (one pass over refs and notes), so the page
always shows what git has now, including edits made from the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from gitexp import rundir
from gitexp.errors import GitExpError, UsageError
from gitexp.listing import Run, list_runs
from gitexp.runspec import find_run, resolve_run_spec
from gitexp.selection import select_runs

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
DEFAULT_TAIL_BYTES = 64 * 1024
MAX_TAIL_BYTES = 1024 * 1024
MAX_COLUMNS = 8
MAX_COMPARED_RUNS = 20


@dataclass
class RunsQuery:
    """What the runs table asks for: a --where filter, a sort key, and a page."""

    where: str | None = None
    sort: str | None = None
    descending: bool = False
    include_deleted: bool = False
    page: int = 0
    page_size: int = DEFAULT_PAGE_SIZE


def runs_page(repo: pygit2.Repository, query: RunsQuery) -> dict[str, Any]:
    """One page of the runs table, plus the total and the params/metric columns to show.

    Without a sort key the order is `git exp log`'s (newest first); `descending` reverses a
    sorted order. Columns are the params and metrics of the filtered runs, first seen first.
    """
    if query.page < 0 or not 1 <= query.page_size <= MAX_PAGE_SIZE:
        raise UsageError(f"invalid page: page >= 0 and 1 <= size <= {MAX_PAGE_SIZE}")
    runs = select_runs(
        repo,
        where=query.where or None,
        include_deleted=query.include_deleted,
        sort=query.sort or None,
        reverse=query.descending and bool(query.sort),
    )
    start = query.page * query.page_size
    shown = runs[start : start + query.page_size]
    return {
        "total": len(runs),
        "page": query.page,
        "page_size": query.page_size,
        "params_columns": _columns(runs, "params"),
        "metric_columns": _columns(runs, "metrics"),
        "runs": [table_row(run) for run in shown],
    }


def table_row(run: Run) -> dict[str, Any]:
    """A run as one row of the table: identity, status, timing, params, metrics, labels."""
    record = run.record or {}
    metrics = _mapping(record, "metrics")
    return {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "deleted": run.deleted,
        "started_at": record.get("started_at"),
        "duration_s": record.get("duration_s"),
        "commit": run.commit,
        "params": _mapping(record, "params"),
        "metrics": {
            name: summary.get("last")
            for name, summary in metrics.items()
            if isinstance(summary, dict)
        },
        "tags": run.tags,
        "message": record.get("message") if isinstance(record.get("message"), str) else None,
        "problem": run.problem,
    }


def run_details(repo: pygit2.Repository, spec: str, env_logdir: str | None) -> dict[str, Any]:
    """The run page: the whole record, its artifacts, and what its run directory holds."""
    from gitexp.commands.artifact import list_artifacts

    run = find_run(repo, spec)
    directory = run_dir(repo, run, env_logdir)
    try:
        artifacts = [
            artifact.as_json()
            for artifact in list_artifacts(repo, run.id, env_logdir=env_logdir)[1]
        ]
    except GitExpError:
        artifacts = []
    return {
        "id": run.id,
        "status": run.status,
        "record": run.as_json(),
        "artifacts": artifacts,
        "has_output": _is_file(directory, rundir.OUTPUT_LOG),
        "has_metrics": _is_file(directory, rundir.METRICS_FILE),
    }


def output_tail(
    repo: pygit2.Repository,
    spec: str,
    env_logdir: str | None,
    offset: int | None = None,
    max_bytes: int = DEFAULT_TAIL_BYTES,
) -> dict[str, Any]:
    """The run's output.log from `offset` (or its last `max_bytes` when None), at most
    `max_bytes`; `offset` in the answer is where to ask from next time.

    A cut through a multi-byte character is decoded with replacement characters.
    """
    if not 1 <= max_bytes <= MAX_TAIL_BYTES or (offset is not None and offset < 0):
        raise UsageError(f"invalid tail: offset >= 0 and 1 <= max <= {MAX_TAIL_BYTES}")
    run = find_run(repo, spec)
    directory = run_dir(repo, run, env_logdir)
    try:
        if directory is None:
            raise FileNotFoundError(rundir.OUTPUT_LOG)
        with (directory / rundir.OUTPUT_LOG).open("rb") as handle:
            size = handle.seek(0, 2)
            start = max(0, size - max_bytes) if offset is None else min(offset, size)
            handle.seek(start)
            data = handle.read(max_bytes)
    except OSError:
        size, start, data = 0, 0, b""
    return {
        "id": run.id,
        "status": run.status,
        "start": start,
        "offset": start + len(data),
        "size": size,
        "text": data.decode("utf-8", "replace"),
    }


def metric_curves(
    repo: pygit2.Repository, specs: Sequence[str], env_logdir: str | None
) -> dict[str, Any]:
    """Per run, per metric, the points `[step, value]` (gitexp.series: thinned to about 2,000
    points keeping spikes; a null value is a gap in the curve)."""
    from gitexp.series import downsample, metric_series

    runs = _resolve_many(repo, specs)
    answer = []
    for run in runs:
        series = metric_series(run_dir(repo, run, env_logdir))
        curves = {
            name: [
                [step, None if math.isnan(value) else value] for step, value in downsample(points)
            ]
            for name, points in series.items()
        }
        answer.append({"id": run.id, "curves": curves})
    return {"runs": answer}


def compare_view(repo: pygit2.Repository, specs: Sequence[str]) -> dict[str, Any]:
    """The compare view's table: `git exp compare` of the runs (only columns that differ),
    with the min and max of each metric beside its last value."""
    from gitexp.commands.compare import compare_runs

    if not 1 <= len(specs) <= MAX_COMPARED_RUNS:
        raise UsageError(f"compare 1 to {MAX_COMPARED_RUNS} runs")
    last = compare_runs(repo, specs)
    rows = last.as_json()
    fixed = ("id", "status")
    metric_names = [c for c in last.columns if c not in fixed and not c.startswith("params.")]
    for stat in ("min", "max"):
        extra = compare_runs(repo, specs, metric_stat=stat, all_columns=True)
        for row, other in zip(rows, extra.as_json(), strict=True):
            row.update({f"{name}.{stat}": other.get(f"{name}.{stat}") for name in metric_names})
    columns = [c for c in last.columns if c in fixed or c.startswith("params.")]
    for name in metric_names:
        columns += [name, f"{name}.min", f"{name}.max"]
    return {"columns": columns, "rows": rows}


def change_run_tags(
    repo: pygit2.Repository,
    spec: str,
    add: Sequence[str],
    remove: Sequence[str],
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """Add and remove tags through `git exp tag`'s core; returns the run's new table row."""
    from gitexp.commands.tag import change_tags

    change_tags(repo, spec, environ, add=add, remove=remove)
    return table_row(find_run(repo, spec))


def change_run_message(
    repo: pygit2.Repository, spec: str, message: str | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Set (or with None or "" clear) the message through `git exp note`'s core."""
    from gitexp.commands.note import set_message

    set_message(repo, spec, message or None, environ)
    return table_row(find_run(repo, spec))


def run_dir(repo: pygit2.Repository, run: Run, env_logdir: str | None) -> Path | None:
    """Where this run's output lives on this machine, or None (gitexp.rundir.locate_run_dir:
    a record fetched from someone's remote cannot point the dashboard at other files)."""
    return rundir.locate_run_dir(repo, run.name, run.run_id, env_logdir)


def _is_file(directory: Path | None, name: str) -> bool:
    return directory is not None and (directory / name).is_file()


def _resolve_many(repo: pygit2.Repository, specs: Sequence[str]) -> list[Run]:
    if not 1 <= len(specs) <= MAX_COMPARED_RUNS:
        raise UsageError(f"name 1 to {MAX_COMPARED_RUNS} runs")
    every = list_runs(repo)
    return [resolve_run_spec(every, spec) for spec in specs]


def _columns(runs: list[Run], field: str) -> list[str]:
    seen: dict[str, None] = {}
    for run in runs:
        seen.update(dict.fromkeys(_mapping(run.record or {}, field)))
        if len(seen) >= MAX_COLUMNS:
            break
    return list(seen)[:MAX_COLUMNS]


def _mapping(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}

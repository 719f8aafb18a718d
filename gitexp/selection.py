"""Selecting runs: the one filter, order and limit behind log, compare, export, plot, the
notebook API and the dashboard."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pygit2

from gitexp.errors import UsageError
from gitexp.listing import Run, list_runs
from gitexp.query import MISSING, compile_where, lookup, parse_path, sort_key
from gitexp.runspec import resolve_run_spec

MISSING_RANK = 2  # query.sort_key ranks numbers 0, strings 1, missing values 2
SORTABLE_FIELDS = ("id", "name", "ref", "commit", "status", "problem", "started", "age")


def select_runs(
    repo: pygit2.Repository,
    specs: Sequence[str] = (),
    *,
    names: Sequence[str] = (),
    statuses: Sequence[str] = (),
    tags: Sequence[str] = (),
    where: str | None = None,
    since: float | None = None,
    include_deleted: bool = False,
    sort: str | None = None,
    reverse: bool = False,
    limit: int | None = None,
) -> list[Run]:
    """The runs `specs` name (in that order, each once), or else every run newest first,
    that match every filter given (a filter given several values matches any).

    Runs marked deleted are left out unless named or `include_deleted`. `since` is a Unix
    time; `sort` a record path (ascending, missing values last) applied before `reverse`
    and `limit`.
    """
    predicate = compile_where(where) if where else None
    every = list_runs(repo)
    if specs:
        runs = unique_runs([resolve_run_spec(every, spec) for spec in specs])
    elif include_deleted:
        runs = every
    else:
        runs = [run for run in every if not run.deleted]
    if names or statuses or tags or since is not None:
        runs = [run for run in runs if _matches(run, names, statuses, tags, since)]
    if predicate is not None:
        runs = [run for run in runs if predicate(run.as_json())]
    if sort:
        return limited(sort_runs(runs, sort, reverse), False, limit)
    return limited(runs, reverse, limit)


def unique_runs(runs: list[Run]) -> list[Run]:
    """`runs` without repeats (one run named twice), first seen first."""
    by_ref: dict[str, Run] = {}
    for run in runs:
        by_ref.setdefault(run.ref, run)
    return list(by_ref.values())


def limited(items: list[Any], reverse: bool, limit: int | None) -> list[Any]:
    """`items` reversed (in place) when asked, then cut to the first `limit`."""
    if reverse:
        items.reverse()
    return items if limit is None else items[:limit]


def sort_runs(runs: list[Run], key: str, reverse: bool = False) -> list[Run]:
    """Runs ordered by the record value at `key`, ascending (or descending with `reverse`);
    runs without a value come last either way."""
    from gitexp.record import RECORD_FIELDS

    path = parse_path(key)
    if path[0] not in RECORD_FIELDS and path[0] not in SORTABLE_FIELDS:
        raise UsageError(
            f"unknown sort key '{key}': use a record field such as started_at, duration_s, "
            "status, params.<name> or metrics.<name>.max"
        )
    records = [run.as_json() for run in runs]
    if runs and all(lookup(record, path) is MISSING for record in records):
        raise UsageError(f"unknown sort key '{key}': no listed run has it")
    key_of = sort_key(path)
    keys = [key_of(record) for record in records]
    present = [i for i in range(len(runs)) if keys[i][0] < MISSING_RANK]
    absent = [i for i in range(len(runs)) if keys[i][0] >= MISSING_RANK]
    present.sort(key=lambda i: keys[i], reverse=reverse)
    return [runs[i] for i in present + absent]


def _matches(
    run: Run,
    names: Sequence[str],
    statuses: Sequence[str],
    tags: Sequence[str],
    since: float | None,
) -> bool:
    if names and run.name not in names:
        return False
    if statuses and run.status not in statuses:
        return False
    if tags and not set(tags) & set(run.tags):
        return False
    return since is None or run.started >= since

"""`git exp log`: list runs, newest first (or sorted by any record field)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pygit2

from gitexp.errors import UsageError
from gitexp.listing import L_DELETED, LogEntry, Run, list_runs, log_entries
from gitexp.query import MISSING, compile_where, lookup, parse_path, sort_key

MISSING_RANK = 2  # query.sort_key ranks numbers 0, strings 1, missing values 2
SORTABLE_FIELDS = ("id", "name", "ref", "commit", "status", "problem", "started", "age")


def log_runs(
    repo: pygit2.Repository,
    names: Sequence[str] = (),
    statuses: Sequence[str] = (),
    tags: Sequence[str] = (),
    max_count: int | None = None,
    *,
    where: str | None = None,
    since: float | None = None,
    include_deleted: bool = False,
    sort: str | None = None,
    reverse: bool = False,
) -> list[Run]:
    """The runs matching every filter given (a filter given several values matches any).

    `since` is a Unix time; `sort` a record path (ascending, missing values last) applied
    before `reverse` and `max_count`.
    """
    predicate = compile_where(where) if where else None
    runs = list_runs(repo)
    if names or statuses or tags or since is not None:
        runs = [
            run for run in runs if _selected(run, names, statuses, tags, since, include_deleted)
        ]
    elif not include_deleted:
        runs = [run for run in runs if not run.deleted]
    if predicate is not None:
        runs = [run for run in runs if predicate(run.as_json())]
    if sort:
        return _limited(sort_runs(runs, sort, reverse), False, max_count)
    return _limited(runs, reverse, max_count)


def plain_log(
    repo: pygit2.Repository,
    max_count: int | None = None,
    *,
    include_deleted: bool = False,
    reverse: bool = False,
) -> list[LogEntry]:
    """What `log_runs` selects when nothing filters or sorts, as the rows `git exp log`
    prints (listing.LogEntry): from the listing cache, without a Run object per run."""
    entries = log_entries(repo)
    if not include_deleted:
        entries = [entry for entry in entries if not entry[L_DELETED]]
    return _limited(entries, reverse, max_count)


def _limited(items: list[Any], reverse: bool, max_count: int | None) -> list[Any]:
    if reverse:
        items.reverse()
    return items if max_count is None else items[:max_count]


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


def _selected(
    run: Run,
    names: Sequence[str],
    statuses: Sequence[str],
    tags: Sequence[str],
    since: float | None,
    include_deleted: bool,
) -> bool:
    if run.deleted and not include_deleted:
        return False
    if names and run.name not in names:
        return False
    if statuses and run.status not in statuses:
        return False
    if tags and not set(tags) & set(run.tags):
        return False
    return since is None or run.started >= since

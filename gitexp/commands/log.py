"""`git exp log`: list runs, newest first."""

from __future__ import annotations

from collections.abc import Sequence

import pygit2

from gitexp.listing import Run, list_runs


def log_runs(
    repo: pygit2.Repository,
    names: Sequence[str] = (),
    statuses: Sequence[str] = (),
    tags: Sequence[str] = (),
    max_count: int | None = None,
) -> list[Run]:
    """The runs matching every filter given (a filter given several values matches any)."""
    selected: list[Run] = []
    if max_count == 0:
        return selected
    for run in list_runs(repo):
        if names and run.name not in names:
            continue
        if statuses and run.status not in statuses:
            continue
        if tags and not set(tags) & set(_tags(run)):
            continue
        selected.append(run)
        if max_count is not None and len(selected) >= max_count:
            break
    return selected


def _tags(run: Run) -> list[str]:
    tags = (run.record or {}).get("tags")
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []

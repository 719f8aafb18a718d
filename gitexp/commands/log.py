"""`git exp log`: list runs, newest first (or sorted by any record field).

A filtered or sorted log is gitexp.selection.select_runs; the plain one is `plain_log`.
"""

from __future__ import annotations

import pygit2

from gitexp.listing import L_DELETED, LogEntry, log_entries
from gitexp.selection import limited


def plain_log(
    repo: pygit2.Repository,
    max_count: int | None = None,
    *,
    include_deleted: bool = False,
    reverse: bool = False,
) -> list[LogEntry]:
    """What `select_runs` selects when nothing filters or sorts, as the rows `git exp log`
    prints (listing.LogEntry): from the listing cache, without a Run object per run."""
    entries = log_entries(repo)
    if not include_deleted:
        entries = [entry for entry in entries if not entry[L_DELETED]]
    return limited(entries, reverse, max_count)

"""`git exp rm` and `git exp restore`: the deletion mark (a time; nothing is erased).

`git exp gc` is what physically removes runs, and only runs carrying this mark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pygit2

from gitexp.deletions import remember_deletion
from gitexp.record import now_iso, update_record
from gitexp.repository import identity
from gitexp.selection import select_runs


@dataclass
class MarkChange:
    """One run's deletion mark after `rm`/`restore`, and whether it changed."""

    run: str
    changed: bool
    deleted: str | None


def mark_deleted(
    repo: pygit2.Repository, specs: Sequence[str], deleted: bool, environ: Mapping[str, str]
) -> list[MarkChange]:
    """Set (`deleted`) or clear the mark on every run named; all specs resolve before any write."""
    signature = identity(repo, environ)
    changes = []
    for run in select_runs(repo, specs):
        changed: list[bool] = []

        def mutate(record: dict[str, Any], changed: list[bool] = changed) -> None:
            changed[:] = [bool(record.get("deleted")) != deleted]
            if changed[0]:
                record["deleted"] = now_iso() if deleted else None

        saved = update_record(repo, run.commit, mutate, signature)
        if deleted and isinstance(saved.get("deleted"), str):
            remember_deletion(repo, run.commit, saved["deleted"])  # gc collects only these
        changes.append(MarkChange(run.id, changed[0], saved.get("deleted")))
    return changes

"""`git exp tag`: add and remove a run's tags (compare-and-swap, safe while it runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pygit2

from gitexp.labels import validate_tags
from gitexp.record import list_field, update_record
from gitexp.repository import identity
from gitexp.runspec import find_run


def change_tags(
    repo: pygit2.Repository,
    spec: str,
    environ: Mapping[str, str],
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
) -> dict[str, Any]:
    """Add and remove tags on a run (kept in the order first added); returns the record."""
    run = find_run(repo, spec)
    wanted, unwanted = validate_tags(add), validate_tags(remove)

    def mutate(record: dict[str, Any]) -> None:
        tags = [tag for tag in list_field(record, "tags") if tag not in unwanted]
        record["tags"] = tags + [tag for tag in wanted if tag not in tags]

    return update_record(repo, run.commit, mutate, identity(repo, environ))

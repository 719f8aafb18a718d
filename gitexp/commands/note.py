"""`git exp note`: a run's message, and timestamped annotations added later.

Every change is a compare-and-swap read-modify-write of the record (record.update_record),
so it may happen while the run is still going without losing the run's own final update.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pygit2

from gitexp.errors import GitExpError
from gitexp.record import list_field, now_iso, update_record
from gitexp.repository import identity
from gitexp.runspec import find_run

MAX_MESSAGE_LENGTH = 64 * 1024


def set_message(
    repo: pygit2.Repository,
    spec: str,
    message: str | None,
    environ: Mapping[str, str],
    append: bool = False,
) -> dict[str, Any]:
    """Set a run's message (None clears it), or with `append` add a timestamped annotation.

    Returns the saved record.
    """
    run = find_run(repo, spec)
    if message is not None:
        _check_message(message)
    author = identity(repo, environ)

    def mutate(record: dict[str, Any]) -> None:
        if append:
            entry = {"time": now_iso(), "author": author.name, "text": message}
            record["annotations"] = [*list_field(record, "annotations"), entry]
        else:
            record["message"] = message
            record["message_at"] = now_iso()

    return update_record(repo, run.commit, mutate, author)


def _check_message(message: str) -> None:
    if len(message) > MAX_MESSAGE_LENGTH:
        raise GitExpError(f"the message is longer than {MAX_MESSAGE_LENGTH} characters")
    if "\x00" in message:
        raise GitExpError("the message contains a NUL character")

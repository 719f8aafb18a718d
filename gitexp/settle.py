"""Ending the record of a run whose supervisor could not (a full disk, a stale lock).

When the program ends, the supervisor writes how into the run directory's exit.json before
it writes the final record. If that record write fails, the record stays `running` and the
supervisor exits; the next gitexp command that lists runs finds the run `crashed` (its
supervisor is gone) and writes the final record from exit.json.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import pygit2

from gitexp import rundir, store
from gitexp.errors import GitExpError
from gitexp.ids import parse_run_ref
from gitexp.launch import finish_fields
from gitexp.record import RunRecord, dump_record, load_record
from gitexp.repository import identity
from gitexp.runner import ProcessOutcome

OUTCOME_FIELDS = {field.name for field in dataclasses.fields(ProcessOutcome)}


def settle_runs(repo: pygit2.Repository, commits: Iterable[str]) -> bool:
    """End the records of the crashed runs `commits` that left an exit.json; True if any.

    A repository that cannot be written now (still full, read-only) is left as it is.
    """
    settled = False
    for commit in commits:
        try:
            settled |= _settle(repo, commit)
        except (GitExpError, OSError, ValueError, KeyError, TypeError, pygit2.GitError):
            return settled  # a listing must never fail for it: the next one tries again
    return settled


def _settle(repo: pygit2.Repository, commit: str) -> bool:
    record = _running_record(store.read_note(repo, commit))
    if record is None:
        return False
    final = _final_fields(repo, record, commit)
    if final is None:
        return False

    def change(old: bytes | None) -> bytes:
        current = _running_record(old)
        if current is None:  # it ended meanwhile: keep what is there
            raise _AlreadyEnded
        current.update(final)
        return dump_record(current)

    try:
        store.update_note(repo, commit, change, identity(repo, {}))
    except _AlreadyEnded:
        return False
    run_dir = _run_dir(repo, record)
    if run_dir is not None:
        rundir.remove_exit_file(run_dir)
    return True


def _run_dir(repo: pygit2.Repository, record: dict[str, Any]) -> Path | None:
    """This clone's directory of the run (rundir.locate_run_dir): never the path a record
    names, which is data. A run recorded under GITEXP_LOGDIR is settled by `git exp run`'s
    own retry only; listings do not see that variable."""
    parsed = parse_run_ref(record["ref"]) if isinstance(record.get("ref"), str) else None
    return rundir.locate_run_dir(repo, *parsed, None) if parsed else None


def _final_fields(repo: pygit2.Repository, record: dict[str, Any], commit: str) -> RunRecord | None:
    """The supervisor's final fields rebuilt from exit.json, if it is this run's."""
    run_dir = _run_dir(repo, record)
    if run_dir is None:
        return None
    facts = rundir.read_exit_file(run_dir)
    # Written by this run's own supervisor: a record naming another run's directory (a
    # record from elsewhere, hand-edited) finds that run's id there, not its own.
    if facts is None or facts.get("id") != record.get("id") or facts.get("commit") != commit:
        return None
    outcome = _outcome(facts.get("outcome"))
    failure = facts.get("failure")
    if outcome is None and not isinstance(failure, dict):
        return None
    return finish_fields(
        cast(RunRecord, record), run_dir, outcome, failure if isinstance(failure, dict) else None,
        facts.get("python") is True,
    )  # fmt: skip


def _outcome(value: object) -> ProcessOutcome | None:
    if not isinstance(value, dict) or set(value) != OUTCOME_FIELDS:
        return None
    try:
        return ProcessOutcome(**value)
    except TypeError:
        return None


def _running_record(data: bytes | None) -> dict[str, Any] | None:
    try:
        record = load_record(data) if data is not None else None
    except ValueError:
        return None
    return record if record is not None and record.get("status") == "running" else None


class _AlreadyEnded(Exception):
    """Abandons the write: the record is no longer `running`."""

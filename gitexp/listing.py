"""Reading runs back: list every run in one pass and resolve what users type to name one."""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

import pygit2

from gitexp import store
from gitexp.errors import AmbiguousRunError, InvalidNameError, UnknownRunError
from gitexp.ids import RUN_ID_PATTERN, parse_run_ref, printable
from gitexp.record import effective_status, load_record

# A ref whose note is not written yet is a run starting right now, unless it is older than this.
UNRECORDED_GRACE_SECONDS = 60
MAX_SPEC_LENGTH = 256
RELATIVE_SPEC = re.compile(r"@(?:~(?P<back>\d+))?\Z")
SPEC_CHARACTERS = re.compile(r"[A-Za-z0-9._/@~-]+\Z")


@dataclass
class Run:
    """One run: its ref, its snapshot commit, and its record (None when unreadable)."""

    ref: str
    name: str
    run_id: str
    commit: str
    record: dict[str, Any] | None
    status: str
    problem: str | None = None
    started: float = 0.0

    @property
    def id(self) -> str:
        """The run's full name, `<name>/<id>`."""
        return f"{self.name}/{self.run_id}"

    @property
    def deleted(self) -> bool:
        """Marked deleted by `git exp rm` (hidden from listings unless asked for)."""
        return bool((self.record or {}).get("deleted"))

    @property
    def tags(self) -> list[str]:
        tags = (self.record or {}).get("tags")
        return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []

    def as_json(self) -> dict[str, Any]:
        """The record as `--json` prints it: with its ref, commit and effective status."""
        data: dict[str, Any] = dict(self.record or {})
        data.update(id=self.id, name=self.name, ref=self.ref, commit=self.commit)
        data["status"] = self.status
        if self.problem:
            data["problem"] = self.problem
        return data


def list_runs(repo: pygit2.Repository, hostname: str | None = None) -> list[Run]:
    """Every run, newest first, read in one pass over the refs and the notes tree."""
    hostname = hostname or socket.gethostname()
    notes = store.read_all_notes(repo)
    runs = []
    for ref, commit in store.list_run_refs(repo):
        parsed = parse_run_ref(ref)
        if parsed is None:
            continue
        runs.append(_make_run(repo, ref, parsed, commit, notes.get(commit), hostname))
    runs.sort(key=lambda run: (run.started, run.run_id), reverse=True)
    return runs


def find_run(repo: pygit2.Repository, spec: str) -> Run:
    """The run `spec` names in `repo`."""
    return resolve_run_spec(list_runs(repo), spec)


def resolve_run_spec(runs: list[Run], spec: str) -> Run:
    """The one run `spec` names (see docs/format.md for the forms); `runs` newest first.

    `@` and `@~N` count the runs `git exp log` shows, so deleted runs are skipped; an id names
    a deleted run too.
    """
    _check_spec(spec)
    relative = RELATIVE_SPEC.match(spec)
    if relative:
        back = int(relative.group("back") or 0)
        runs = [run for run in runs if not run.deleted]
        if back >= len(runs):
            total = f"{len(runs)} run" + ("" if len(runs) == 1 else "s")
            raise UnknownRunError(f"unknown run '{spec}': there are only {total}")
        return runs[back]
    matches = _matching(runs, spec)
    if not matches:
        raise UnknownRunError(f"unknown run '{spec}' (git exp log lists runs)")
    if len(matches) > 1:
        shown = ", ".join(run.id for run in matches[:10])
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise AmbiguousRunError(f"ambiguous run '{spec}': it matches {shown}{more}")
    return matches[0]


def _matching(runs: list[Run], spec: str) -> list[Run]:
    if spec.startswith("refs/"):
        return [run for run in runs if run.ref == spec]
    if "/" in spec:
        name, _, rest = spec.partition("/")
        exact = [run for run in runs if run.name == name and run.run_id == rest]
        return exact or [run for run in runs if run.name == name and run.run_id.endswith(rest)]
    exact = [run for run in runs if run.run_id == spec]
    return exact or [run for run in runs if run.run_id.endswith(spec)]


def _check_spec(spec: str) -> None:
    if not spec or len(spec) > MAX_SPEC_LENGTH or not SPEC_CHARACTERS.match(spec):
        shown = printable(spec[:60]) + ("..." if len(spec) > 60 else "")
        raise InvalidNameError(
            f"invalid run '{shown}': name a run by <name>/<id>, <id>, a suffix of it, @ or @~N"
        )


def _make_run(
    repo: pygit2.Repository,
    ref: str,
    parsed: tuple[str, str],
    commit: str,
    note: bytes | None,
    hostname: str,
) -> Run:
    name, run_id = parsed
    run = Run(ref=ref, name=name, run_id=run_id, commit=commit, record=None, status="unknown")
    if note is None:
        committed = _commit_time(repo, commit)
        run.started = committed
        fresh = time.time() - committed < UNRECORDED_GRACE_SECONDS
        run.status = "running" if fresh else "crashed"
        run.problem = "no record was written for this run"
        return run
    try:
        run.record = load_record(note)
    except ValueError as exc:
        run.status = "unreadable"
        run.problem = f"the record is not valid JSON: {exc}"
        run.started = _commit_time(repo, commit)
        return run
    run.status = effective_status(run.record, hostname)
    run.started = _started(run.record) or _commit_time(repo, commit)
    return run


def _started(record: dict[str, Any]) -> float | None:
    value = record.get("started_at")
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _commit_time(repo: pygit2.Repository, commit: str) -> float:
    # Refs under refs/experiments/ can be made by hand: a tag or a blob must not break a listing.
    try:
        return float(repo[commit].peel(pygit2.Commit).commit_time)
    except (KeyError, ValueError, pygit2.GitError):
        return 0.0


__all__ = ["RUN_ID_PATTERN", "Run", "list_runs", "resolve_run_spec"]

"""`git exp gc`: physically remove the runs marked deleted, and nothing else.

A run goes only when its record carries the deletion mark of `git exp rm`: its ref and its
run directory. The snapshot commits become unreachable; `git gc` prunes them later, on git's
own schedule. The record itself stays, marked: pushed, it tells the remote and every other
clone that the run was deleted (a record removed from the notes would leave the remote's ref
without one), and it tells `git exp pull` not to bring the run back here. (Removing it would
not make the run private anyway: the notes history keeps every record, and a push sends it.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from gitexp import rundir, store
from gitexp.deletions import deleted_here
from gitexp.listing import Run, list_runs
from gitexp.record import load_record
from gitexp.worktrees import prune_abandoned

MARKED_ELSEWHERE = (
    "marked deleted by another clone (it came with a pull), and its run directory is here: "
    "left alone (`git exp rm {run}` here collects it)"
)


@dataclass
class GcRun:
    """One run gc removes (or would remove, in a dry run)."""

    id: str
    ref: str
    commit: str
    deleted: str
    run_dir: str | None = None  # the directory removed with the run, if there is one
    bytes: int = 0
    run_dir_kept: str | None = None  # why a recorded run directory is left alone

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ref": self.ref,
            "commit": self.commit,
            "deleted": self.deleted,
            "run_dir": self.run_dir,
            "bytes": self.bytes,
            "run_dir_kept": self.run_dir_kept,
        }


@dataclass
class GcSkip:
    """A run marked deleted that gc leaves in place, and why."""

    id: str
    reason: str
    # Seconds since the run was marked, when it is kept for being marked too recently.
    marked_ago_s: float | None = None


@dataclass
class GcReport:
    """What `git exp gc` did, or would do with `dry_run`."""

    dry_run: bool
    removed: list[GcRun] = field(default_factory=list)
    skipped: list[GcSkip] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(run.bytes for run in self.removed)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "runs_removed": len(self.removed),
            "bytes_freed": self.bytes_freed,
            "removed": [run.as_json() for run in self.removed],
            "skipped": [{"id": skip.id, "reason": skip.reason} for skip in self.skipped],
            "problems": self.problems,
        }


def collect_garbage(
    repo: pygit2.Repository,
    *,
    older_than: float = 0.0,
    dry_run: bool = False,
    env_logdir: str | None = None,
    now: float | None = None,
) -> GcReport:
    """Remove the runs marked deleted (at least `older_than` seconds ago, when given).

    A marked run that is still running is skipped, and so is one whose run directory is
    here when the mark was not made here (`gitexp.deletions`). Run directories are removed
    only when the record's `run_dir` is exactly `<logdir root>/<name>/<id>` (symlinks
    resolved): records can come from other people's remotes and must never steer a deletion
    elsewhere.
    """
    now = time.time() if now is None else now
    report = GcReport(dry_run=dry_run)
    root = rundir.logdir_root(repo, env_logdir)
    marked_here: set[tuple[str, str]] | None = None
    if not dry_run:
        prune_abandoned(repo)  # a rerun's temporary worktree, left by a kill -9
    for run in list_runs(repo):
        if not run.deleted:  # the summary: no record is read for the runs that stay
            continue
        skip = _reason_to_keep(run, older_than, now)
        if skip is not None:
            report.skipped.append(skip)
            continue
        planned = _plan(run, root)
        if planned.run_dir is not None:
            marked_here = deleted_here(repo) if marked_here is None else marked_here
            if (run.commit, planned.deleted) not in marked_here:
                report.skipped.append(GcSkip(run.id, MARKED_ELSEWHERE.format(run=run.id)))
                continue
        report.removed.append(planned)
    if dry_run or not report.removed:
        return report
    report.removed = _delete_refs(repo, report.removed, report.skipped)
    for removed in report.removed:
        _remove_run_dir(removed, report.problems)
    return report


def _reason_to_keep(run: Run, older_than: float, now: float) -> GcSkip | None:
    """Why a run marked deleted stays, or None when it goes."""
    deleted = (run.record or {}).get("deleted")
    if run.status == "running":
        return GcSkip(run.id, "still running; gc removes it once it has finished")
    if older_than <= 0:
        return None
    marked = _timestamp(deleted)
    if marked is None:
        reason = f"its deletion time {deleted!r} cannot be read (--older-than 0 removes it)"
        return GcSkip(run.id, reason)
    if now - marked < older_than:
        return GcSkip(run.id, "not older than the limit", now - marked)
    return None


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.astimezone()).timestamp()


def _plan(run: Run, root: Path) -> GcRun:
    record = run.record or {}
    planned = GcRun(run.id, run.ref, run.commit, str(record.get("deleted")))
    recorded = record.get("run_dir")
    if not isinstance(recorded, str) or not recorded:
        return planned
    expected = os.path.join(os.path.realpath(root), run.name, run.run_id)
    if os.path.realpath(recorded) != expected or os.path.islink(recorded):
        planned.run_dir_kept = f"{recorded} is not here ({expected}); left alone"
    elif rundir.run_dir_here(root, run.name, run.run_id) is not None:
        planned.run_dir = expected
        planned.bytes = directory_size(Path(expected))
    return planned


def directory_size(path: Path) -> int:
    """Bytes of the regular files under `path` (each inode once; symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for parent, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(parent, name))
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def _delete_refs(
    repo: pygit2.Repository, planned: Iterable[GcRun], skipped: list[GcSkip]
) -> list[GcRun]:
    """Delete each planned run's ref if its record is still marked and its ref unmoved.

    The record is read again just before: a `git exp restore` since the listing wins.
    """
    deleted = []
    for run in planned:
        note = store.read_note(repo, run.commit)
        if not _still_marked(note):
            skipped.append(GcSkip(run.id, "its deletion mark was cleared meanwhile"))
        elif store.delete_run_ref(repo, run.ref, run.commit):
            deleted.append(run)
        else:
            skipped.append(GcSkip(run.id, "its ref changed meanwhile"))
    return deleted


def _still_marked(note: bytes | None) -> bool:
    if note is None:
        return False
    try:
        return bool(load_record(note).get("deleted"))
    except ValueError:
        return False


def _remove_run_dir(run: GcRun, problems: list[str]) -> None:
    if run.run_dir is None:
        return
    try:
        shutil.rmtree(run.run_dir)
    except OSError as exc:
        problems.append(f"could not remove {run.run_dir}: {exc.strerror or exc}")
        run.bytes = 0
        return
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(run.run_dir))  # the name's directory, once it is empty

"""Claiming a run: a new, unique run id, its snapshot commit and its ref (never forced)."""

from __future__ import annotations

import datetime as dt
import fcntl
import shlex
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pygit2

from gitexp import ids, store
from gitexp.record import valid_unicode
from gitexp.repository import common_dir
from gitexp.snapshot import SnapshotTree, commit_snapshot


def claim_run_ref(
    repo: pygit2.Repository,
    name: str,
    snapshot: SnapshotTree,
    command: list[str],
    signature: pygit2.Signature,
    extra_parents: Sequence[pygit2.Oid] = (),
) -> tuple[str, str]:
    """Commit the snapshot under a new, unique id and create its ref (never forced).

    `extra_parents` follow HEAD as the commit's further parents (a saved index, say).

    The per-name lock only keeps the daily count readable under concurrency; uniqueness
    comes from creating the ref without force.
    """
    today = dt.date.today()
    with _name_lock(repo, name):
        count = _next_count(repo, name, today)
        while True:
            run_id = ids.format_run_id(today, count, ids.random_suffix())
            message = valid_unicode(f"exp: {name}/{run_id}\n\n{shlex.join(command)}\n")
            with store.writing(repo):
                commit = commit_snapshot(repo, snapshot, message, signature, extra_parents)
            ref = ids.run_ref(name, run_id)
            if store.create_ref(repo, ref, commit):
                return ref, str(commit)


@contextmanager
def _name_lock(repo: pygit2.Repository, name: str) -> Iterator[None]:
    lock_dir = common_dir(repo) / "experiments" / ".locks"
    try:
        lock_dir.mkdir(parents=True, exist_ok=True)
        handle = open(lock_dir / f"{name}.lock", "a+b")  # noqa: SIM115
    except OSError:
        yield  # read-only common dir: counts may repeat, ids stay unique
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the kernel even after kill -9
        yield


def _next_count(repo: pygit2.Repository, name: str, day: dt.date) -> int:
    prefix = f"{ids.REF_PREFIX}{name}/{day:%Y%m%d}."
    counts = [0]
    for ref in store.run_ref_names(repo, prefix):
        parsed = ids.parse_run_ref(ref)
        if parsed:
            counts.append(int(parsed[1].split(".")[1]))
    return max(counts) + 1

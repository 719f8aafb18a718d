"""`git exp fetch` and `git exp pull`: bring a remote's runs and records, never overwriting.

Run refs are fetched only where this clone has no ref of that name (a run is immutable, so
one that exists here already is the same run). The remote's notes land in
`refs/notes/remotes/<remote>/experiments`; `pull` then merges them into ours record by record
(`git fetch` without `+` would accept a non-fast-forward notes update and lose local records).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

import pygit2

from gitexp import rundir, store
from gitexp.errors import GitExpError
from gitexp.gitcmd import remote_refs, run_git
from gitexp.ids import REF_PREFIX, parse_run_ref, printable
from gitexp.listing import deleted_records
from gitexp.repository import default_remote, identity, max_record_size
from gitexp.store import tracking_notes_ref
from gitexp.sync import MergePolicy, NotesMerge, merge_notes


class RemoteNotesError(GitExpError):
    """A remote's notes ref holds something other than a notes commit."""


@dataclass
class FetchResult:
    remote: str
    new_runs: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)  # removed here by gc: not brought back
    records: NotesMerge | None = None


def fetch_runs(
    repo: pygit2.Repository, remote: str | None, environ: Mapping[str, str]
) -> FetchResult:
    """Fetch the remote's run refs this clone lacks, and its notes into the tracking ref.

    A run `git exp gc` collected here (its record, marked deleted, is here; its ref is not)
    is not fetched back: it would return as a run to collect again.
    """
    return _fetch_runs(repo, remote, environ)[0]


def _fetch_runs(
    repo: pygit2.Repository, remote: str | None, environ: Mapping[str, str]
) -> tuple[FetchResult, dict[str, str]]:
    """fetch_runs, and the remote's run refs (ref -> commit)."""
    remote = default_remote(repo, remote)
    result = FetchResult(remote)
    theirs = remote_refs(repo, remote, [f"{REF_PREFIX}*", store.NOTES_REF], environ)
    ours = dict(store.list_run_refs(repo))
    collected = deleted_records(repo) - set(ours.values())  # collected here by gc
    refspecs = []
    notes_before = store.ref_target(repo, tracking_notes_ref(remote))
    for ref, oid in sorted(theirs.items()):
        if ref == store.NOTES_REF:
            refspecs.append(f"+{ref}:{tracking_notes_ref(remote)}")
        elif parse_run_ref(ref) is None:
            continue
        elif ref not in ours and oid in collected:
            result.collected.append(ref[len(REF_PREFIX) :])
        elif ref not in ours:
            refspecs.append(f"{ref}:{ref}")
            result.new_runs.append(ref[len(REF_PREFIX) :])
        elif ours[ref] != oid:
            result.conflicts.append(ref[len(REF_PREFIX) :])
    _fetch(repo, remote, refspecs, environ)
    _check_fetched_notes(repo, remote, notes_before)
    return result, theirs


def _check_fetched_notes(repo: pygit2.Repository, remote: str, before: str | None) -> None:
    """Refuse a remote notes ref that is not a commit (a blob, a tree): the tracking ref goes
    back to what it was, so nothing else (another remote, a listing) ever reads it."""
    tracking = tracking_notes_ref(remote)
    kind = store.non_commit_kind(repo, tracking)
    if kind is None:
        return
    store.reset_tracking_ref(repo, tracking, before)
    raise RemoteNotesError(
        f"{printable(remote, limit=100)}'s {store.NOTES_REF} is a {kind}, not a notes commit: "
        "its records were not fetched (runs were)"
    )


def _fetch(
    repo: pygit2.Repository, remote: str, refspecs: list[str], environ: Mapping[str, str]
) -> None:
    if refspecs:
        run_git(
            repo,
            ["fetch", "--no-tags", "--no-write-fetch-head", "--stdin", remote],
            environ,
            stdin="\n".join(refspecs) + "\n",
        )


def pull_runs(
    repo: pygit2.Repository, remote: str | None, environ: Mapping[str, str]
) -> FetchResult:
    """fetch_runs, then merge the remote's records into refs/notes/experiments.

    A run collected here that the remote has restored since (its merged record is no longer
    marked deleted) is fetched after all.
    """
    result, theirs = _fetch_runs(repo, remote, environ)
    fetched = [theirs[REF_PREFIX + run] for run in result.new_runs]
    result.records = merge_notes(
        repo,
        tracking_notes_ref(result.remote),
        identity(repo, environ),
        merge_policy(repo, environ),
        fetched,
    )
    if result.collected:
        still_deleted = deleted_records(repo)  # their refs are not here: collected, or restored
        restored = [
            run for run in result.collected if theirs[REF_PREFIX + run] not in still_deleted
        ]
        _fetch(
            repo,
            result.remote,
            [f"{REF_PREFIX}{run}:{REF_PREFIX}{run}" for run in restored],
            environ,
        )
        result.collected = [run for run in result.collected if run not in restored]
        result.new_runs.extend(restored)
    return result


def merge_policy(repo: pygit2.Repository, environ: Mapping[str, str]) -> MergePolicy:
    """Which records this clone recorded (their facts stay), and the largest record taken."""
    root = rundir.logdir_root(repo, environ.get("GITEXP_LOGDIR"))
    hostname = socket.gethostname()
    return MergePolicy(
        recorded_here=lambda record: rundir.recorded_here(record, root, hostname),
        max_record_size=max_record_size(repo),
    )

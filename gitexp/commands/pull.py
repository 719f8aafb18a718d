"""`git exp fetch` and `git exp pull`: bring a remote's runs and records, never overwriting.

Run refs are fetched only where this clone has no ref of that name (a run is immutable, so
one that exists here already is the same run). The remote's notes land in
`refs/notes/remotes/<remote>/experiments`; `pull` then merges them into ours record by record
(`git fetch` without `+` would accept a non-fast-forward notes update and lose local records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pygit2

from gitexp import store
from gitexp.commands.push import default_remote
from gitexp.ids import REF_PREFIX, parse_run_ref
from gitexp.repository import identity
from gitexp.sync import NotesMerge, merge_notes
from gitexp.transport import remote_refs, run_git


@dataclass
class FetchResult:
    remote: str
    new_runs: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)  # removed here by gc: not brought back
    records: NotesMerge | None = None


def tracking_notes_ref(remote: str) -> str:
    return f"refs/notes/remotes/{remote}/experiments"


def fetch_runs(
    repo: pygit2.Repository, remote: str | None, environ: Mapping[str, str]
) -> FetchResult:
    """Fetch the remote's run refs this clone lacks, and its notes into the tracking ref."""
    remote = default_remote(repo, remote)
    result = FetchResult(remote)
    theirs = remote_refs(repo, remote, [f"{REF_PREFIX}*", store.NOTES_REF], environ)
    ours = dict(store.list_run_refs(repo))
    refspecs = []
    for ref, oid in sorted(theirs.items()):
        if ref == store.NOTES_REF:
            refspecs.append(f"+{ref}:{tracking_notes_ref(remote)}")
        elif parse_run_ref(ref) is None:
            continue
        elif ref not in ours:
            refspecs.append(f"{ref}:{ref}")
            result.new_runs.append(ref[len(REF_PREFIX) :])
        elif ours[ref] != oid:
            result.conflicts.append(ref[len(REF_PREFIX) :])
    if refspecs:
        run_git(
            repo,
            ["fetch", "--no-tags", "--no-write-fetch-head", "--stdin", remote],
            environ,
            stdin="\n".join(refspecs) + "\n",
        )
        _drop_runs_collected_here(repo, remote, theirs, result)
    return result


def _drop_runs_collected_here(
    repo: pygit2.Repository, remote: str, theirs: dict[str, str], result: FetchResult
) -> None:
    """Undo the fetch of runs that `git exp gc` removed here since the two sides last met.

    Such a run's record is in the common ancestor of both notes histories but no longer in
    ours: bringing its ref back would make a run with no record that nothing can remove.
    """
    ours_tip = store.notes_tip(repo)
    their_tip = store.notes_tip(repo, tracking_notes_ref(remote))
    if ours_tip is None or their_tip is None:
        return
    base_id = repo.merge_base(ours_tip.id, their_tip.id)
    if base_id is None:
        return
    ours_notes = store.notes_of(repo, ours_tip)
    base_notes = store.notes_of(repo, repo[base_id].peel(pygit2.Commit))
    for run in list(result.new_runs):
        ref = REF_PREFIX + run
        commit = theirs[ref]
        if commit in base_notes and commit not in ours_notes:
            store.delete_run_ref(repo, ref, commit)
            result.new_runs.remove(run)
            result.collected.append(run)


def pull_runs(
    repo: pygit2.Repository, remote: str | None, environ: Mapping[str, str]
) -> FetchResult:
    """fetch_runs, then merge the remote's records into refs/notes/experiments."""
    result = fetch_runs(repo, remote, environ)
    result.records = merge_notes(repo, tracking_notes_ref(result.remote), identity(repo, environ))
    return result

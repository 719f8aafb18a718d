"""Merging run records that changed on two sides (this clone and a remote), field by field.

Rules (docs/sharing.md): tags, annotations, reruns and artifacts are unions; the record of a
run that finished wins over one still `running` (status, metrics, timings, ...); the newest
message wins (by `message_at`); the deletion mark follows the side that changed it since the
common ancestor. Nothing is ever silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitexp import store
from gitexp.record import dump_record, list_field, load_record

UNION_FIELDS = ("tags", "reruns")


def merge_records(
    local: dict[str, Any], remote: dict[str, Any], base: dict[str, Any] | None
) -> dict[str, Any]:
    """One record holding both sides' changes; `base` is the common ancestor's, if known."""
    winner = _winner(local, remote)
    merged = dict(winner)
    for key in UNION_FIELDS:
        merged[key] = _merge_sets(
            list_field(local, key),
            list_field(remote, key),
            list_field(base, key) if base is not None else None,
        )
    merged["annotations"] = _union_by_key(
        list_field(local, "annotations"), list_field(remote, "annotations")
    )
    merged["artifacts"] = _merge_artifacts(local, remote, winner is local)
    newer = max((local, remote), key=lambda r: str(r.get("message_at") or ""))
    merged["message"] = newer.get("message")
    merged["message_at"] = newer.get("message_at")
    merged["deleted"] = _three_way(local.get("deleted"), remote.get("deleted"), base, "deleted")
    return merged


def _winner(local: dict[str, Any], remote: dict[str, Any]) -> dict[str, Any]:
    """The side whose run facts (status, metrics, ...) to keep: the finished one, else local."""
    local_done, remote_done = local.get("status") != "running", remote.get("status") != "running"
    if remote_done and not local_done:
        return remote
    if local_done and remote_done:
        return max((local, remote), key=lambda r: str(r.get("ended_at") or ""))
    return local


def _union(first: list[Any], second: list[Any]) -> list[Any]:
    return first + [item for item in second if item not in first]


def _merge_sets(local: list[Any], remote: list[Any], base: list[Any] | None) -> list[Any]:
    """Both sides' additions since `base`, less what either side removed (`git exp tag -d`);
    the union when there is no common ancestor. Local order first."""
    if base is None:
        return _union(local, remote)
    kept = [item for item in local if item in remote or item not in base]
    return kept + [item for item in remote if item not in local and item not in base]


def _union_by_key(first: list[Any], second: list[Any]) -> list[Any]:
    merged = _union(first, second)
    return sorted(merged, key=lambda e: str(e.get("time")) if isinstance(e, dict) else "")


def _merge_artifacts(local: dict[str, Any], remote: dict[str, Any], local_wins: bool) -> list[Any]:
    entries: dict[str, Any] = {}
    loser, winner = (remote, local) if local_wins else (local, remote)
    for entry in list_field(loser, "artifacts") + list_field(winner, "artifacts"):
        key = entry.get("name") if isinstance(entry, dict) else repr(entry)
        entries[str(key)] = entry
    return list(entries.values())


def _three_way(local: Any, remote: Any, base: dict[str, Any] | None, field: str) -> Any:
    if local == remote:
        return local
    if base is not None:
        if local == base.get(field):
            return remote
        if remote == base.get(field):
            return local
    return local if local is not None else remote  # a mark set on either side is kept


@dataclass
class NotesMerge:
    """What merging a remote's records into ours did."""

    added: int = 0
    merged: int = 0
    unchanged: int = 0
    unreadable: list[str] = field(default_factory=list)
    fast_forward: bool = False


def merge_notes(
    repo: pygit2.Repository,
    remote_notes_ref: str,
    signature: pygit2.Signature,
    wanted: Iterable[str] = (),
) -> NotesMerge:
    """Merge the records under `remote_notes_ref` into refs/notes/experiments, atomically.

    Records only the remote has are added; records both sides changed are merged field by
    field (merge_records). The result is one notes commit whose parents are both tips (or a
    fast-forward), so a later push is a fast-forward. Retries when another writer moves our
    notes meanwhile. The records of the `wanted` commits (runs just fetched) are taken from
    the remote even when our notes already contain theirs but lack those records (removed
    here by hand, e.g. `git notes prune` before the runs arrived).
    """
    wanted = list(wanted)
    theirs = store.notes_tip(repo, remote_notes_ref)
    summary = NotesMerge()
    message = f"Notes merged by 'git exp pull' from {remote_notes_ref}\n"

    def next_commit(ours: pygit2.Commit | None) -> pygit2.Oid | None:
        nonlocal summary
        summary = NotesMerge()
        if theirs is None:
            return None
        if ours is not None and _contains(repo, ours.id, theirs.id):
            missing = _missing_records(repo, ours, theirs, wanted)
            if not missing:
                return None
            summary.added = len(missing)
            return store.notes_commit_with(repo, ours, missing, [], message, signature)
        if ours is None or _contains(repo, theirs.id, ours.id):
            if _fast_forward(ours, theirs, summary) or ours is None:
                return theirs.id
            summary = NotesMerge()  # the remote removed records kept here: merge instead
        changes = _merged_changes(repo, ours, theirs, summary)
        return store.notes_commit_with(repo, ours, changes, [theirs.id], message, signature)

    store.swap_notes(repo, next_commit, "notes: merged by 'git exp pull'")
    return summary


def _missing_records(
    repo: pygit2.Repository, ours: pygit2.Commit, theirs: pygit2.Commit, wanted: list[str]
) -> dict[str, bytes]:
    """Their records of the `wanted` commits that ours lack."""
    missing = {}
    for commit in wanted:
        if store.note_in(repo, ours, commit) is None:
            data = store.note_in(repo, theirs, commit)
            if data is not None:
                missing[commit] = data
    return missing


def _fast_forward(ours: pygit2.Commit | None, theirs: pygit2.Commit, summary: NotesMerge) -> bool:
    """Count what moving to `theirs` adds and updates; False when it would remove a record.

    A record the remote no longer has was collected there (`git exp gc`); this clone still
    has the run, so its record stays: a merge keeps it where a fast-forward would drop it.
    """
    our_blobs = dict(store.walk_note_blobs(ours)) if ours is not None else {}
    their_blobs = dict(store.walk_note_blobs(theirs))
    if any(commit not in their_blobs for commit in our_blobs):
        return False
    summary.fast_forward = True
    for commit, blob in their_blobs.items():
        kept = our_blobs.get(commit)
        if kept is None:
            summary.added += 1
        elif kept != blob:
            summary.merged += 1
        else:
            summary.unchanged += 1
    return True


def _merged_changes(
    repo: pygit2.Repository, ours: pygit2.Commit, theirs: pygit2.Commit, summary: NotesMerge
) -> dict[str, bytes]:
    base_id = repo.merge_base(ours.id, theirs.id)
    base = repo[base_id].peel(pygit2.Commit) if base_id is not None else None
    base_notes = store.notes_of(repo, base)
    our_notes, their_notes = store.notes_of(repo, ours), store.notes_of(repo, theirs)
    changes: dict[str, bytes] = {}
    for commit, their_data in their_notes.items():
        our_data = our_notes.get(commit)
        base_data = base_notes.get(commit)
        if our_data is None:
            # Only the remote has it, or it was removed here by hand (`git notes prune`):
            # a record is never dropped while a run may need it.
            changes[commit] = their_data
            summary.added += 1
            continue
        if our_data == their_data or their_data == base_data:
            summary.unchanged += 1
            continue
        if our_data == base_data:
            changes[commit] = their_data
            summary.merged += 1
            continue
        try:
            merged = merge_records(
                load_record(our_data),
                load_record(their_data),
                load_record(base_data) if base_data is not None else None,
            )
        except ValueError:
            summary.unreadable.append(commit)  # keep ours untouched; theirs stays reachable
            continue
        changes[commit] = dump_record(merged)
        summary.merged += 1
    return changes


def _contains(repo: pygit2.Repository, descendant: pygit2.Oid, ancestor: pygit2.Oid) -> bool:
    return descendant == ancestor or repo.descendant_of(descendant, ancestor)

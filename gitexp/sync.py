"""Merging run records that changed on two sides (this clone and a remote), field by field.

Rules (docs/sharing.md): tags, annotations, reruns and artifacts are unions; the record of a
run that finished wins over one still `running` (status, metrics, timings, ...); the newest
message wins (by `message_at`); the deletion mark follows the side that changed it since the
common ancestor. Nothing is ever silently dropped.

A remote is other people's input, so three things never come from it: the facts of a run
this clone recorded (only annotations merge into those), a record that cannot be read in
place of one that can, and a record larger than `exp.maxRecordSize`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitexp import store
from gitexp.record import dump_record, list_field, load_record
from gitexp.repository import DEFAULT_MAX_RECORD_SIZE

UNION_FIELDS = ("tags", "reruns")
# What anyone may add to a run; every other field is a fact the run itself wrote.
ANNOTATION_FIELDS = ("tags", "reruns", "annotations", "message", "message_at", "deleted")


def merge_records(
    local: dict[str, Any],
    remote: dict[str, Any],
    base: dict[str, Any] | None,
    *,
    facts_from_local: bool = False,
) -> dict[str, Any]:
    """One record holding both sides' changes; `base` is the common ancestor's, if known.

    With `facts_from_local` (a run this clone recorded) only the annotations of `remote`
    are taken: every fact, artifacts included, stays `local`'s.
    """
    winner = local if facts_from_local else _winner(local, remote)
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
    if not facts_from_local:
        merged["artifacts"] = _merge_artifacts(local, remote, winner is local)
    newer = max((local, remote), key=lambda r: str(r.get("message_at") or ""))
    merged["message"] = newer.get("message")
    merged["message_at"] = newer.get("message_at")
    merged["deleted"] = _three_way(local.get("deleted"), remote.get("deleted"), base, "deleted")
    return merged


def disputed_facts(local: dict[str, Any], remote: dict[str, Any]) -> list[str]:
    """The fields other than annotations on which `remote` says something else than `local`."""
    keys = dict.fromkeys([*local, *remote])
    return [
        key for key in keys if key not in ANNOTATION_FIELDS and local.get(key) != remote.get(key)
    ]


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
class KeptFacts:
    """A run recorded here whose facts the remote changed: this clone's were kept."""

    run: str
    commit: str
    fields: list[str]


@dataclass
class NotesMerge:
    """What merging a remote's records into ours did."""

    added: int = 0
    merged: int = 0
    unchanged: int = 0
    unreadable: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)  # their record left out (commits)
    kept_facts: list[KeptFacts] = field(default_factory=list)
    fast_forward: bool = False


@dataclass(frozen=True)
class MergePolicy:
    """What this clone trusts: which records it recorded itself, and how large one may be."""

    recorded_here: Callable[[dict[str, Any]], bool]
    max_record_size: int = DEFAULT_MAX_RECORD_SIZE


def merge_notes(
    repo: pygit2.Repository,
    remote_notes_ref: str,
    signature: pygit2.Signature,
    policy: MergePolicy,
    wanted: Iterable[str] = (),
) -> NotesMerge:
    """Merge the records under `remote_notes_ref` into refs/notes/experiments, atomically.

    Records only the remote has are added; records both sides changed are merged field by
    field (merge_records); a record this clone recorded keeps its facts whatever the remote
    says (`policy`). The result is one notes commit whose parents are both tips (or a
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
            missing = _missing_records(repo, ours, theirs, wanted, policy, summary)
            if not missing:
                return None
            return store.notes_commit_with(repo, ours, missing, [], message, signature)
        if ours is None or _contains(repo, theirs.id, ours.id):
            if ours is None or _fast_forward(repo, ours, theirs, policy, summary):
                return _fast_forward_to(repo, theirs, policy, summary, message, signature)
            summary = NotesMerge()  # not every record can be theirs: merge instead
        changes = _merged_changes(repo, ours, theirs, policy, summary)
        return store.notes_commit_with(repo, ours, changes, [theirs.id], message, signature)

    store.swap_notes(repo, next_commit, "notes: merged by 'git exp pull'")
    return summary


def _fast_forward_to(
    repo: pygit2.Repository,
    theirs: pygit2.Commit,
    policy: MergePolicy,
    summary: NotesMerge,
    message: str,
    signature: pygit2.Signature,
) -> pygit2.Oid:
    """`theirs` (counted, when this clone had no records yet), or a commit of theirs less the
    records too large to take (with `theirs` as a parent)."""
    if summary.fast_forward:
        return theirs.id
    blobs = dict(store.walk_note_blobs(theirs))
    for commit, blob in blobs.items():
        if store.blob_size(repo, blob) > policy.max_record_size:
            summary.too_large.append(commit)
        else:
            summary.added += 1
    if not summary.too_large:
        summary.fast_forward = True
        return theirs.id
    changes = {
        commit: store.read_blob(repo, blob)
        for commit, blob in blobs.items()
        if commit not in summary.too_large
    }
    return store.notes_commit_with(repo, None, changes, [theirs.id], message, signature)


def _missing_records(
    repo: pygit2.Repository,
    ours: pygit2.Commit,
    theirs: pygit2.Commit,
    wanted: list[str],
    policy: MergePolicy,
    summary: NotesMerge,
) -> dict[str, bytes]:
    """Their records of the `wanted` commits that ours lack."""
    missing = {}
    for commit in wanted:
        if store.note_in(repo, ours, commit) is None:
            data = store.note_in(repo, theirs, commit)
            resolved = _resolve(commit, None, data, None, policy, summary) if data else None
            if resolved is not None:
                missing[commit] = resolved
    return missing


def _fast_forward(
    repo: pygit2.Repository,
    ours: pygit2.Commit,
    theirs: pygit2.Commit,
    policy: MergePolicy,
    summary: NotesMerge,
) -> bool:
    """Count what moving to `theirs` adds and updates; False when it would remove a record
    or change one in a way a merge would not (see _resolve).

    A record the remote no longer has was collected there (`git exp gc`); this clone still
    has the run, so its record stays: a merge keeps it where a fast-forward would drop it.
    """
    our_blobs = dict(store.walk_note_blobs(ours))
    their_blobs = dict(store.walk_note_blobs(theirs))
    if any(commit not in their_blobs for commit in our_blobs):
        return False
    for commit, blob in their_blobs.items():
        kept = our_blobs.get(commit)
        if kept == blob:
            summary.unchanged += 1
            continue
        if kept is None and store.blob_size(repo, blob) <= policy.max_record_size:
            summary.added += 1
            continue
        their_data = store.read_blob(repo, blob)
        our_data = store.read_blob(repo, kept) if kept is not None else None
        if _resolve(commit, our_data, their_data, our_data, policy, summary) != their_data:
            return False
    summary.fast_forward = True
    return True


def _merged_changes(
    repo: pygit2.Repository,
    ours: pygit2.Commit,
    theirs: pygit2.Commit,
    policy: MergePolicy,
    summary: NotesMerge,
) -> dict[str, bytes]:
    base_id = repo.merge_base(ours.id, theirs.id)
    base = repo[base_id].peel(pygit2.Commit) if base_id is not None else None
    base_notes = store.notes_of(repo, base)
    our_notes, their_notes = store.notes_of(repo, ours), store.notes_of(repo, theirs)
    changes: dict[str, bytes] = {}
    for commit, their_data in their_notes.items():
        # A record only the remote has, or one removed here by hand (`git notes prune`), is
        # added: a record is never dropped while a run may need it.
        resolved = _resolve(
            commit, our_notes.get(commit), their_data, base_notes.get(commit), policy, summary
        )
        if resolved is not None:
            changes[commit] = resolved
    return changes


def _resolve(
    commit: str,
    our_data: bytes | None,
    their_data: bytes,
    base_data: bytes | None,
    policy: MergePolicy,
    summary: NotesMerge,
) -> bytes | None:
    """What the record of `commit` becomes (None: ours stays as it is), counted in `summary`."""
    if our_data == their_data or (our_data is not None and their_data == base_data):
        summary.unchanged += 1
        return None
    if len(their_data) > policy.max_record_size:
        summary.too_large.append(commit)
        return None
    if our_data is None:
        summary.added += 1
        return their_data
    try:
        remote = load_record(their_data)
    except ValueError:
        summary.unreadable.append(commit)  # never in place of ours; theirs stays reachable
        return None
    try:
        local = load_record(our_data)
    except ValueError:
        if our_data != base_data:
            summary.unreadable.append(commit)  # broken here since: left for a human
            return None
        summary.merged += 1
        return their_data
    here = policy.recorded_here(local)
    # Only a run made here keeps its facts: for the others, what the remote says is merged.
    disputes = disputed_facts(local, remote) if here else []
    if our_data == base_data and not disputes:
        summary.merged += 1  # changed there only, and not in any fact of a run made here
        return their_data
    base = _readable(base_data)
    merged = merge_records(local, remote, base, facts_from_local=here)
    disputed = [key for key in disputes if base is None or remote.get(key) != base.get(key)]
    if disputed:
        summary.kept_facts.append(KeptFacts(str(local.get("id") or commit), commit, disputed))
    if merged == local:
        summary.unchanged += 1
        return None
    summary.merged += 1
    return dump_record(merged)


def _readable(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        return load_record(data)
    except ValueError:
        return None


def _contains(repo: pygit2.Repository, descendant: pygit2.Oid, ancestor: pygit2.Oid) -> bool:
    return descendant == ancestor or repo.descendant_of(descendant, ancestor)

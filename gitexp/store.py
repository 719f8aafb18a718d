"""Storage: the only code that reads and writes run refs and the notes that hold records.

Every write is a compare-and-swap: a new notes commit is built on the tip we read and the
ref moves only if it still points there (`Reference.set_target` checks the old value), else
we re-read and retry. `git notes add` and `repo.create_note` skip that check and lose updates
when several processes write at once (measured: 8 writers x 10 notes kept 11 of 80).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pygit2

from gitexp.errors import ConcurrentUpdateError
from gitexp.ids import REF_PREFIX

NOTES_REF = "refs/notes/experiments"
NOTES_COMMIT_MESSAGE = "Notes added by 'git exp'\n"
RETRY_SECONDS = 20.0

FILEMODE_BLOB = pygit2.enums.FileMode.BLOB
FILEMODE_TREE = pygit2.enums.FileMode.TREE


def list_run_refs(repo: pygit2.Repository) -> list[tuple[str, str]]:
    """(ref name, commit hex) of every ref under refs/experiments/."""
    found = []
    for ref in repo.references.iterator(pygit2.enums.ReferenceFilter.ALL):
        if ref.name.startswith(REF_PREFIX):
            try:
                found.append((ref.name, str(ref.target)))
            except pygit2.GitError:
                continue
    return found


def create_ref(repo: pygit2.Repository, name: str, oid: pygit2.Oid) -> bool:
    """Create `name` at `oid` unless it exists (never forced); True when we created it."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            repo.references.create(name, oid, force=False)
            return True
        except pygit2.AlreadyExistsError:
            return False
        except pygit2.GitError as exc:
            if not _is_contention(exc) or time.monotonic() > deadline:
                raise ConcurrentUpdateError(_lock_message(repo, name, exc)) from None
            _backoff()


def delete_ref(repo: pygit2.Repository, name: str) -> None:
    ref = repo.references.get(name)
    if ref is not None:
        ref.delete()


def read_note(repo: pygit2.Repository, commit_hex: str) -> bytes | None:
    """The raw note attached to `commit_hex` in refs/notes/experiments, if any."""
    tip = _notes_tip(repo)
    if tip is None:
        return None
    blob_id = _find_note(repo, tip.tree, commit_hex)
    return None if blob_id is None else repo[blob_id].data


def read_all_notes(repo: pygit2.Repository) -> dict[str, bytes]:
    """Every note in refs/notes/experiments, keyed by the annotated object's hex id."""
    tip = _notes_tip(repo)
    if tip is None:
        return {}
    return {hex_id: repo[blob_id].data for hex_id, blob_id in _walk_notes(tip.tree, "")}


def update_note(
    repo: pygit2.Repository,
    commit_hex: str,
    change: Callable[[bytes | None], bytes],
    signature: pygit2.Signature,
) -> bytes:
    """Replace the note on `commit_hex` with `change(current note)`, atomically.

    `change` may be called several times (once per attempt), always with the latest note,
    so concurrent writers of the same record never lose each other's changes.
    """
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        ref = repo.references.get(NOTES_REF)
        parent = ref.peel(pygit2.Commit) if ref is not None else None
        old_tree = parent.tree if parent is not None else None
        old_blob = _find_note(repo, old_tree, commit_hex) if old_tree is not None else None
        new_data = change(repo[old_blob].data if old_blob is not None else None)
        blob_id = repo.create_blob(new_data)
        tree_id = _tree_with_note(repo, old_tree, commit_hex, blob_id, depth=0)
        notes_commit = repo.create_commit(
            None,
            signature,
            signature,
            NOTES_COMMIT_MESSAGE,
            tree_id,
            [parent.id] if parent is not None else [],
        )
        try:
            if ref is None:
                repo.references.create(NOTES_REF, notes_commit, force=False)
            else:
                ref.set_target(notes_commit, "notes: updated by 'git exp'")
            return new_data
        except pygit2.GitError as exc:  # AlreadyExistsError is a GitError too
            if not _is_contention(exc) or time.monotonic() > deadline:
                raise ConcurrentUpdateError(_lock_message(repo, NOTES_REF, exc)) from None
            _backoff()


def _notes_tip(repo: pygit2.Repository) -> pygit2.Commit | None:
    ref = repo.references.get(NOTES_REF)
    return None if ref is None else ref.peel(pygit2.Commit)


def _find_note(repo: pygit2.Repository, tree: pygit2.Tree, remaining: str) -> pygit2.Oid | None:
    # git writes notes flat or fanned out (ab/cdef..., ab/cd/ef...); accept every layout.
    if remaining in tree:
        entry = tree[remaining]
        return entry.id if entry.type_str == "blob" else None
    prefix = remaining[:2]
    if len(remaining) > 2 and prefix in tree and tree[prefix].type_str == "tree":
        return _find_note(repo, repo[tree[prefix].id], remaining[2:])
    return None


def _walk_notes(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Oid]]:
    for entry in tree:
        name = prefix + entry.name
        if entry.type_str == "tree" and len(entry.name) == 2 and len(name) < 40:
            yield from _walk_notes(entry, name)  # type: ignore[arg-type]
        elif entry.type_str == "blob" and len(name) == 40:
            yield name, entry.id


def _tree_with_note(
    repo: pygit2.Repository,
    tree: pygit2.Tree | None,
    remaining: str,
    blob_id: pygit2.Oid,
    depth: int,
) -> pygit2.Oid:
    """Write `tree` with the note stored at `remaining`, keeping the layout already there.

    A note that exists is replaced where it is; a new one goes into the deepest existing
    fan-out directory, and into a new `xx/` directory at the top level (git's 2/38 fan-out),
    so no single tree object grows with the number of runs.
    """
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    prefix = remaining[:2]
    if tree is not None and remaining in tree:
        builder.insert(remaining, blob_id, FILEMODE_BLOB)
    elif tree is not None and prefix in tree and tree[prefix].type_str == "tree":
        subtree = repo[tree[prefix].id]
        builder.insert(
            prefix, _tree_with_note(repo, subtree, remaining[2:], blob_id, depth + 1), FILEMODE_TREE
        )
    elif depth == 0:
        builder.insert(
            prefix, _tree_with_note(repo, None, remaining[2:], blob_id, depth + 1), FILEMODE_TREE
        )
    else:
        builder.insert(remaining, blob_id, FILEMODE_BLOB)
    return builder.write()


def _is_contention(exc: pygit2.GitError) -> bool:
    text = str(exc).lower()
    return isinstance(exc, pygit2.AlreadyExistsError) or any(
        word in text for word in ("lock", "modified", "does not match", "exists", "changed")
    )


def _lock_message(repo: pygit2.Repository, ref_name: str, exc: Exception) -> str:
    lock = Path(repo.path) / f"{ref_name}.lock"
    if lock.exists():
        return (
            f"{ref_name} stayed locked for {RETRY_SECONDS:.0f}s: if no git process is running, "
            f"remove {lock}"
        )
    return f"could not update {ref_name}: {exc}"


def _backoff() -> None:
    time.sleep(random.uniform(0.005, 0.05))

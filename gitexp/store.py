"""Storage: the only code that reads and writes run refs and the notes that hold records.

Every write is a compare-and-swap: a new notes commit is built on the tip we read and the
ref moves only if it still points there, else we re-read and retry. `git notes add` and
`repo.create_note` skip that check and lose updates when several processes write at once
(measured: 8 writers x 10 notes kept 11 of 80). The check is made while holding the ref's
lock (`repo.transaction()`): libgit2's `references.create(force=False)` looks for an existing
ref *before* locking, so two processes can both "create" a ref and the second silently
overwrites the first (measured: 8 processes creating the same 40 refs succeeded 44 times).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import cast

import pygit2

from gitexp.errors import GitExpError
from gitexp.ids import REF_PREFIX
from gitexp.repository import common_dir

NOTES_REF = "refs/notes/experiments"
TRACKING_NOTES_PREFIX = "refs/notes/remotes/"
NOTES_COMMIT_MESSAGE = "Notes added by 'git exp'\n"
RETRY_SECONDS = 20.0

# What a write into .git fails with when waiting will not help; libgit2 puts the reason at the
# end of its message ("failed to create locked file '...': Read-only file system").
WRITE_FAILURES = tuple(
    os.strerror(code)
    for code in (errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM)
)

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


def run_ref_names(repo: pygit2.Repository, prefix: str = REF_PREFIX) -> list[str]:
    """The names of the refs starting with `prefix` (by default, the run refs), unresolved.

    Cheaper than `list_run_refs` when the targets do not matter: nothing is peeled.
    """
    wanted = prefix.encode()
    return [
        name.decode(errors="surrogateescape")
        for name in repo.raw_listall_references()
        if name.startswith(wanted)
    ]


def run_refs_stamp(repo: pygit2.Repository) -> tuple[str, int] | None:
    """(digest, newest mtime in ns) of the on-disk state of every run ref; None if unknown.

    It changes whenever a run ref is created, moved or deleted: git and libgit2 write a ref
    by renaming a lock file into its directory (which updates the directory's mtime) or
    rewrite `packed-refs` the same way (a new inode). Hashing the stat data of those
    directories and of packed-refs tells a cached listing of the refs from a stale one
    without reading them. A change within the file system's timestamp granularity after
    the stamp was taken can leave it equal: callers distrust stamps newer than their cache
    (as git distrusts "racily clean" index entries). Ref storage gitexp does not know
    (reftable) gives None.
    """
    root = common_dir(repo)
    if os.path.lexists(root / "reftable"):
        return None
    digest = hashlib.blake2b(digest_size=16)
    newest = 0
    paths = [os.fspath(root / "packed-refs"), *_run_ref_directories(root / "refs" / "experiments")]
    for path in paths:
        try:
            info = os.lstat(path)
        except OSError:
            digest.update(f"{path}\0-\n".encode(errors="surrogateescape"))
            continue
        newest = max(newest, info.st_mtime_ns)
        row = f"{path}\0{info.st_ino} {info.st_size} {info.st_mtime_ns} {info.st_ctime_ns}\n"
        digest.update(row.encode(errors="surrogateescape"))
    return digest.hexdigest(), newest


def _run_ref_directories(top: os.PathLike[str]) -> list[str]:
    """`refs/experiments` and its `<name>` directories (run refs are `<name>/<id>` files)."""
    found = [os.fspath(top)]
    try:
        with os.scandir(top) as entries:
            found.extend(
                sorted(entry.path for entry in entries if entry.is_dir(follow_symlinks=False))
            )
    except OSError:
        pass
    return found


def create_ref(repo: pygit2.Repository, name: str, oid: pygit2.Oid) -> bool:
    """Create `name` at `oid` unless it exists (never forced); True when we created it."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return _compare_and_swap(repo, name, None, oid, "exp: run created")
        except (pygit2.GitError, OSError) as exc:
            if not _is_contention(exc):
                raise _failure(repo, f"could not update {name}", exc) from None
            if time.monotonic() > deadline:
                raise _gave_up(repo, name, exc) from None
            _backoff()  # another writer holds the lock


def delete_ref(repo: pygit2.Repository, name: str) -> None:
    ref = repo.references.get(name)
    if ref is not None:
        with writing(repo):
            ref.delete()


def read_note(repo: pygit2.Repository, commit_hex: str) -> bytes | None:
    """The raw note attached to `commit_hex` in refs/notes/experiments, if any."""
    return note_in(repo, notes_tip(repo), commit_hex)


def note_in(
    repo: pygit2.Repository, notes_commit: pygit2.Commit | None, commit_hex: str
) -> bytes | None:
    """The raw note attached to `commit_hex` in the notes commit `notes_commit`, if any."""
    if notes_commit is None:
        return None
    blob_id = _find_note(repo, notes_commit.tree, commit_hex)
    return None if blob_id is None else _blob_data(repo, blob_id)


def read_all_notes(repo: pygit2.Repository) -> dict[str, bytes]:
    """Every note in refs/notes/experiments, keyed by the annotated object's hex id."""
    tip = notes_tip(repo)
    if tip is None:
        return {}
    return {hex_id: read_blob(repo, blob_id) for hex_id, blob_id in _walk_notes(tip.tree, "")}


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
    written: list[bytes] = []

    def next_commit(tip: pygit2.Commit | None) -> pygit2.Oid:
        old_tree = tip.tree if tip is not None else None
        old_blob = _find_note(repo, old_tree, commit_hex) if old_tree is not None else None
        written[:] = [change(_blob_data(repo, old_blob) if old_blob is not None else None)]
        tree_id = _tree_with_note(repo, old_tree, commit_hex, repo.create_blob(written[0]), 0)
        parents = [tip.id] if tip is not None else []
        return repo.create_commit(
            None, signature, signature, NOTES_COMMIT_MESSAGE, tree_id, parents
        )

    swap_notes(repo, next_commit, "notes: 'git exp'")
    return written[0]


def ref_target(repo: pygit2.Repository, name: str) -> str | None:
    """The object id `name` points at (whatever its type), or None when there is no such ref."""
    ref = repo.references.get(name)
    return None if ref is None else str(ref.resolve().target)


def non_commit_kind(repo: pygit2.Repository, name: str) -> str | None:
    """`blob`, `tree`, ... when the ref `name` does not lead to a commit; None when it does
    (or does not exist)."""
    ref = repo.references.get(name)
    if ref is None:
        return None
    try:
        ref.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError, KeyError):
        target = repo.get(ref.resolve().target)
        return target.type_str if target is not None else "missing object"
    return None


def reset_tracking_ref(repo: pygit2.Repository, name: str, target: str | None) -> None:
    """Point a remote-tracking ref back at `target` (None: delete it). Tracking refs mirror a
    remote, as `git fetch` forces them: no compare-and-swap."""
    if target is None:
        delete_ref(repo, name)
    else:
        repo.references.create(name, target, force=True)


def tracking_notes_tips(repo: pygit2.Repository) -> list[pygit2.Commit]:
    """Every remote's notes commit as last fetched (refs/notes/remotes/*/experiments); a ref
    that does not lead to a commit is left out."""
    tips = []
    for name in sorted(run_ref_names(repo, TRACKING_NOTES_PREFIX)):
        if name.endswith("/experiments") and non_commit_kind(repo, name) is None:
            tips.append(repo.references[name].peel(pygit2.Commit))
    return tips


def tracking_notes_ref(remote: str) -> str:
    """Where this clone keeps `remote`'s notes as last fetched or pushed."""
    return f"{TRACKING_NOTES_PREFIX}{remote}/experiments"


def swap_notes(
    repo: pygit2.Repository,
    next_commit: Callable[[pygit2.Commit | None], pygit2.Oid | None],
    reflog_message: str,
) -> bool:
    """Move refs/notes/experiments to `next_commit(current tip)` by compare-and-swap, retrying.

    `next_commit` is called again with the new tip whenever another writer moved the ref (or
    held its lock) first; returning None means there is nothing to write (False is returned).
    Gives up with GitExpError after RETRY_SECONDS.
    """
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        tip = notes_tip(repo)
        with writing(repo):
            new = next_commit(tip)
        if new is None:
            return False
        problem: Exception | None = None
        try:
            if _compare_and_swap(repo, NOTES_REF, tip.id if tip else None, new, reflog_message):
                return True
        except (pygit2.GitError, OSError) as exc:
            if not _is_contention(exc):
                raise _failure(repo, f"could not update {NOTES_REF}", exc) from None
            problem = exc
        # Someone else wrote first (the ref moved) or is writing now (it is locked).
        if time.monotonic() > deadline:
            raise _gave_up(repo, NOTES_REF, problem)
        _backoff()


def delete_run_ref(repo: pygit2.Repository, name: str, expected: str) -> bool:
    """Delete the run ref `name` if it still points at `expected`; True when we deleted it."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            with repo.transaction() as transaction:
                transaction.lock_ref(name)
                current = repo.references.get(name)
                if current is None or str(current.target) != expected:
                    raise _RefMoved
                transaction.remove(name)
        except _RefMoved:
            return False
        except (pygit2.GitError, OSError) as exc:
            if not _is_contention(exc):
                raise _failure(repo, f"could not delete {name}", exc) from None
            if time.monotonic() > deadline:
                raise _gave_up(repo, name, exc) from None
            _backoff()
            continue
        return True


def _compare_and_swap(
    repo: pygit2.Repository,
    name: str,
    expected: pygit2.Oid | str | None,
    new: pygit2.Oid,
    message: str,
) -> bool:
    """Point `name` at `new` if it still points at `expected` (None: if it does not exist).

    False when it points elsewhere. The check is made while we hold the ref's lock file, so
    no other writer (git included) can move the ref in between.
    """
    try:
        with repo.transaction() as transaction:
            transaction.lock_ref(name)
            current = repo.references.get(name)
            if (current.target if current is not None else None) != expected:
                raise _RefMoved
            if current is None:
                _check_room_for(repo, name)
            transaction.set_target(name, new, message=message)
    except _RefMoved:
        return False  # leaving the block by an exception released the lock, wrote nothing
    return True


def _check_room_for(repo: pygit2.Repository, name: str) -> None:
    """Refuse a new ref that a ref at one of its parent paths (or below it) is in the way of.

    git refuses `a/b` next to `a`; libgit2's transactions do not check when `a` is packed, and
    would leave refs git can no longer update.
    """
    parts = name.split("/")
    parents = {"/".join(parts[:n]) for n in range(2, len(parts))}
    for other in repo.references:
        if other in parents or other.startswith(f"{name}/"):
            raise GitExpError(f"could not update {name}: the ref {other} is in the way")


class _RefMoved(Exception):
    """Abandons a transaction: the ref no longer has the value the caller read."""


def _find_note(repo: pygit2.Repository, tree: pygit2.Tree, remaining: str) -> pygit2.Oid | None:
    # git writes notes flat or fanned out (ab/cdef..., ab/cd/ef...); accept every layout.
    if remaining in tree:
        entry = tree[remaining]
        return entry.id if entry.type_str == "blob" else None
    prefix = remaining[:2]
    if len(remaining) > 2 and prefix in tree and tree[prefix].type_str == "tree":
        return _find_note(repo, _subtree(repo, tree[prefix].id), remaining[2:])
    return None


def _walk_notes(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Oid]]:
    for entry in tree:
        entry_name = entry.name or ""
        name = prefix + entry_name
        if entry.type_str == "tree" and len(entry_name) == 2 and len(name) < 40:
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
        subtree = _subtree(repo, tree[prefix].id)
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


def _blob_data(repo: pygit2.Repository, oid: pygit2.Oid) -> bytes:
    return cast(pygit2.Blob, repo[oid]).data


def read_blob(repo: pygit2.Repository, oid: pygit2.Oid | str) -> bytes:
    """The content of blob `oid`, straight from the object database."""
    # odb.read skips building a Blob object: half the cost of repo[oid].data per note.
    return cast(bytes, repo.odb.read(oid)[1])


def blob_size(repo: pygit2.Repository, oid: pygit2.Oid | str) -> int:
    """The size of blob `oid` in bytes, without reading it."""
    return int(repo.odb.read_header(oid)[1])


def walk_note_blobs(commit: pygit2.Commit) -> Iterator[tuple[str, pygit2.Oid]]:
    """(annotated object hex, note blob id) of every note in the notes commit `commit`."""
    return _walk_notes(commit.tree, "")


def _subtree(repo: pygit2.Repository, oid: pygit2.Oid) -> pygit2.Tree:
    return cast(pygit2.Tree, repo[oid])


def _is_contention(exc: Exception) -> bool:
    """Another writer holds the ref's `.lock` file: worth another try.

    libgit2 words it "failed to lock file '...' for writing" or "failed to create locked file
    '...': File exists" (as GitError or OSError depending on the pygit2 call). Anything else,
    such as a ref in the way or a permission problem, will not go away by waiting.
    """
    text = str(exc).lower()
    return "failed to lock file" in text or ("locked file" in text and "file exists" in text)


@contextlib.contextmanager
def writing(repo: pygit2.Repository) -> Iterator[None]:
    """Turn a failed write into the repository (objects, refs) into one GitExpError.

    Other errors (a corrupt object read on the way, say) pass through unchanged.
    """
    try:
        yield
    except (pygit2.GitError, OSError) as exc:
        reason = write_failure_reason(repo, exc)
        if reason is None:
            raise
        raise GitExpError(f"cannot write to the repository: {reason}") from None


def write_failure_reason(repo: pygit2.Repository, exc: Exception) -> str | None:
    """Why a write into the repository failed, if for a reason waiting will not fix."""
    if isinstance(exc, OSError) and exc.strerror in WRITE_FAILURES:
        return exc.strerror
    text = str(exc)
    for reason in WRITE_FAILURES:
        if text.endswith(reason):
            return reason
    # libgit2 reports a short write of a loose object as GitError('no error').
    if isinstance(exc, pygit2.GitError) and text == "no error" and _disk_full(repo):
        return os.strerror(errno.ENOSPC)
    return None


def _disk_full(repo: pygit2.Repository) -> bool:
    try:
        return os.statvfs(common_dir(repo) / "objects").f_bavail == 0
    except OSError:
        return False


def _failure(repo: pygit2.Repository, what: str, exc: Exception) -> GitExpError:
    reason = write_failure_reason(repo, exc)
    if reason is not None:
        return GitExpError(f"cannot write to the repository: {reason}")
    return GitExpError(f"{what}: {exc}")


def _gave_up(repo: pygit2.Repository, ref_name: str, exc: Exception | None) -> GitExpError:
    # Refs live in the common directory, shared by every linked worktree.
    lock = common_dir(repo) / f"{ref_name}.lock"
    if lock.exists():
        return GitExpError(
            f"{ref_name} stayed locked for {RETRY_SECONDS:g}s: if no git process is running, "
            f"remove {lock}"
        )
    detail = f" ({exc})" if exc is not None else ""
    return GitExpError(
        f"could not update {ref_name}: it kept changing for {RETRY_SECONDS:g}s{detail}"
    )


def _backoff() -> None:
    time.sleep(random.uniform(0.005, 0.05))


def notes_tip(repo: pygit2.Repository, ref_name: str = NOTES_REF) -> pygit2.Commit | None:
    """The notes commit `ref_name` points at, if the ref exists."""
    ref = repo.references.get(ref_name)
    return None if ref is None else ref.peel(pygit2.Commit)


def notes_of(repo: pygit2.Repository, commit: pygit2.Commit | None) -> dict[str, bytes]:
    """Every note in the notes commit `commit` (any layout), keyed by annotated object id."""
    if commit is None:
        return {}
    return {hex_id: _blob_data(repo, blob) for hex_id, blob in _walk_notes(commit.tree, "")}


def notes_commit_with(
    repo: pygit2.Repository,
    tip: pygit2.Commit | None,
    changes: dict[str, bytes],
    other_parents: list[pygit2.Oid],
    message: str,
    signature: pygit2.Signature,
) -> pygit2.Oid:
    """A notes commit: `tip`'s notes with `changes` (object id → note), parents `tip` and
    `other_parents`. Nothing moves; pass it to swap_notes."""
    tree = tip.tree if tip is not None else None
    with writing(repo):
        for hex_id, data in sorted(changes.items()):
            tree = _subtree(repo, _tree_with_note(repo, tree, hex_id, repo.create_blob(data), 0))
        tree_id = tree.id if tree is not None else repo.TreeBuilder().write()
        parents = ([tip.id] if tip is not None else []) + list(other_parents)
        return repo.create_commit(None, signature, signature, message, tree_id, parents)

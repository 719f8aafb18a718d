"""Switching the working tree to a run's snapshot without losing anything local.

Before touching a file we work out what checking out would overwrite, and refuse; `force`
first saves the whole local state as a snapshot run (`saved/<id>`, status `saved`), then
overwrites. Used by `git exp checkout` and `git exp rerun --here`.

libgit2's SAFE checkout alone is not enough (measured, libgit2 1.9): it overwrites a staged
change when the file in the working tree is back to HEAD's version, and a forced checkout
deletes ignored files inside an untracked directory it replaces, even with
DONT_OVERWRITE_IGNORED. Both cases are checked here before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import CheckoutNotify, CheckoutStrategy, FileMode, FileStatus, RepositoryState

from gitexp import environment, ids, store
from gitexp.claims import claim_run_ref
from gitexp.errors import GitExpError, InvalidNameError
from gitexp.listing import Run
from gitexp.record import new_record, now_iso, write_first_record
from gitexp.repository import DEFAULT_MAX_FILE_SIZE, config_size, identity, require_worktree
from gitexp.snapshot import SnapshotTree, snapshot_tree

SAVED_NAME = "saved"
MAX_LISTED_PATHS = 5
SAFE = CheckoutStrategy.SAFE | CheckoutStrategy.DONT_OVERWRITE_IGNORED
FORCED = CheckoutStrategy.FORCE | CheckoutStrategy.DONT_OVERWRITE_IGNORED
INDEX_CODES = (
    (FileStatus.INDEX_NEW, "A"),
    (FileStatus.INDEX_MODIFIED, "M"),
    (FileStatus.INDEX_DELETED, "D"),
    (FileStatus.INDEX_RENAMED, "R"),
    (FileStatus.INDEX_TYPECHANGE, "T"),
)
WORKTREE_CODES = (
    (FileStatus.WT_MODIFIED, "M"),
    (FileStatus.WT_DELETED, "D"),
    (FileStatus.WT_RENAMED, "R"),
    (FileStatus.WT_TYPECHANGE, "T"),
)


@dataclass
class SavedState:
    """The snapshot `--force` made of the local state before overwriting it."""

    id: str
    commit: str
    index_commit: str | None


@dataclass
class Switch:
    """The current working tree moved to a snapshot (see `switch_working_tree`)."""

    previous: str | None
    saved: SavedState | None
    saves_local_state: bool
    kept: list[str]


def switch_working_tree(
    repo: pygit2.Repository,
    run: Run,
    environ: Mapping[str, str],
    *,
    force: bool,
    dry_run: bool,
    reason: str,
    branch_ref: str | None = None,
) -> Switch:
    """Make the working tree and index `run`'s snapshot, HEAD detached there (or on the new
    `branch_ref`), refusing to overwrite local changes unless `force` saved them first.

    `reason` (the gitexp command) goes into the reflog and the saved snapshot's message.
    """
    require_worktree(repo)
    commit = snapshot_commit(repo, run)
    _refuse_malformed_tree(repo, run, commit.tree)
    _refuse_unfinished_operations(repo)
    previous = _head_description(repo)
    obstacles = local_changes_in_the_way(repo, commit.tree)
    snapshot = None
    if obstacles or force:
        max_size = config_size(repo, "exp.maxFileSize", DEFAULT_MAX_FILE_SIZE)
        snapshot = snapshot_tree(repo, max_size, environ)
        _refuse_unsavable(repo, run, obstacles, snapshot)
    if force:
        _refuse_what_force_cannot_overwrite(repo, run, commit.tree)
    if obstacles and not force:
        raise GitExpError(
            f"checking out {run.id} would overwrite local changes to {_list_paths(obstacles)}; "
            "commit or stash them (git stash -u), or use --force to save them as a snapshot "
            "first"
        )
    to_save: tuple[SnapshotTree, pygit2.Oid] | None = None
    if force and snapshot is not None:
        index_tree = _index_tree(repo)
        if _has_local_state(repo, snapshot, index_tree):
            to_save = (snapshot, index_tree)
    if dry_run:
        kept = [
            line
            for line in _local_changes(repo)
            if line[3:] not in obstacles and (not force or line.startswith("??"))
        ]
        return Switch(previous, None, to_save is not None, kept)
    saved = None
    if to_save is not None:
        saved = save_local_state(repo, *to_save, environ, reason, previous)
    if force:
        _unlink_symlinks_in_the_way(repo, commit.tree)
    _check_out(repo, commit, force, run, previous, reason, branch_ref)
    return Switch(previous, saved, to_save is not None, _local_changes(repo))


def snapshot_commit(repo: pygit2.Repository, run: Run) -> pygit2.Commit:
    """The snapshot commit of `run`."""
    try:
        return repo[run.commit].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        raise GitExpError(f"{run.ref} does not point to a commit") from None


def new_branch_ref(repo: pygit2.Repository, name: str) -> str:
    """`refs/heads/<name>` for a branch to create: a valid name that is not taken."""
    ref = f"refs/heads/{name}"
    if (
        not name
        or name.startswith("-")
        or name == "HEAD"
        or not pygit2.reference_is_valid_name(ref)
    ):
        raise InvalidNameError(f"'{ids.printable(name)}' is not a valid branch name")
    if ref in repo.references:
        raise GitExpError(f"a branch named '{name}' already exists")
    return ref


def local_changes_in_the_way(repo: pygit2.Repository, target: pygit2.Tree) -> list[str]:
    """The paths whose local state (staged, unstaged, untracked or ignored) checking out
    `target` would overwrite or delete."""
    conflicts = _dry_run_conflicts(repo, target, SAFE)
    head_tree = None if repo.head_is_unborn else repo.head.peel(pygit2.Tree)
    changing = _changed_paths(repo, head_tree, target)
    staged = set(_staged_paths(repo, head_tree))
    return sorted(set(conflicts) | (changing & staged))


def _dry_run_conflicts(
    repo: pygit2.Repository, target: pygit2.Tree, strategy: CheckoutStrategy
) -> list[str]:
    """The paths libgit2 would refuse to touch when checking out `target` with `strategy`."""
    notes = _ConflictCollector()
    # A dry run still rewrites the index file (refreshing stat data) unless told not to.
    dry_run = strategy | CheckoutStrategy.DRY_RUN | CheckoutStrategy.DONT_WRITE_INDEX
    try:
        repo.checkout_tree(target, strategy=dry_run, callbacks=notes)
    except pygit2.GitError as exc:
        if not notes.paths:
            raise GitExpError(f"cannot check out: {exc}") from None
    return notes.paths


def _refuse_what_force_cannot_overwrite(
    repo: pygit2.Repository, run: Run, target: pygit2.Tree
) -> None:
    """Refuse before anything is saved or removed when even a forced checkout would fail
    (libgit2 will not overwrite an ignored file, for one)."""
    conflicts = _dry_run_conflicts(repo, target, FORCED)
    if conflicts:
        raise GitExpError(
            f"cannot check out {run.id}, even with --force: {_list_paths(conflicts)} "
            "would be overwritten (ignored files are never overwritten); move them away first"
        )


def save_local_state(
    repo: pygit2.Repository,
    snapshot: SnapshotTree,
    index_tree: pygit2.Oid,
    environ: Mapping[str, str],
    reason: str,
    previous: str | None,
) -> SavedState:
    """Record the local state as a run `saved/<id>` with status `saved`.

    The snapshot commit is made exactly as a run's (parent HEAD, tree = the working tree);
    when something is staged, a commit of the index is its second parent, as in `git stash`,
    so a staged version later edited again in the working tree is kept too.
    """
    signature = identity(repo, dict(environ))
    index_commit = None
    if index_tree != _head_tree_id(repo):
        parents = [pygit2.Oid(hex=snapshot.head)] if snapshot.head else []
        index_commit = repo.create_commit(
            None, signature, signature, f"exp: the index before {reason}\n", index_tree, parents
        )
    extra = [index_commit] if index_commit is not None else []
    ref, commit = claim_run_ref(repo, SAVED_NAME, snapshot, reason.split(), signature, extra)
    run_id = ref[len(ids.REF_PREFIX) :]
    now = now_iso()
    record = new_record(
        id=run_id,
        name=SAVED_NAME,
        ref=ref,
        commit=commit,
        status="saved",
        command=[],
        cwd=".",
        started_at=now,
        ended_at=now,
        duration_s=0.0,
        host=environment.host_info(os.getpid()),
        git={**snapshot.git_info(), "index": str(index_commit) if index_commit else None},
        message=_saved_message(repo, reason, previous),
    )
    try:
        write_first_record(repo, ref, commit, record, signature)
    except GitExpError as exc:  # nothing was overwritten yet, and no half-made run is left
        raise GitExpError(f"cannot save the local changes: {exc}") from None
    return SavedState(run_id, commit, str(index_commit) if index_commit else None)


class _ConflictCollector(pygit2.CheckoutCallbacks):
    """Collects the paths libgit2 reports as conflicts during a dry-run checkout."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def checkout_notify_flags(self) -> CheckoutNotify:
        return CheckoutNotify.CONFLICT

    def checkout_notify(self, why: Any, path: str, *_files: Any) -> None:
        self.paths.append(path)


def _check_out(
    repo: pygit2.Repository,
    commit: pygit2.Commit,
    force: bool,
    run: Run,
    previous: str | None,
    reason: str,
    branch_ref: str | None,
) -> None:
    if branch_ref is not None:
        create_branch(repo, branch_ref, commit.id, reason)
    try:
        repo.checkout_tree(commit.tree, strategy=FORCED if force else SAFE)
    except pygit2.GitError as exc:
        if branch_ref is not None:
            store.delete_ref(repo, branch_ref)
        # Something changed in the working tree since we looked; nothing was written.
        raise GitExpError(f"cannot check out {run.id}: {exc}") from None
    if branch_ref is not None:
        target = branch_ref[len("refs/heads/") :]
        message = f"checkout: moving from {previous} to {target} ({reason})"
        repo.create_reference_symbolic("HEAD", branch_ref, True, message=message)
    else:
        message = f"checkout: moving from {previous} to {commit.id} ({reason})"
        repo.create_reference_direct("HEAD", commit.id, True, message=message)


def create_branch(repo: pygit2.Repository, ref: str, commit: pygit2.Oid, reason: str) -> None:
    """Create the branch `ref` at `commit` (never moving an existing one), logging `reason`."""
    try:
        repo.create_reference_direct(
            ref, commit, False, message=f"branch: Created from {commit} ({reason})"
        )
    except (pygit2.GitError, ValueError) as exc:
        raise GitExpError(f"cannot create {ref}: {exc}") from None


def _unlink_symlinks_in_the_way(repo: pygit2.Repository, tree: pygit2.Tree) -> None:
    """Remove the symlinks standing where `tree` has a regular file (they are saved by now).

    A forced libgit2 checkout (1.9) opens such a path for writing and follows the link:
    it overwrites the link's target, even a file outside the working tree.
    """
    workdir = Path(repo.workdir)
    for path, mode in _tree_files(repo, tree, ""):
        full = workdir / path
        if mode != FileMode.LINK and full.is_symlink():
            full.unlink()


def _tree_files(
    repo: pygit2.Repository, tree: pygit2.Tree, prefix: str
) -> Iterable[tuple[str, int]]:
    """Every non-tree entry below `tree`: (path, file mode)."""
    for entry in tree:
        path = prefix + (entry.name or "")
        if entry.type_str == "tree":
            yield from _tree_files(repo, repo[entry.id].peel(pygit2.Tree), f"{path}/")
        else:
            yield path, entry.filemode


def _refuse_malformed_tree(repo: pygit2.Repository, run: Run, tree: pygit2.Tree) -> None:
    """Refuse a snapshot whose tree a checkout would fail on half-way, before any file moves.

    Snapshots can come from other people's remotes and archives: a tree with the same name
    twice, a name git never writes (`..`, `.git`, a slash) or a missing object.
    """
    problem = _tree_problem(repo, tree, "")
    if problem is not None:
        raise GitExpError(f"cannot check out {run.id}: its snapshot has {problem}")


def _tree_problem(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str) -> str | None:
    seen: set[str] = set()
    for entry in tree:
        name = entry.name or ""
        path = prefix + name
        shown = ids.printable(path)
        if name in seen:
            return f"the entry '{shown}' twice"
        seen.add(name)
        if name in ("", ".", "..") or "/" in name or name.lower() == ".git":
            return f"an entry git never writes: '{shown}'"
        if entry.filemode == FileMode.COMMIT:
            continue  # a submodule: its commit lives in another repository
        if entry.id not in repo:
            return f"'{shown}' missing from the repository"
        if entry.type_str == "tree":
            problem = _tree_problem(repo, repo[entry.id].peel(pygit2.Tree), f"{path}/")
            if problem is not None:
                return problem
    return None


def _refuse_unfinished_operations(repo: pygit2.Repository) -> None:
    state = repo.state()
    if state != RepositoryState.NONE:
        operation = (
            RepositoryState(state).name.split("_")[0].lower().replace("cherrypick", "cherry-pick")
        )
        raise GitExpError(
            f"a {operation} is in progress: finish or abort it before checking out a run"
        )
    index = repo.index
    index.read(force=True)
    if index.conflicts is not None:
        raise GitExpError(
            "the index has unresolved conflicts: resolve them before checking out a run"
        )


def _refuse_unsavable(
    repo: pygit2.Repository, run: Run, obstacles: Iterable[str], snapshot: SnapshotTree
) -> None:
    """Refuse when checking out would destroy a file no snapshot can hold, even forced."""
    tree = repo[snapshot.tree].peel(pygit2.Tree)
    workdir = Path(repo.workdir)
    lost = [path for path in _files_at_risk(workdir, obstacles) if path not in tree]
    if lost:
        raise GitExpError(
            f"checking out {run.id} would overwrite {_list_paths(lost)}, which --force cannot "
            "save (ignored, larger than exp.maxFileSize, or a nested repository): move them "
            "away first"
        )


def _files_at_risk(workdir: Path, obstacles: Iterable[str]) -> list[str]:
    """Every file or symlink in the working tree a checkout of the obstacle paths replaces:
    the path itself, everything under it when it is a directory, and any ancestor of it
    that is not a directory."""
    found: set[str] = set()
    for path in obstacles:
        parts = path.rstrip("/").split("/")
        for depth in range(1, len(parts)):
            ancestor = "/".join(parts[:depth])
            full = workdir / ancestor
            if os.path.lexists(full) and not _is_real_dir(full):
                found.add(ancestor)
        full = workdir / path.rstrip("/")
        if _is_real_dir(full):
            for root, dirs, files in os.walk(full):
                rel_root = Path(root).relative_to(workdir).as_posix()
                for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                    found.add(f"{rel_root}/{name}")
        elif os.path.lexists(full):
            found.add(path.rstrip("/"))
    return sorted(found)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _has_local_state(
    repo: pygit2.Repository, snapshot: SnapshotTree, index_tree: pygit2.Oid
) -> bool:
    return snapshot.dirty or index_tree != _head_tree_id(repo)


def _index_tree(repo: pygit2.Repository) -> pygit2.Oid:
    index = repo.index
    index.read(force=True)
    return index.write_tree()


def _head_tree_id(repo: pygit2.Repository) -> pygit2.Oid | None:
    return None if repo.head_is_unborn else repo.head.peel(pygit2.Tree).id


def _changed_paths(repo: pygit2.Repository, old: pygit2.Tree | None, new: pygit2.Tree) -> set[str]:
    if old is None:
        return {path for path, _ in _tree_files(repo, new, "")}
    paths: set[str] = set()
    for delta in old.diff_to_tree(new).deltas:
        paths.update((delta.old_file.path, delta.new_file.path))
    return paths


def _staged_paths(repo: pygit2.Repository, head_tree: pygit2.Tree | None) -> list[str]:
    index = repo.index
    index.read(force=True)
    if head_tree is None:
        return [entry.path for entry in index]
    paths: list[str] = []
    for delta in index.diff_to_tree(head_tree).deltas:
        paths.extend((delta.old_file.path, delta.new_file.path))
    return paths


def _local_changes(repo: pygit2.Repository) -> list[str]:
    """Local changes as `git status --short` shows them (`XY path`), ignored files left out."""
    lines = []
    for path, flags in sorted(repo.status(untracked_files="all").items()):
        if flags & FileStatus.IGNORED:
            continue
        if flags & FileStatus.WT_NEW:
            lines.append(f"?? {path}")
            continue
        staged = next((code for flag, code in INDEX_CODES if flags & flag), " ")
        unstaged = next((code for flag, code in WORKTREE_CODES if flags & flag), " ")
        lines.append(f"{staged}{unstaged} {path}")
    return lines


def _head_description(repo: pygit2.Repository) -> str | None:
    """The branch HEAD is on (born or not), or the commit it is detached at."""
    if repo.head_is_detached:
        return str(repo.head.target)
    target = repo.references["HEAD"].target
    if isinstance(target, str):
        return target.removeprefix("refs/heads/")
    return None


def _saved_message(repo: pygit2.Repository, reason: str, previous: str | None) -> str:
    changes = _local_changes(repo)
    staged = sum(1 for line in changes if line[0] not in " ?")
    unstaged = sum(1 for line in changes if line[1] not in " ?")
    untracked = sum(1 for line in changes if line.startswith("??"))
    where = f" on {previous}" if previous else ""
    return (
        f"local state{where} saved by `{reason}`: {staged} staged, {unstaged} unstaged, "
        f"{untracked} untracked path(s)"
    )


def _list_paths(paths: list[str]) -> str:
    shown = ", ".join(ids.printable(path) for path in paths[:MAX_LISTED_PATHS])
    more = len(paths) - MAX_LISTED_PATHS
    return shown + (f" and {more} more" if more > 0 else "")

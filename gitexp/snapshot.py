"""The code of a run: a commit of the working tree exactly as it is, made without touching it.

git itself stages, into a private copy of the index file (`GIT_INDEX_FILE`), so whatever git
honours applies: clean filters and `.gitattributes` (LFS pointers), sparse and split indexes,
fsmonitor, the untracked cache, `core.autocrlf`. Three git processes at most:

1. `git status` on the copy says what differs and lists the untracked files, so the large
   ones are left out before anything is hashed (the copy keeps the index's stat cache, so
   unchanged files are not hashed again: ≈0.1 s on a 20,000-file tree against ≈1 s for an
   index built from HEAD);
2. `git update-index` stages exactly those paths into the copy, no second directory walk;
3. `git write-tree`. A tree with nothing staged or changed is HEAD's: only step 1 runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from gitexp.errors import GitExpError
from gitexp.gitcmd import GitCommandError, run_git

MAX_LISTED_UNTRACKED = 1000
GITLINK_MODE = "160000"
# What git must do differently on the private copy: never write a split index (it would add
# `sharedindex.*` files to the user's git dir) and never run the user's hooks
# (`post-index-change` fires on every index write, and this index is nobody's business).
PRIVATE_INDEX_CONFIG = {"core.splitIndex": "false", "core.hooksPath": os.devnull}
STATUS_ARGS = [
    "status",
    "--porcelain=v2",
    "-z",
    "--untracked-files=all",
    "--no-renames",
    # Commit changes of a submodule are reported (its index commit is kept); its contents are
    # not looked at, which would start a `git status` in every submodule.
    "--ignore-submodules=dirty",
]


@dataclass
class SnapshotTree:
    """What a snapshot holds, before it becomes a commit."""

    tree: pygit2.Oid
    head: str | None
    branch: str | None
    dirty: bool
    untracked: list[str] = field(default_factory=list)
    skipped: list[dict[str, object]] = field(default_factory=list)

    def git_info(self) -> dict[str, object]:
        """The record's `git` field."""
        return {
            "head": self.head,
            "branch": self.branch,
            "dirty": self.dirty,
            "untracked": self.untracked[:MAX_LISTED_UNTRACKED],
            "untracked_count": len(self.untracked),
            "skipped": self.skipped,
        }


@dataclass
class _WorktreeChanges:
    """What `git status` reports, sorted into what the snapshot must do."""

    staged: bool = False  # the index differs from HEAD
    to_stage: list[str] = field(default_factory=list)  # paths whose working-tree state wins
    untracked: list[str] = field(default_factory=list)  # the untracked ones among them
    skipped: list[dict[str, object]] = field(default_factory=list)


def snapshot_tree(
    repo: pygit2.Repository, max_file_size: int, environ: Mapping[str, str]
) -> SnapshotTree:
    """Write the tree of the working tree as it is now; the index file is left untouched."""
    head, branch, head_tree = _head_state(repo)
    try:
        with _private_index(repo) as index_file:
            env = {"GIT_INDEX_FILE": index_file, "GIT_OPTIONAL_LOCKS": "0"}
            status = _git(repo, STATUS_ARGS, environ, env)
            changes = _worktree_changes(Path(repo.workdir), status, max_file_size)
            if changes.to_stage:
                _git(
                    repo,
                    ["update-index", "--add", "--remove", "--replace", "-z", "--stdin"],
                    environ,
                    env,
                    stdin="".join(f"{path}\0" for path in changes.to_stage),
                )
            if head_tree is not None and not changes.staged and not changes.to_stage:
                tree = head_tree
            else:
                tree = pygit2.Oid(hex=_git(repo, ["write-tree"], environ, env).strip())
    except (GitCommandError, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise GitExpError(f"cannot snapshot the working tree: {reason}") from None
    return SnapshotTree(
        tree=tree,
        head=head,
        branch=branch,
        dirty=tree != head_tree,
        untracked=changes.untracked,
        skipped=changes.skipped,
    )


def commit_snapshot(
    repo: pygit2.Repository,
    snapshot: SnapshotTree,
    message: str,
    signature: pygit2.Signature,
    extra_parents: Sequence[pygit2.Oid] = (),
) -> pygit2.Oid:
    """A commit of the snapshot whose parent is HEAD (none when HEAD is unborn); no ref moves.

    `extra_parents` come after HEAD.
    """
    parents = [pygit2.Oid(hex=snapshot.head)] if snapshot.head else []
    parents.extend(extra_parents)
    return repo.create_commit(None, signature, signature, message, snapshot.tree, parents)


@contextlib.contextmanager
def _private_index(repo: pygit2.Repository) -> Iterator[str]:
    """A copy of the index file in the git dir (same file system, where `sharedindex.*` files
    are looked for), removed on every way out, with the `.lock` git writes it through."""
    descriptor, copy = tempfile.mkstemp(prefix="gitexp-snapshot-", suffix=".index", dir=repo.path)
    os.close(descriptor)
    try:
        _copy_index(Path(repo.path, "index"), copy)
        yield copy
    finally:
        for leftover in (copy, f"{copy}.lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _copy_index(source: Path, copy: str) -> None:
    """Copy the index with its modification time: git takes an entry whose file changed in the
    instant the index was written ("racily clean") to be modified only while the entry's time
    is not older than the index file's, so a newer copy would hide such an edit."""
    try:
        reader = open(source, "rb")  # noqa: SIM115 - closed below; a missing one is a state
    except FileNotFoundError:
        os.unlink(copy)  # no index yet (a new repository): git starts from an empty one
        return
    with reader, open(copy, "wb") as writer:
        # The times of the file whose bytes are read: git replaces the index by renaming.
        info = os.fstat(reader.fileno())
        shutil.copyfileobj(reader, writer)
    os.utime(copy, ns=(info.st_atime_ns, info.st_mtime_ns))


def _git(
    repo: pygit2.Repository,
    args: Sequence[str],
    environ: Mapping[str, str],
    env: Mapping[str, str],
    stdin: str | None = None,
) -> str:
    result = run_git(
        repo, args, environ, env=env, stdin=stdin, work_tree=True, config=PRIVATE_INDEX_CONFIG
    )
    return result.stdout


def _worktree_changes(workdir: Path, status: str, max_file_size: int) -> _WorktreeChanges:
    """Sort `git status --porcelain=v2 -z` entries: tracked paths whose working-tree state
    must be staged (not a submodule: it keeps its index commit), untracked files to add, and
    untracked files left out (nested repositories, over `max_file_size`, unreadable)."""
    changes = _WorktreeChanges()
    for entry in status.split("\0"):
        kind, _, rest = entry.partition(" ")
        if kind == "1":
            fields = rest.split(" ", 7)  # XY sub mH mI mW hH hI path
            changes.staged |= fields[0][0] != "."
            if fields[0][1] != "." and fields[3] != GITLINK_MODE:
                _stage_tracked(workdir, fields[7], changes)
        elif kind == "u":  # unmerged: the working-tree file is the resolution
            changes.staged = True
            _stage_tracked(workdir, rest.split(" ", 9)[9], changes)
        elif kind == "?":
            _stage_untracked(workdir, rest, max_file_size, changes)
    return changes


def _stage_tracked(workdir: Path, path: str, changes: _WorktreeChanges) -> None:
    info = _lstat(workdir / path)
    if info is not None and _unreadable(workdir / path, info):
        # A training program may change permissions under us: the index version stays.
        changes.skipped.append({"path": path, "size": info.st_size, "reason": "unreadable"})
        return
    changes.to_stage.append(path)  # a missing file is removed from the index


def _stage_untracked(
    workdir: Path, path: str, max_file_size: int, changes: _WorktreeChanges
) -> None:
    if path.endswith("/"):  # git lists a nested repository as one directory
        changes.skipped.append({"path": path, "size": None, "reason": "nested repository"})
        return
    info = _lstat(workdir / path)
    if info is None:
        return  # deleted since git looked: the run starts without it
    if info.st_size > max_file_size:
        reason = "larger than exp.maxFileSize"
        changes.skipped.append({"path": path, "size": info.st_size, "reason": reason})
    elif _unreadable(workdir / path, info):
        changes.skipped.append({"path": path, "size": info.st_size, "reason": "unreadable"})
    else:
        changes.to_stage.append(path)
        changes.untracked.append(path)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return path.lstat()
    except OSError:
        return None


def _unreadable(path: Path, info: os.stat_result) -> bool:
    """A regular file git could not read to hash (a symlink is stored as its target)."""
    return stat.S_ISREG(info.st_mode) and not os.access(path, os.R_OK)


def _head_state(repo: pygit2.Repository) -> tuple[str | None, str | None, pygit2.Oid | None]:
    """(HEAD commit, branch name or None, HEAD's tree) — all None parts when unborn."""
    branch = None
    if not repo.head_is_detached:
        target = repo.references["HEAD"].target
        if isinstance(target, str) and target.startswith("refs/heads/"):
            branch = target[len("refs/heads/") :]
    if repo.head_is_unborn:
        return None, branch, None
    commit = repo.head.peel(pygit2.Commit)
    return str(commit.id), branch, commit.tree.id

"""Linked worktrees checked out at a commit, made without creating or moving any branch.

libgit2's `git_worktree_add` (pygit2's `add_worktree`) only checks out a branch: given no ref
it creates a branch named after the worktree, and given any other ref it refuses ("reference
is not a branch"). So we write the administrative files of gitrepository-layout(5) —
`<common dir>/worktrees/<id>/{gitdir,commondir,HEAD}` and a `.git` file in the new directory —
as `git worktree add --detach` does, and let libgit2 do the checkout. A `locked` file guards
the half-made worktree against a concurrent `git worktree prune`, as git's does.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy

from gitexp.errors import GitExpError
from gitexp.record import process_alive
from gitexp.repository import common_dir

WORKTREE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
TEMPORARY_PREFIX = "rerun-"
TEMPORARY_PARENT = ".worktrees"  # under the run directories' root: same filesystem, cheap moves
# The `locked` reason of a temporary worktree names its owner, as a running run's record does:
# `git worktree prune` leaves it alone, and once that process is gone, `prune_abandoned` not.
OWNER_REASON = "git exp rerun: pid {pid} started {started!r}\n"
OWNER_PATTERN = re.compile(r"git exp rerun: pid (\d+) started (\d+(?:\.\d+)?)\n\Z")


@dataclass
class Worktree:
    """A linked worktree we made: its directory and its administrative directory."""

    path: Path
    admin: Path

    @property
    def name(self) -> str:
        """The worktree's id, as `git worktree list --porcelain` and libgit2 know it."""
        return self.admin.name

    def open(self) -> pygit2.Repository:
        """The repository as seen from inside the worktree."""
        return pygit2.Repository(str(self.path))


def check_new_worktree_path(repo: pygit2.Repository, path: Path) -> None:
    """Refuse a path that exists or that git still knows as a (missing) worktree."""
    if path.exists() or path.is_symlink():
        raise GitExpError(f"'{path}' already exists")
    for name in repo.list_worktrees():
        with contextlib.suppress(pygit2.GitError):
            known = Path(repo.lookup_worktree(name).path)
            if known.resolve() == path.resolve():
                raise GitExpError(
                    f"'{path}' is a missing but registered worktree; run `git worktree prune` first"
                )


def add_worktree(
    repo: pygit2.Repository,
    path: Path,
    commit: pygit2.Oid,
    reflog_message: str,
    branch: str | None = None,
    locked_reason: str | None = None,
) -> Worktree:
    """A new linked worktree at `path` with `commit` checked out.

    HEAD is detached at `commit`, or on the existing branch `branch` (its full ref name).
    With `locked_reason` the worktree stays locked with it. Nothing is left behind when
    this fails.
    """
    check_new_worktree_path(repo, path)
    try:
        admin = _make_admin_dir(repo, path.name)
    except OSError as exc:
        raise GitExpError(f"cannot create a worktree at '{path}': {exc.strerror}") from None
    worktree = Worktree(path=path.absolute(), admin=admin)
    created_path = False
    try:
        (admin / "locked").write_text("initializing\n")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir()
        except FileExistsError:
            raise GitExpError(f"'{path}' already exists") from None
        created_path = True
        (admin / "gitdir").write_text(f"{worktree.path.resolve() / '.git'}\n")
        (admin / "commondir").write_text("../..\n")
        (admin / "HEAD").write_text(f"ref: {branch}\n" if branch else f"{commit}\n")
        (worktree.path / ".git").write_text(f"gitdir: {admin}\n")
        checkout = worktree.open()
        checkout.checkout_tree(checkout[commit], strategy=CheckoutStrategy.FORCE)
        if branch:
            checkout.create_reference_symbolic("HEAD", branch, True, message=reflog_message)
        else:
            checkout.create_reference_direct("HEAD", commit, True, message=reflog_message)
        if locked_reason is None:
            (admin / "locked").unlink()
        else:
            (admin / "locked").write_text(locked_reason)
    except BaseException as exc:
        if created_path:
            shutil.rmtree(worktree.path, ignore_errors=True)
        shutil.rmtree(admin, ignore_errors=True)
        if isinstance(exc, (OSError, pygit2.GitError)):
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise GitExpError(f"cannot create a worktree at '{path}': {reason}") from None
        raise
    return worktree


def remove_worktree(repo: pygit2.Repository, worktree: Worktree) -> None:
    """Delete the worktree's directory and prune its administrative directory."""
    shutil.rmtree(worktree.path, ignore_errors=True)
    with contextlib.suppress(pygit2.GitError, KeyError, OSError):
        repo.lookup_worktree(worktree.name).prune(True)
    shutil.rmtree(worktree.admin, ignore_errors=True)


def temporary_worktree_path(root: Path) -> Path:
    """A fresh path under the run directories' `root` for a worktree that lives only as long
    as one command."""
    return root / TEMPORARY_PARENT / f"{TEMPORARY_PREFIX}{secrets.token_hex(4)}"


def owner_reason() -> str:
    """The `locked` reason naming this process as a temporary worktree's owner."""
    import psutil

    return OWNER_REASON.format(pid=os.getpid(), started=psutil.Process().create_time())


def prune_abandoned(repo: pygit2.Repository) -> list[Path]:
    """Remove the temporary worktrees whose owner died (a `git exp rerun` killed with -9).

    Only worktrees gitexp made for a rerun qualify (their `locked` reason names the owning
    process, their directory is `<root>/.worktrees/rerun-*`), and only once that process is
    gone: a user's worktree and a live rerun's are never touched.
    """
    try:
        admins = sorted(entry for entry in (common_dir(repo) / "worktrees").iterdir())
    except OSError:
        return []
    pruned = []
    for admin in admins:
        path = _abandoned_worktree_path(admin)
        if path is not None:
            remove_worktree(repo, Worktree(path=path, admin=admin))
            pruned.append(path)
    return pruned


def _abandoned_worktree_path(admin: Path) -> Path | None:
    try:
        owner = OWNER_PATTERN.match((admin / "locked").read_text())
        path = Path((admin / "gitdir").read_text().strip()).parent
    except (OSError, UnicodeDecodeError):
        return None
    if owner is None or process_alive(int(owner.group(1)), float(owner.group(2))):
        return None
    if not path.name.startswith(TEMPORARY_PREFIX) or path.parent.name != TEMPORARY_PARENT:
        return None
    return path


def _make_admin_dir(repo: pygit2.Repository, hint: str) -> Path:
    """Create `<common dir>/worktrees/<id>` under a free id derived from `hint`, as git does."""
    root = common_dir(repo) / "worktrees"
    root.mkdir(parents=True, exist_ok=True)
    base = WORKTREE_ID_CHARACTERS.sub("-", hint).strip(".-") or "worktree"
    for number in range(1000):
        candidate = root / (base if number == 0 else f"{base}{number}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise GitExpError(f"cannot create a worktree: too many worktrees named {base} in {root}")

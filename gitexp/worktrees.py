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
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import CheckoutStrategy

from gitexp.errors import GitExpError
from gitexp.repository import common_dir

WORKTREE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


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
) -> Worktree:
    """A new linked worktree at `path` with `commit` checked out.

    HEAD is detached at `commit`, or on the existing branch `branch` (its full ref name).
    Nothing is left behind when this fails.
    """
    check_new_worktree_path(repo, path)
    admin = _make_admin_dir(repo, path.name)
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
        (admin / "locked").unlink()
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
    with contextlib.suppress(pygit2.GitError, KeyError):
        repo.lookup_worktree(worktree.name).prune(True)
    shutil.rmtree(worktree.admin, ignore_errors=True)


def temporary_worktree_path(parent: Path) -> Path:
    """A fresh path under `parent` for a worktree that lives only as long as one command."""
    return parent / f"rerun-{secrets.token_hex(4)}"


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

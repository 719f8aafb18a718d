"""Opening the user's repository and reading the settings gitexp takes from git config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pygit2

from gitexp.errors import GitExpError
from gitexp.ids import printable

DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024
# A note larger than this is never parsed: listed `unreadable` (too large), left out by pull.
DEFAULT_MAX_RECORD_SIZE = 4 * 1024 * 1024
FALLBACK_IDENTITY = ("gitexp", "gitexp@localhost")


def open_repository(path: str | os.PathLike[str]) -> pygit2.Repository:
    """The repository containing `path`, found the way git finds it."""
    found = pygit2.discover_repository(str(path))
    if found is None:
        raise GitExpError(
            f"not a git repository (or any of the parent directories): {Path(path).resolve()}"
        )
    try:
        return pygit2.Repository(found)
    except pygit2.GitError as exc:
        raise GitExpError(f"cannot open repository at {found}: {exc}") from None


def require_worktree(repo: pygit2.Repository) -> Path:
    """The root of the working tree; a bare repository has none."""
    if repo.is_bare or repo.workdir is None:
        raise GitExpError(
            f"this operation needs a working tree, but {repo.path.rstrip('/')} is a bare repository"
        )
    return Path(repo.workdir)


def common_dir(repo: pygit2.Repository) -> Path:
    """The directory shared by all worktrees (`git rev-parse --git-common-dir`)."""
    gitdir = Path(repo.path)
    pointer = gitdir / "commondir"
    if pointer.is_file():
        return (gitdir / pointer.read_text().strip()).resolve()
    return gitdir.resolve()


def config_value(repo: pygit2.Repository, key: str) -> str | None:
    try:
        return repo.config[key]
    except KeyError:
        return None


def config_size(repo: pygit2.Repository, key: str, default: int) -> int:
    """A size from git config, with git's k/m/g suffixes."""
    if config_value(repo, key) is None:
        return default
    try:
        return repo.config.get_int(key)
    except (pygit2.GitError, ValueError):
        raise GitExpError(
            f"bad value for {key}: {config_value(repo, key)!r} (expected a size like 10m)"
        ) from None


def max_record_size(repo: pygit2.Repository) -> int:
    """`exp.maxRecordSize`: the largest note gitexp parses or takes from a remote."""
    return config_size(repo, "exp.maxRecordSize", DEFAULT_MAX_RECORD_SIZE)


def identity(repo: pygit2.Repository, environ: Mapping[str, str]) -> pygit2.Signature:
    """Who a snapshot is by: git's author settings, or a fixed gitexp identity when none is set."""
    name = environ.get("GIT_AUTHOR_NAME") or config_value(repo, "user.name")
    email = environ.get("GIT_AUTHOR_EMAIL") or config_value(repo, "user.email")
    if not name or not email:
        name, email = FALLBACK_IDENTITY
    return pygit2.Signature(name, email)


def default_remote(repo: pygit2.Repository, remote: str | None) -> str:
    """`remote`, else `exp.remote`, else the current branch's remote, else `origin`."""
    candidates = [remote, config_value(repo, "exp.remote")]
    if not repo.head_is_detached and not repo.head_is_unborn:
        candidates.append(config_value(repo, f"branch.{repo.head.shorthand}.remote"))
    candidates.append("origin")
    chosen = next(name for name in candidates if name)
    if chosen not in set(repo.remotes.names()):
        raise GitExpError(
            f"no such remote '{printable(chosen, limit=100)}' (git remote -v lists them)"
        )
    return chosen

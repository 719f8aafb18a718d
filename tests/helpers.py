"""Shared helpers for core-level tests: real git is the oracle for everything gitexp writes."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pygit2
import pytest
from conftest import git
from pygit2.enums import ConfigLevel

from gitexp import ids, store
from gitexp.record import dump_record, new_record

SIGNATURE = pygit2.Signature("Test User", "test@example.com")


@pytest.fixture
def libgit2_home(hermetic_env: Path) -> Iterator[None]:
    """Point libgit2's config search path at the scratch home, as conftest does for git.

    libgit2 reads $HOME once, when pygit2 is first imported, so in-process tests would
    otherwise see the real ~/.gitconfig and /etc/gitconfig.
    """
    levels = (ConfigLevel.SYSTEM, ConfigLevel.XDG, ConfigLevel.GLOBAL)
    saved = {level: pygit2.settings.search_path[level] for level in levels}
    empty_system = hermetic_env / "no-system-config"
    empty_system.mkdir(exist_ok=True)
    pygit2.settings.search_path[ConfigLevel.SYSTEM] = str(empty_system)
    pygit2.settings.search_path[ConfigLevel.XDG] = str(hermetic_env / ".config" / "git")
    pygit2.settings.search_path[ConfigLevel.GLOBAL] = str(hermetic_env)
    yield
    for level, path in saved.items():
        pygit2.settings.search_path[level] = path


def git_env(cwd: Path, env: dict[str, str], *args: str) -> str:
    """Run git with extra environment variables; fail loudly with its stderr."""
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **env},
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def oracle_tree(repo_dir: Path, scratch: Path, leave_out: Sequence[str] = ()) -> str:
    """The tree real git writes for the working tree, from a copy of the index.

    `cp -p <index> tmp; GIT_INDEX_FILE=tmp git add -A; git write-tree`, leaving out the paths
    gitexp skips on purpose (`leave_out`). The copy lives outside the working tree so it never
    shows up as an untracked file.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    index_copy = scratch / "oracle-index"
    index_file = Path(
        git(repo_dir, "rev-parse", "--path-format=absolute", "--git-path", "index").strip()
    )
    if index_file.exists():
        # With its mtime: a newer copy lets git take a same-size edit made in the second the
        # index was written ("racily clean") as unchanged.
        shutil.copy2(index_file, index_copy)
    elif index_copy.exists():
        index_copy.unlink()
    env = {"GIT_INDEX_FILE": str(index_copy)}
    excludes = [f":(exclude,literal){path.rstrip('/')}" for path in leave_out]
    git_env(repo_dir, env, "add", "-A", "--", ".", *excludes)
    return git_env(repo_dir, env, "write-tree").strip()


def ls_tree(repo_dir: Path, tree: str) -> list[str]:
    """`git ls-tree -r` of `tree`, one entry a line: what a failing comparison shows."""
    return git(repo_dir, "ls-tree", "-r", "--full-tree", tree).splitlines()


def repo_state(repo_dir: Path) -> dict[str, Any]:
    """What a read-only operation must leave alone: the index bytes, HEAD and every ref."""
    git_dir = Path(git(repo_dir, "rev-parse", "--path-format=absolute", "--git-dir").strip())
    index_file = git_dir / "index"
    return {
        "index": index_file.read_bytes() if index_file.exists() else None,
        "HEAD": (git_dir / "HEAD").read_text(),
        "refs": git(repo_dir, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain=v2", "-z", "-uall"],
            cwd=repo_dir,
            capture_output=True,
            check=True,
        ).stdout,
    }


def fsck(repo_dir: Path) -> None:
    """`git fsck --strict` must find nothing to say about what gitexp wrote."""
    result = subprocess.run(
        ["git", "fsck", "--strict", "--no-progress", "--no-dangling"],
        cwd=repo_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # An unborn HEAD earns a "notice:", which is not a problem with the objects.
    problems = [line for line in result.stderr.splitlines() if not line.startswith("notice:")]
    assert problems == [], result.stderr


def old_signature(seconds_ago: float) -> pygit2.Signature:
    """A signature dated `seconds_ago` before now."""
    when = int(dt.datetime.now().timestamp() - seconds_ago)
    return pygit2.Signature("Test User", "test@example.com", when, 0)


def make_run(
    repo: pygit2.Repository,
    name: str,
    run_id: str,
    record: dict[str, Any] | bytes | None = None,
    *,
    seconds_ago: float = 3600,
) -> tuple[str, str]:
    """A run as gitexp stores one: a commit, its ref, and (unless None) a note on it.

    `record` is a dict (dumped as gitexp would), raw bytes (written as they are) or None
    (no note at all). Returns (ref, commit hex).
    """
    signature = old_signature(seconds_ago)
    tree = repo.TreeBuilder().write()
    head = [] if repo.head_is_unborn else [repo.head.target]
    commit = repo.create_commit(None, signature, signature, f"exp: {name}/{run_id}\n", tree, head)
    ref = ids.run_ref(name, run_id)
    assert store.create_ref(repo, ref, commit)
    if record is not None:
        data = record if isinstance(record, bytes) else dump_record(record)
        store.update_note(repo, str(commit), lambda _old: data, SIGNATURE)
    return ref, str(commit)


def finished_record(name: str, run_id: str, started_at: str, **fields: Any) -> dict[str, Any]:
    """A finished run's record, as the run command leaves it."""
    return new_record(
        id=f"{name}/{run_id}",
        name=name,
        ref=ids.run_ref(name, run_id),
        status="succeeded",
        started_at=started_at,
        **fields,
    )


def started(hour: int) -> str:
    """A start time on 2026-11-20 at `hour` o'clock (UTC)."""
    return f"2026-11-20T{hour:02d}:00:00.000+00:00"


def make_three_runs(repo_dir: Path) -> pygit2.Repository:
    """train/...001.k3f9 (oldest), eval/...001.ab12, train/...002.zz99 (newest)."""
    repo = pygit2.Repository(str(repo_dir))
    for name, run_id, hour in (
        ("train", "20261120.001.k3f9", 9),
        ("train", "20261120.002.zz99", 11),
        ("eval", "20261120.001.ab12", 10),
    ):
        make_run(repo, name, run_id, finished_record(name, run_id, started(hour)))
    return repo

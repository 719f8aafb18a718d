"""Helpers for the tests of `git exp checkout` and `git exp rerun`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pygit2
import pytest
from conftest import git
from helpers_e2e import run_core, write_program

from gitexp.commands.run import RunResult

BASE_FILES = {
    "model.py": "WIDTH = 1\n",
    "other.txt": "unrelated\n",
    "noop.py": "import sys\nsys.exit(0)\n",
    ".gitignore": "*.ckpt\ndata/\n",
}
# What the run's snapshot has beyond HEAD: a changed file and a new one.
RUN_FILES = {"model.py": "WIDTH = 2  # the run's code\n", "new.txt": "added by the run\n"}


def commit_files(repo: Path, files: dict[str, str], message: str = "base") -> str:
    for path, text in files.items():
        write_program(repo / path, text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


def run_with_changes(repo: Path, capfd: pytest.CaptureFixture[str]) -> RunResult:
    """A real run whose snapshot changes model.py and adds new.txt; the working tree is then
    put back to HEAD, so checking the run out changes exactly those two paths."""
    commit_files(repo, BASE_FILES)
    for path, text in RUN_FILES.items():
        (repo / path).write_text(text)
    result, _ = run_core(repo, "noop.py")
    capfd.readouterr()
    git(repo, "checkout", "-q", "--", "model.py")
    (repo / "new.txt").unlink()
    assert git(repo, "status", "--porcelain") == ""
    return result


def index_tree(repo: Path, scratch: Path) -> str:
    """The tree of the index, written from a copy so the index file stays as it is."""
    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / "index-copy"
    shutil.copyfile(repo / ".git" / "index", copy)
    result = subprocess.run(
        ["git", "write-tree"],
        cwd=repo,
        env={**os.environ, "GIT_INDEX_FILE": str(copy)},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def worktree_list(repo: Path) -> list[str]:
    """`git worktree list --porcelain`, one worktree per item."""
    text = git(repo, "worktree", "list", "--porcelain")
    return [block for block in text.strip().split("\n\n") if block]


def prune_has_nothing_to_do(repo: Path) -> bool:
    return git(repo, "worktree", "prune", "--dry-run", "--verbose") == ""


def show_file(repo: Path, revision: str, path: str) -> str:
    return git(repo, "show", f"{revision}:{path}")


def open_repo(path: Path) -> pygit2.Repository:
    return pygit2.Repository(str(path))

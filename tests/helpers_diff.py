"""Helpers for the `git exp diff` and `git exp compare` tests: runs made from real snapshots.

A run here is what `git exp run` leaves, made quickly: the working tree's tree as real git
writes it (`git add -A` into a copy of the index), a commit on HEAD, its ref, and a record.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pygit2
from click.testing import CliRunner, Result
from conftest import git
from helpers import SIGNATURE, finished_record
from helpers_e2e import add_all_tree

from gitexp import ids, store
from gitexp.cli import cli
from gitexp.record import dump_record


def snapshot_run(
    repo_dir: Path,
    run_id: str,
    fields: dict[str, Any] | None = None,
    *,
    name: str = "train",
    started_at: str = "2026-01-01T10:00:00.000+00:00",
    record: bool = True,
) -> tuple[str, str]:
    """Record the working tree as run `<name>/<run_id>` with record `fields`; (full id, commit)."""
    scratch = repo_dir.parent / "scratch"
    tree = add_all_tree(repo_dir, scratch)
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    commit = git(repo_dir, "commit-tree", tree, "-p", head, "-m", f"exp: {name}/{run_id}").strip()
    ref = ids.run_ref(name, run_id)
    git(repo_dir, "update-ref", ref, commit, "")
    if record:
        data = finished_record(name, run_id, started_at, commit=commit, **(fields or {}))
        repo = pygit2.Repository(str(repo_dir))
        store.update_note(repo, commit, lambda _old: dump_record(data), SIGNATURE)
    return f"{name}/{run_id}", commit


def invoke(*args: str, color: bool = False) -> Result:
    """`git exp ARGS...` in-process through click's CliRunner (stdout and stderr apart)."""
    return CliRunner().invoke(cli, list(args), color=color)


def git_bytes(repo_dir: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    """The raw stdout of a git command (patches are bytes, not text)."""
    return subprocess.run(
        ["git", *args], cwd=repo_dir, capture_output=True, check=True, env=env
    ).stdout


def on_a_terminal(cwd: Path, command: list[str], env: dict[str, str]) -> bytes:
    """What `command` writes to its stdout when that is a terminal (a pseudo-terminal here)."""
    import pty

    controller, terminal = pty.openpty()
    with subprocess.Popen(
        command, cwd=cwd, env=env, stdout=terminal, stderr=subprocess.PIPE
    ) as process:
        os.close(terminal)
        output = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            output += chunk
        errors = process.communicate()[1]
    os.close(controller)
    assert process.returncode == 0, errors
    return output

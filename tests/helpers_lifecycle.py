"""Helpers for the tests of `git exp gc`, `status` and `artifact`."""

from __future__ import annotations

import hashlib
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pygit2
from conftest import git
from helpers import SIGNATURE, make_run

from gitexp import ids
from gitexp.deletions import remember_deletion
from gitexp.record import new_record, update_record


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fake_run(
    repo: pygit2.Repository,
    name: str,
    run_id: str,
    run_dir: Path | None = None,
    files: dict[str, bytes] | None = None,
    **fields: Any,
) -> tuple[str, str]:
    """A finished run stored as gitexp stores one, with a run directory holding `files`; a
    `deleted` mark is one made here (as `git exp rm` makes it)."""
    if run_dir is not None:
        for relative, data in (files or {}).items():
            target = run_dir / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        run_dir.mkdir(parents=True, exist_ok=True)
        fields.setdefault("run_dir", str(run_dir))
    record = new_record(
        id=f"{name}/{run_id}",
        name=name,
        ref=ids.run_ref(name, run_id),
        status="succeeded",
        started_at="2026-01-01T00:00:00.000+00:00",
    )
    record.update(fields)
    made = make_run(repo, name, run_id, record)
    if isinstance(fields.get("deleted"), str):
        remember_deletion(repo, made[1], fields["deleted"])
    return made


def set_fields(repo: pygit2.Repository, commit: str, **fields: Any) -> None:
    """Change a record the way every gitexp command does (compare-and-swap)."""
    update_record(repo, commit, lambda record: record.update(fields), SIGNATURE)


def alive_host() -> dict[str, Any]:
    """A `host` field whose supervisor is this (alive) test process."""
    me = psutil.Process()
    return {"hostname": socket.gethostname(), "pid": me.pid, "pid_started_at": me.create_time()}


def dead_host() -> dict[str, Any]:
    """A `host` field of this machine whose supervisor is gone (a reaped pid, other start)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return {"hostname": socket.gethostname(), "pid": child.pid, "pid_started_at": 1.0}


def notes_list(repo_dir: Path) -> dict[str, str]:
    """annotated object -> note blob, as `git notes list` prints them."""
    out = git(repo_dir, "notes", "--ref", "experiments", "list", check=False)
    return {obj: blob for blob, obj in (line.split() for line in out.splitlines())}


def run_dirs(root: Path) -> list[str]:
    """`<name>/<id>` of every run directory under a logdir root."""
    return sorted(
        f"{path.parent.name}/{path.name}"
        for path in root.glob("*/*")
        if path.is_dir() and path.parent.name != ".locks"
    )

"""`git exp artifact`: the files a run recorded with `gitexp.artifact(...)`, and where they are.

The list comes from the record; while the record still says `running` (the run is going, or
its supervisor died before finishing the record) it is read from the run directory's
`artifacts.jsonl`. Every file is checked to exist with its recorded size; `verify` also
re-hashes it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from gitexp import rundir
from gitexp.child import is_artifact_name
from gitexp.errors import GitExpError
from gitexp.listing import Run
from gitexp.runspec import find_run

HASH_CHUNK = 1024 * 1024
# What an artifact's file looks like now, compared with its entry.
OK, MISSING, CHANGED, OUTSIDE = "ok", "missing", "changed", "outside"


@dataclass
class Artifact:
    """One recorded artifact, and the state of its file now."""

    name: str
    path: str
    file: Path | None
    size: int | None
    sha256: str | None
    source: str | None
    logged_at: str | None
    state: str = OK
    verified: bool = False
    detail: str = ""

    def as_json(self) -> dict[str, Any]:
        """The entry as recorded, plus `file` (absolute), `state` and `verified`."""
        return {
            "name": self.name,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "source": self.source,
            "logged_at": self.logged_at,
            "file": None if self.file is None else str(self.file),
            "state": self.state,
            "verified": self.verified,
        }


def list_artifacts(
    repo: pygit2.Repository, spec: str, verify: bool = False, env_logdir: str | None = None
) -> tuple[Run, list[Artifact]]:
    """The run `spec` names and its artifacts, each checked (and re-hashed with `verify`).

    Files are looked for only in this clone's run directory (rundir.locate_run_dir), never
    where the record's `run_dir` says: a record may come from someone else's remote.
    """
    run = find_run(repo, spec)
    record = run.record or {}
    base = rundir.locate_run_dir(repo, run.name, run.run_id, env_logdir)
    if record.get("status") == "running" and base is not None:
        entries: list[Any] = rundir.read_artifacts(base)[0]
    else:
        raw = record.get("artifacts")
        entries = raw if isinstance(raw, list) else []
    artifacts = [_artifact(entry, base) for entry in entries if _is_entry(entry)]
    for artifact in artifacts:
        check_artifact(artifact, verify)
    return run, artifacts


def find_artifact(
    repo: pygit2.Repository,
    spec: str,
    name: str,
    verify: bool = False,
    env_logdir: str | None = None,
) -> tuple[Run, Artifact]:
    """One artifact by name; raises when it is unknown or its file is not as recorded."""
    run, artifacts = list_artifacts(repo, spec, verify, env_logdir)
    for artifact in reversed(artifacts):
        if artifact.name == name:
            if artifact.state != OK:
                raise GitExpError(f"artifact '{name}' of {run.id} {artifact.detail}")
            return run, artifact
    if not artifacts:
        raise GitExpError(f"run {run.id} has no artifacts")
    names = ", ".join(artifact.name for artifact in artifacts)
    raise GitExpError(f"run {run.id} has no artifact '{name}' (it has: {names})")


def check_artifact(artifact: Artifact, verify: bool) -> None:
    """Set `artifact.state`: the file must exist with the recorded size (and sha256)."""
    if artifact.state == OUTSIDE:
        return
    if artifact.file is None:
        artifact.state = MISSING
        artifact.detail = "is missing: its run directory is not here"
        return
    try:
        size = os.stat(artifact.file).st_size
    except OSError:
        artifact.state = MISSING
        artifact.detail = f"is missing: {artifact.file} does not exist"
        return
    if artifact.size is not None and size != artifact.size:
        artifact.state = CHANGED
        artifact.detail = (
            f"changed since it was recorded: {artifact.file} has {size} bytes, "
            f"not the {artifact.size} recorded"
        )
        return
    if not verify:
        return
    digest = file_sha256(artifact.file)
    artifact.verified = True
    if artifact.sha256 is not None and digest != artifact.sha256:
        artifact.state = CHANGED
        artifact.detail = (
            f"changed since it was recorded: {artifact.file} has sha256 {digest[:12]}, "
            f"not the {artifact.sha256[:12]} recorded"
        )


def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and is_artifact_name(entry.get("name"))


def _artifact(entry: dict[str, Any], base: Path | None) -> Artifact:
    path = entry.get("path")
    size, sha256 = entry.get("size"), entry.get("sha256")
    artifact = Artifact(
        name=entry["name"],
        path=path if isinstance(path, str) else "",
        file=None if base is None else rundir.artifact_file(base, path),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        sha256=sha256 if isinstance(sha256, str) else None,
        source=_text(entry.get("source")),
        logged_at=_text(entry.get("logged_at")),
    )
    if not rundir.is_relative_path(path) or (base is not None and artifact.file is None):
        artifact.state = OUTSIDE
        artifact.detail = f"has a path outside its run directory: {path!r}"
    return artifact


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None

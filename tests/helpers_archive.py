"""Helpers for the tests of `git exp init`, `export` and `import`: clones, pushes, archives."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from pathlib import Path

from conftest import git
from helpers_e2e import user_env, write_program

TRAIN = """
import gitexp
gitexp.params({"width": 3})
for step in range(3):
    gitexp.log(step=step, loss=1.0 / (step + 1))
with open("model.pt", "wb") as handle:
    handle.write(b"weights" * 100)
gitexp.artifact("model.pt", name="last.pt")
print("training done")
"""

Member = tuple[tarfile.TarInfo, bytes | None]


def make_remote_and_clone(tmp_path: Path, name: str = "a") -> tuple[Path, Path]:
    """A bare remote and a clone of it with one commit (train.py) pushed to `main`."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    clone = clone_of(remote, tmp_path / name)
    write_program(clone / "train.py", TRAIN)
    (clone / ".gitignore").write_text("model.pt\n")
    git(clone, "add", "train.py", ".gitignore")
    git(clone, "commit", "-q", "-m", "train")
    git(clone, "push", "-q", "origin", "main")
    return remote, clone


def clone_of(remote: Path, path: Path) -> Path:
    git(path.parent, "clone", "-q", str(remote), str(path))
    git(path, "config", "user.name", f"User {path.name}")
    git(path, "config", "user.email", f"{path.name}@example.com")
    return path


def git_user(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Real git with the user's PATH (so hooks find `git exp`); the result, unchecked."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=user_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def remote_refs(remote: Path) -> set[str]:
    return set(git(remote, "for-each-ref", "--format=%(refname)").split())


def archive_members(path: Path) -> list[Member]:
    """Every member of a tar.gz with its content (None for non-files)."""
    members = []
    with tarfile.open(path, "r:gz") as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            members.append((member, handle.read() if handle is not None else None))
    return members


def write_archive(path: Path, members: list[Member]) -> Path:
    """A tar.gz of `members`; a manifest first declares the members and bytes after it, as
    `git exp export` writes it (a hostile archive can declare what it holds as well)."""
    if members and members[0][0].name == "manifest.json" and members[0][1] is not None:
        manifest = json.loads(members[0][1])
        if isinstance(manifest, dict) and "bytes" in manifest:
            manifest["members"] = len(members) - 1
            manifest["bytes"] = sum(len(data or b"") for _, data in members[1:])
            members = [(members[0][0], json.dumps(manifest).encode()), *members[1:]]
    with tarfile.open(path, "w:gz") as archive:
        for member, data in members:
            if data is not None:
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data) if data is not None else None)
    return path


def rewrite_archive(
    source: Path, target: Path, change: Callable[[list[Member]], list[Member]]
) -> Path:
    """Copy the archive at `source` to `target`, its member list passed through `change`."""
    return write_archive(target, change(archive_members(source)))


def extra_member(name: str, data: bytes = b"x", **attributes: object) -> Member:
    """A member to add to an archive: a regular file unless `type` etc. say otherwise."""
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    for key, value in attributes.items():
        setattr(info, key, value)
    return info, (data if info.isfile() else None)

"""Helpers for the guarantee tests: small filesystems that fill up or turn read-only, runs
with hand-made records, and the CLI called in-process."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import git
from helpers_e2e import user_env

HOST_NAME = socket.gethostname()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(list(args), capture_output=True, text=True, check=False)
    except OSError as exc:  # the tool is not installed: the caller skips
        return subprocess.CompletedProcess(list(args), 127, "", f"{args[0]}: {exc.strerror}")


@contextmanager
def tmpfs(path: Path, size: str = "1m", read_only: bool = False) -> Iterator[Path]:
    """A fresh tmpfs of `size` mounted at `path`; skips the test where mounting is refused."""
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    mounted = _run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


@contextmanager
def ext4_image(path: Path, image: Path, size: str = "8M") -> Iterator[Path]:
    """A loop-mounted ext4 at `path` with errors=remount-ro; skips where that is refused.

    tmpfs cannot be remounted read-only while a file on it is open for writing (EBUSY), and
    gitexp keeps output.log open: an ext4 that hits an error turns read-only under open
    files, as a failing disk does.
    """
    path.mkdir(parents=True, exist_ok=True)
    made = _run("truncate", "-s", size, str(image))
    if made.returncode == 0:
        made = _run("mkfs.ext4", "-q", "-F", str(image))
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 image: {made.stderr.strip()}")
    mounted = _run("mount", "-o", "loop,errors=remount-ro", str(image), str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot loop-mount an ext4 image (needs root): {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        _run("umount", "-l", str(path))


def trigger_ext4_error(mount_point: Path) -> None:
    """Make the ext4 at `mount_point` hit an error, so that it remounts itself read-only."""
    source = _run("findmnt", "-n", "-o", "SOURCE", str(mount_point)).stdout.strip()
    trigger = Path("/sys/fs/ext4") / Path(source).name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip(f"{trigger} is missing: this kernel cannot simulate a disk error")
    trigger.write_text("gitexp test: simulated disk error")


def fake_run(repo: Path, name: str, run_id: str, record: bytes | None) -> tuple[str, str]:
    """A run ref made with plain git, its note set to `record` byte for byte (None: no note).

    Records fetched from someone else's remote can hold anything: this is how they arrive.
    """
    tree = git(repo, "rev-parse", "HEAD^{tree}").strip()
    head = git(repo, "rev-parse", "HEAD").strip()
    commit = subprocess.run(
        ["git", "commit-tree", tree, "-p", head, "-m", f"exp: {name}/{run_id}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ref = f"refs/experiments/{name}/{run_id}"
    git(repo, "update-ref", ref, commit)
    if record is not None:
        blob = (
            subprocess.run(
                ["git", "hash-object", "-w", "--stdin"],
                cwd=repo,
                input=record,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        git(repo, "notes", "--ref", "experiments", "add", "-f", "-C", blob, commit)
    return ref, commit


def peak_rss(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`git exp ARGS...` and the peak resident memory of it and its children, in bytes."""
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(done.stderr); sys.stdout.write(done.stdout)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(done.returncode)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", measure, "git", "exp", *args],
        cwd=cwd,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    *stderr, rss_kib = result.stderr.splitlines()
    result.stderr = "\n".join(stderr) + "\n" if stderr else ""
    return result, int(rss_kib) * 1024


@contextmanager
def read_only_bind(path: Path) -> Iterator[Path]:
    """`path` bind-mounted read-only over itself (as root, chmod does not stop writes)."""
    mounted = _run("mount", "--bind", str(path), str(path))
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount (needs root): {mounted.stderr.strip()}")
    try:
        remounted = _run("mount", "-o", "remount,bind,ro", str(path))
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only: {remounted.stderr.strip()}")
        yield path
    finally:
        _run("umount", "-l", str(path))

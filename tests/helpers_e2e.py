"""Shared helpers for the command-level and end-to-end tests of `git exp run/log/show`.

Real git is the oracle: refs, notes, trees and reflogs are read with the `git` binary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pygit2
import pytest
from conftest import git

from gitexp.commands.run import RunRequest, RunResult, run_experiment

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The directory of the interpreter running the tests: it holds the installed `git-exp` and the
# `python` a user of this environment gets, which can `import gitexp`.
BIN_DIR = Path(sys.executable).parent
IDENTITY_VARIABLES = (
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "EMAIL",
)


def user_env(
    extra: Mapping[str, str] | None = None, path_first: Iterable[Path] = ()
) -> dict[str, str]:
    """The environment a user of this virtualenv has: its bin directory first on PATH."""
    env = dict(os.environ)
    dirs = [str(p) for p in path_first] + [str(BIN_DIR), env.get("PATH", os.defpath)]
    env["PATH"] = os.pathsep.join(dirs)
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def git_exp(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """`git exp ARGS...` through the real git binary, as a user types it."""
    return subprocess.run(
        ["git", "exp", *args],
        cwd=cwd,
        env=dict(env) if env is not None else user_env(),
        capture_output=True,
        text=text,
        timeout=timeout,
        check=False,
    )


def start_git_exp(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, **popen: Any
) -> subprocess.Popen[bytes]:
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        ["git", "exp", *args],
        cwd=cwd,
        env=dict(env) if env is not None else user_env(),
        **popen,
    )


def run_core(
    repo_dir: Path,
    *command: str,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
    path_first: tuple[Path, ...] = (),
    **options: Any,
) -> tuple[RunResult, list[str]]:
    reported: list[str] = []
    request = RunRequest(
        command=list(command),
        cwd=cwd or repo_dir,
        environ=user_env(extra_env, path_first=path_first),
        **options,
    )
    result = run_experiment(pygit2.Repository(str(repo_dir)), request, report=reported.append)
    return result, reported


def write_program(path: Path, source: str, executable: bool = False) -> Path:
    """Write a small program (dedented) into the repository."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    if executable:
        path.chmod(0o755)
    return path


def copy_example(repo: Path, name: str) -> Path:
    target = repo / name
    shutil.copy2(EXAMPLES / name, target)
    return target


def run_refs(repo: Path) -> dict[str, str]:
    """Every ref under refs/experiments, name -> commit, read by git."""
    out = git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/experiments")
    return dict(line.split(" ", 1) for line in out.splitlines())


def notes_ref(repo: Path) -> str | None:
    out = git(repo, "rev-parse", "-q", "--verify", "refs/notes/experiments", check=False).strip()
    return out or None


def note(repo: Path, commit: str) -> dict[str, Any]:
    """The record of a run, as `git notes --ref experiments show` prints it."""
    value = json.loads(git(repo, "notes", "--ref", "experiments", "show", commit))
    assert isinstance(value, dict)
    return value


def only_run(repo: Path) -> tuple[str, str, dict[str, Any]]:
    """(ref, commit, record) of the one run in the repository."""
    refs = run_refs(repo)
    assert len(refs) == 1, refs
    ref, commit = next(iter(refs.items()))
    return ref, commit, note(repo, commit)


def newest_run(repo: Path) -> tuple[str, str, dict[str, Any]]:
    records = [note(repo, commit) for commit in run_refs(repo).values()]
    record = max(records, key=lambda r: (r["started_at"], r["id"]))
    return record["ref"], record["commit"], record


def fsck(repo: Path) -> str:
    """`git fsck --strict` must pass; returns its output (dangling objects are fine)."""
    result = subprocess.run(
        ["git", "fsck", "--strict", "--no-progress"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stderr.lower(), result.stderr
    return result.stdout + result.stderr


def add_all_tree(repo: Path, scratch: Path) -> str:
    """The tree `git add -A` writes into a copy of the index kept outside the work tree."""
    scratch.mkdir(parents=True, exist_ok=True)
    index = scratch / "oracle.index"
    real_index = Path(git(repo, "rev-parse", "--git-path", "index").strip())
    if not real_index.is_absolute():
        real_index = repo / real_index
    if real_index.exists():
        shutil.copy2(real_index, index)  # with its mtime, which git's racy check reads
    env = {**os.environ, "GIT_INDEX_FILE": str(index)}
    for args in (["add", "-A"], ["write-tree"]):
        result = subprocess.run(
            ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=True
        )
    return result.stdout.strip()


def ls_tree(repo: Path, treeish: str) -> list[str]:
    return git(repo, "ls-tree", "-r", "--full-tree", treeish).splitlines()


def _hash_worktree(repo: Path, exclude: Iterable[str]) -> dict[str, tuple[str, ...]]:
    excluded = set(exclude)
    entries: dict[str, tuple[str, ...]] = {}
    for root, dirs, files in os.walk(repo):
        rel_root = Path(root).relative_to(repo)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d != ".git"]
        for name in sorted(dirs + files):
            rel = (rel_root / name).as_posix()
            if rel in excluded:
                continue
            full = Path(root) / name
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                entries[rel] = ("link", os.readlink(full))
            elif stat.S_ISDIR(info.st_mode):
                entries[rel] = ("dir", oct(info.st_mode))
            else:
                digest = hashlib.sha256(full.read_bytes()).hexdigest()
                entries[rel] = ("file", oct(info.st_mode), digest)
    return entries


def repo_state(repo: Path, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """Everything of the user's a gitexp command must leave alone, in comparable form.

    HEAD (symbolic target and oid), refs/heads, refs/tags and refs/stash, the index file's
    bytes, every working-tree path (mode, content, symlink target), the stash list and the
    reflogs of HEAD, the branches and the stash. Nothing here writes to the repository.
    """
    git_dir = Path(git(repo, "rev-parse", "--absolute-git-dir").strip())
    index = git_dir / "index"
    logs = git_dir / "logs"
    reflogs = {}
    for log in [logs / "HEAD", logs / "refs" / "stash", *sorted(logs.glob("refs/heads/**/*"))]:
        if log.is_file():
            reflogs[log.relative_to(git_dir).as_posix()] = log.read_bytes()
    return {
        "head_symbolic": git(repo, "symbolic-ref", "-q", "HEAD", check=False).strip(),
        "head_oid": git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False).strip(),
        "refs": git(
            repo,
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            "refs/heads",
            "refs/tags",
            "refs/stash",
        ),
        "index": hashlib.sha256(index.read_bytes()).hexdigest() if index.exists() else None,
        "worktree": _hash_worktree(repo, exclude),
        "stash": git(repo, "stash", "list", "--format=%H %gd %gs"),
        "reflogs": reflogs,
    }


def make_messy_repo(repo: Path) -> None:
    """Give `repo` (one commit, README) every kind of state a user's repository has.

    Staged and unstaged edits of one file, a staged new file, staged and unstaged deletions,
    an untracked file in a new directory, ignored files, a mode change, a symlink, a tag, a
    second branch and a stash entry.
    """

    def commit_all(message: str) -> None:
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message)

    (repo / ".gitignore").write_text("*.ckpt\ndata/\n__pycache__/\n")
    write_program(repo / "src" / "model.py", "WIDTH = 1\n")
    (repo / "tool.py").write_text("print('tool')\n")
    (repo / "gone.txt").write_text("to be deleted in the work tree\n")
    (repo / "staged_gone.txt").write_text("to be deleted with git rm\n")
    (repo / "stashed.txt").write_text("v1\n")
    os.symlink("README", repo / "link")
    (repo / "noop.py").write_text("import sys\nsys.exit(0)\n")
    commit_all("project")
    git(repo, "tag", "v1")
    git(repo, "tag", "-a", "v1-annotated", "-m", "annotated tag")
    git(repo, "branch", "other")

    (repo / "stashed.txt").write_text("v2 (stashed)\n")
    git(repo, "stash", "push", "-q", "-m", "work in progress")

    (repo / "src" / "model.py").write_text("WIDTH = 2  # staged\n")
    git(repo, "add", "src/model.py")
    (repo / "src" / "model.py").write_text("WIDTH = 3  # unstaged on top of staged\n")
    (repo / "new_staged.txt").write_text("a new file, staged\n")
    git(repo, "add", "new_staged.txt")
    git(repo, "rm", "-q", "staged_gone.txt")
    (repo / "gone.txt").unlink()
    (repo / "tool.py").chmod(0o755)
    (repo / "notes").mkdir()
    (repo / "notes" / "untracked.txt").write_text("untracked, not ignored\n")
    (repo / "weights.ckpt").write_bytes(b"\0ignored checkpoint\n")
    (repo / "data").mkdir()
    (repo / "data" / "train.csv").write_text("ignored,data\n")


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(interval)


def read_json_file(path: Path) -> Any:
    """The JSON in `path`, or None while it is missing or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def assert_one_error_line(stderr: str, expected: str | None = None) -> str:
    """stderr is exactly one `error: ...` line (no traceback); returns the message."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    if expected is not None:
        assert lines[0] == f"error: {expected}"
    return lines[0][len("error: ") :]


# git 2.39 relays a Ctrl-C to git-exp from a signal handler that also reaps it; when the
# main code's waitpid loses that race, git itself prints this and exits 128. git-exp did
# its part (gitexp's own exit status and record are checked separately).
GIT_WAITPID_RACE = "waitpid for git-exp failed: No child processes"


def git_lost_waitpid_race(returncode: int, stderr: str | bytes) -> bool:
    """True when `git exp` exited 128 only because of git's own waitpid race."""
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    return returncode == 128 and GIT_WAITPID_RACE in text


def invoke_main_bytes(
    monkeypatch: pytest.MonkeyPatch, *args: str, path_first: tuple[Path, ...] = ()
) -> tuple[int, bytes, bytes]:
    """Call `gitexp.cli.main` (what `git-exp` runs) in-process: exit code, raw stdout/stderr."""
    from click.testing import CliRunner

    from gitexp.cli import main

    monkeypatch.setattr(sys, "argv", ["git-exp", *args])
    monkeypatch.setenv("PATH", user_env(path_first=path_first)["PATH"])
    with CliRunner().isolation() as (out, err, _):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, out.getvalue(), err.getvalue()


def invoke_main(
    monkeypatch: pytest.MonkeyPatch, *args: str, path_first: tuple[Path, ...] = ()
) -> tuple[int, str, str]:
    """invoke_main_bytes with stdout and stderr decoded."""
    code, stdout, stderr = invoke_main_bytes(monkeypatch, *args, path_first=path_first)
    return code, stdout.decode(), stderr.decode()

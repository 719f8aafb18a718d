"""Random working-tree states for the property tests (tests/guarantees/test_properties.py).

A *plan* is a list of small operations (write, stage, untrack, delete, rename, chmod, symlink,
ignore rules, a submodule commit, a nested repository, ...) drawn by hypothesis and applied
with the real `git` binary to a copy of a template repository. Operations whose
preconditions do not hold in the state reached so far (a parent that is a file, a `git rm`
git refuses, ...) are skipped, so every plan applies.

Ignore rules include a nested `.gitignore` re-including (`!run.log`) what the root one
ignores (`*.log`): libgit2 took such a file to be ignored (libgit2 issue #7284) until git
made the snapshots.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from conftest import git
from helpers import oracle_tree
from hypothesis import strategies as st

MAX_FILE_SIZE = 1024  # the size cap the property tests snapshot with
BIG = "<a file over the size cap>"  # shown as such in failing examples, not 1500 bytes
BIG_SIZE = 1500
SUBMODULE = "sub"
NESTED_REPOSITORY = "inner"

TRACKED = (
    "a.txt",
    "sp ace.txt",
    "ünï.txt",
    "dir/b.txt",
    "dir/sub dir/c.txt",
    "exec.sh",
)
NEW = (
    "new.txt",
    "new dir/x y.txt",
    "dir/nested/deep.txt",
    "line\nbreak.txt",
    "tab\there.txt",
    'quote"d.txt',
    "üñí/ç.txt",
    "dir/keep.tmp",
    "dir/drop.tmp",
    "dir/cache/c.bin",
    "new dir/cache/d.bin",
    "x.log",
    "important.log",
    "dir/run.log",
    "build/out.bin",
    "excl.txt",
    "key.secret",
    "x y.txt",
)
LINKS = ("link_file", "link_dir", "link_dangling", "dir/link up")
PATHS = TRACKED + NEW + LINKS
EMPTY_DIRS = ("empty", "dir/empty too", "new dir/e")
# Ignore rules per level; a nested level may re-include what its own file ignores
# (`!keep.tmp`) or what the root one does (`!run.log`).
ROOT_PATTERNS = ("*.log", "!important.log", "build/", "x y.txt")
NESTED_PATTERNS = ("*.tmp", "!keep.tmp", "cache/", "*.bin", "!run.log")
NESTED_IGNORE_DIRS = ("dir", "new dir")
EXCLUDE_PATTERNS = ("excl.txt", "*.secret")
LINK_TARGETS = ("a.txt", "dir", "nowhere", "../a.txt", "sp ace.txt")


def make_template(path: Path) -> Path:
    """A repository with one commit: the files of TRACKED (one executable), symlinks to a
    file and a directory, `.gitignore` files at two levels, and a submodule (a gitlink to an
    embedded repository with one commit)."""
    path.mkdir(parents=True)
    _init(path)
    git(path, "config", "exp.maxFileSize", str(MAX_FILE_SIZE))  # for run and checkout --force
    for name in TRACKED:
        _write(path / name, f"{name} v1\n".encode())
    (path / "exec.sh").chmod(0o755)
    os.symlink("a.txt", path / "link_file")
    os.symlink("dir", path / "link_dir")
    (path / ".gitignore").write_text("*.log\nbuild/\n")
    (path / "dir" / ".gitignore").write_text("*.tmp\n!keep.tmp\n")
    sub = path / SUBMODULE
    sub.mkdir()
    _init(sub)
    (sub / "lib.txt").write_text("lib v1\n")
    _commit_everything(sub, "lib")
    _commit_everything(path, "project")
    return path


def copy_repo(template: Path, target: Path) -> Path:
    """A copy of `template` at `target`, symlinks kept as symlinks."""
    shutil.copytree(template, target, symlinks=True)
    return target


def _init(path: Path) -> None:
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")


def _commit_everything(path: Path, message: str) -> None:
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", message)


paths = st.sampled_from(PATHS)
contents = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"a.txt v1\n", b"same\n", b""]),
    st.just(BIG),
)

Operation = tuple[Any, ...]

operations: st.SearchStrategy[Operation] = st.one_of(
    st.tuples(st.just("write"), paths, contents, st.booleans()),
    st.tuples(st.just("delete"), paths, st.booleans()),
    st.tuples(st.just("rename"), paths, paths, st.booleans()),
    st.tuples(st.just("chmod"), paths, st.booleans()),
    st.tuples(st.just("symlink"), paths, st.sampled_from(LINK_TARGETS), st.booleans()),
    st.tuples(st.just("empty_dir"), st.sampled_from(EMPTY_DIRS)),
    st.tuples(st.just("dir_over_file"), paths),
    st.tuples(st.just("stage"), paths),
    st.tuples(st.just("untrack"), paths),
    st.tuples(st.just("ignore_root"), st.lists(st.sampled_from(ROOT_PATTERNS), unique=True)),
    st.tuples(
        st.just("ignore_nested"),
        st.sampled_from(NESTED_IGNORE_DIRS),
        st.lists(st.sampled_from(NESTED_PATTERNS), unique=True),
    ),
    st.tuples(st.just("exclude"), st.lists(st.sampled_from(EXCLUDE_PATTERNS), unique=True)),
    st.tuples(st.just("submodule_commit")),
    st.tuples(st.just("nested_repository")),
)


@st.composite
def worktree_plans(draw: st.DrawFn, min_size: int = 0, max_size: int = 12) -> list[Operation]:
    """A list of working-tree operations, as `apply_plan` takes them."""
    return draw(st.lists(operations, min_size=min_size, max_size=max_size))


def apply_plan(repo: Path, plan: Iterable[Operation]) -> None:
    """Apply every operation of `plan` to the working tree (and index) of `repo`."""
    for operation in plan:
        apply_operation(repo, operation)


def apply_operation(repo: Path, operation: Operation) -> None:
    """One operation; skipped when its preconditions do not hold in `repo` now."""
    kind, *args = operation
    handler = _HANDLERS[kind]
    handler(repo, *args)


def _git_quiet(repo: Path, *args: str) -> bool:
    """Run git, tolerating failure (a refused `git rm`, an ignored path to add)."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False)
    return result.returncode == 0


def _parents_are_dirs(repo: Path, path: str) -> bool:
    """Every ancestor of `path` is a real directory or missing (so it can be made one)."""
    current = repo
    for part in Path(path).parts[:-1]:
        current = current / part
        if os.path.lexists(current) and (current.is_symlink() or not current.is_dir()):
            return False
    return True


def _remove(full: Path) -> None:
    if full.is_symlink() or full.is_file():
        full.unlink()
    elif full.is_dir():
        shutil.rmtree(full)


def _write(full: Path, data: bytes) -> None:
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_bytes(data)


def _op_write(repo: Path, path: str, data: bytes | str, stage: bool) -> None:
    full = repo / path
    if data == BIG:
        data = b"B" * BIG_SIZE
    if not _parents_are_dirs(repo, path) or (full.is_dir() and not full.is_symlink()):
        return
    if full.is_symlink():
        full.unlink()  # a symlink replaced by a file: a type change
    _write(full, data if isinstance(data, bytes) else data.encode())
    if stage:
        _git_quiet(repo, "add", "--", path)


def _op_delete(repo: Path, path: str, staged: bool) -> None:
    if staged:
        _git_quiet(repo, "rm", "-q", "-r", "--", path)
    elif os.path.lexists(repo / path):
        _remove(repo / path)


def _op_rename(repo: Path, source: str, target: str, with_git: bool) -> None:
    if source == target or not os.path.lexists(repo / source):
        return
    if os.path.lexists(repo / target) or not _parents_are_dirs(repo, target):
        return
    if target.startswith(f"{source}/") or source.startswith(f"{target}/"):
        return
    if with_git and _git_quiet(repo, "mv", "--", source, target):
        return
    (repo / target).parent.mkdir(parents=True, exist_ok=True)
    os.rename(repo / source, repo / target)


def _op_chmod(repo: Path, path: str, executable: bool) -> None:
    full = repo / path
    if full.is_symlink() or not full.is_file():
        return
    mode = full.stat().st_mode
    bits = stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    full.chmod(mode | bits if executable else mode & ~bits)


def _op_symlink(repo: Path, path: str, target: str, stage: bool) -> None:
    full = repo / path
    if not _parents_are_dirs(repo, path) or (full.is_dir() and not full.is_symlink()):
        return
    if os.path.lexists(full):
        full.unlink()
    full.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, full)
    if stage:
        _git_quiet(repo, "add", "--", path)


def _op_empty_dir(repo: Path, path: str) -> None:
    if _parents_are_dirs(repo, path) and not os.path.lexists(repo / path):
        (repo / path).mkdir(parents=True)


def _op_dir_over_file(repo: Path, path: str) -> None:
    """A file (or symlink) replaced by a directory of the same name holding one file."""
    full = repo / path
    if not (full.is_symlink() or full.is_file()):
        return
    full.unlink()
    _write(full / "inside.txt", b"a directory now\n")


def _op_stage(repo: Path, path: str) -> None:
    _git_quiet(repo, "add", "-A", "--", path)


def _op_untrack(repo: Path, path: str) -> None:
    """`git rm --cached`: the file stays, untracked again (or ignored, if a rule says so)."""
    _git_quiet(repo, "rm", "-q", "-r", "--cached", "--", path)


def _op_ignore_root(repo: Path, patterns: Sequence[str]) -> None:
    (repo / ".gitignore").write_text("".join(f"{p}\n" for p in patterns))


def _op_ignore_nested(repo: Path, directory: str, patterns: Sequence[str]) -> None:
    if _parents_are_dirs(repo, f"{directory}/.gitignore") and not (
        (repo / directory).is_symlink() or (repo / directory).is_file()
    ):
        _write(repo / directory / ".gitignore", "".join(f"{p}\n" for p in patterns).encode())


def _op_exclude(repo: Path, patterns: Sequence[str]) -> None:
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "exclude").write_text("".join(f"{p}\n" for p in patterns))


def _op_submodule_commit(repo: Path) -> None:
    """Move the submodule's HEAD: its gitlink in the working tree now differs from the index."""
    sub = repo / SUBMODULE
    if not (sub / ".git").is_dir():
        return
    lib = sub / "lib.txt"
    lib.write_text(lib.read_text() + "more\n")
    _commit_everything(sub, "lib change")


def _op_nested_repository(repo: Path) -> None:
    """An untracked repository inside the working tree, with a commit."""
    inner = repo / NESTED_REPOSITORY
    if os.path.lexists(inner):
        return
    inner.mkdir()
    _init(inner)
    (inner / "file.txt").write_text("inner\n")
    _commit_everything(inner, "inner")


_HANDLERS: dict[str, Any] = {
    "write": _op_write,
    "delete": _op_delete,
    "rename": _op_rename,
    "chmod": _op_chmod,
    "symlink": _op_symlink,
    "empty_dir": _op_empty_dir,
    "dir_over_file": _op_dir_over_file,
    "stage": _op_stage,
    "untrack": _op_untrack,
    "ignore_root": _op_ignore_root,
    "ignore_nested": _op_ignore_nested,
    "exclude": _op_exclude,
    "submodule_commit": _op_submodule_commit,
    "nested_repository": _op_nested_repository,
}


def git_bytes(repo: Path, *args: str) -> bytes:
    """stdout of a git command that must succeed, as bytes (paths may hold newlines)."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout


def tree_entries(repo: Path, tree: str) -> list[str]:
    """`git ls-tree -r -z` of `tree`: one `mode type oid<TAB>path` string per entry."""
    out = git_bytes(repo, "ls-tree", "-r", "-z", "--full-tree", tree)
    return [entry.decode("utf-8", "surrogateescape") for entry in out.split(b"\0") if entry]


def untracked_paths(repo: Path) -> list[str]:
    """What git calls untracked and not ignored (`git ls-files -o --exclude-standard`);
    a nested repository is one entry ending in `/`."""
    out = git_bytes(repo, "ls-files", "-z", "-o", "--exclude-standard")
    return [p.decode("utf-8", "surrogateescape") for p in out.split(b"\0") if p]


def expected_skipped(repo: Path, max_file_size: int) -> dict[str, str]:
    """path -> why, for the untracked paths a snapshot must leave out, judged from git."""
    skipped = {}
    for path in untracked_paths(repo):
        if path.endswith("/"):
            skipped[path] = "nested repository"
            continue
        info = (repo / path).lstat()
        if stat.S_ISREG(info.st_mode) and info.st_size > max_file_size:
            skipped[path] = "larger than exp.maxFileSize"
    return skipped


def snapshot_oracle(repo: Path, scratch: Path, skipped: Iterable[str]) -> str:
    """The tree `git add -A` writes into a copy of the index, minus what gitexp leaves out:
    the `skipped` untracked paths, and the submodule (its index entry is kept)."""
    leave_out = [*skipped]
    if (repo / SUBMODULE).is_dir():
        leave_out.append(SUBMODULE)
    return oracle_tree(repo, scratch, leave_out)


def status_entries(repo: Path, *extra: str) -> list[tuple[str, str]]:
    """(XY code, path) of `git status --porcelain -z --no-renames -uall` (plus `extra`)."""
    # --no-optional-locks: a plain `git status` may rewrite the index to refresh stat data.
    out = git_bytes(
        repo, "--no-optional-locks", "status", "--porcelain", "-z", "--no-renames", "-uall", *extra
    )
    return [
        (entry[:2].decode(), entry[3:].decode("utf-8", "surrogateescape"))
        for entry in out.split(b"\0")
        if entry
    ]


def index_entries(repo: Path) -> dict[str, str]:
    """path -> `mode oid stage` of every index entry (`git ls-files -s -z`)."""
    out = git_bytes(repo, "ls-files", "-s", "-z")
    entries = {}
    for entry in out.split(b"\0"):
        if entry:
            info, _, path = entry.decode("utf-8", "surrogateescape").partition("\t")
            entries[path] = info
    return entries

"""The deletion marks this clone made: `git exp gc` erases a run directory only for these.

A mark can arrive with a pull, from anyone with push access to a shared remote; a run
directory here may hold the only copy of a run's output. So `git exp rm` also notes each
mark it makes (or confirms) in a file of this clone's git directory, which is never pushed.
"""

from __future__ import annotations

import pygit2

from gitexp.errors import GitExpError
from gitexp.repository import common_dir

MARKS_FILE = ("experiments", ".deleted-here")  # not a run name: those start alphanumeric


def remember_deletion(repo: pygit2.Repository, commit: str, mark: str) -> None:
    """Note that this clone marked the run of `commit` deleted at `mark`."""
    path = common_dir(repo).joinpath(*MARKS_FILE)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # One short line per write with O_APPEND: concurrent `rm`s never interleave a line.
        with open(path, "a", encoding="utf-8") as file:
            file.write(f"{commit} {mark}\n")
    except OSError as exc:
        raise GitExpError(
            f"marked deleted, but could not note it in {path} ({exc.strerror or exc}): "
            "`git exp gc` will leave its run directory alone"
        ) from None


def deleted_here(repo: pygit2.Repository) -> set[tuple[str, str]]:
    """(commit, mark) of every deletion mark this clone made."""
    path = common_dir(repo).joinpath(*MARKS_FILE)
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = file.read().splitlines()
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError as exc:
        raise GitExpError(f"cannot read {path}: {exc.strerror or exc}") from None
    marks = set()
    for line in lines:
        commit, _, mark = line.partition(" ")
        if commit and mark:
            marks.add((commit, mark))
    return marks

"""What `git exp diff` compares: a run, any git revision, or the working tree as it is now.

A spec is first read as a run (every form `resolve_run_spec` takes), then as a git revision
(`HEAD`, `main~2`, a sha): when both would match, the run wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pygit2

from gitexp.errors import InvalidNameError, UnknownRunError
from gitexp.ids import printable
from gitexp.listing import Run
from gitexp.repository import DEFAULT_MAX_FILE_SIZE, config_size, require_worktree
from gitexp.runspec import resolve_run_spec
from gitexp.snapshot import snapshot_tree

SideKind = Literal["run", "revision", "worktree"]


class UnknownRevisionError(UnknownRunError):
    """The spec names neither a run nor a commit."""


@dataclass
class Side:
    """One side of a diff: its tree, and its run when it is one."""

    spec: str
    kind: SideKind
    tree: pygit2.Tree
    commit: str | None = None
    run: Run | None = None
    skipped: list[dict[str, object]] = field(default_factory=list)

    @property
    def record(self) -> dict[str, Any] | None:
        """The run's record; None for a revision, the working tree, or an unreadable record."""
        return self.run.record if self.run is not None else None

    @property
    def label(self) -> str:
        """How the side is named in output: the run's id, the revision, or `working tree`."""
        if self.run is not None:
            return self.run.id
        return "working tree" if self.kind == "worktree" else self.spec

    def as_json(self) -> dict[str, Any]:
        """The side as `git exp diff --json` prints it."""
        return {
            "spec": self.spec,
            "kind": self.kind,
            "id": self.run.id if self.run is not None else None,
            "commit": self.commit,
            "tree": str(self.tree.id),
        }


def resolve_side(repo: pygit2.Repository, runs: list[Run], spec: str) -> Side:
    """The run `spec` names or else the commit it names (runs win; ambiguous runs raise)."""
    try:
        run = resolve_run_spec(runs, spec)
    except (UnknownRunError, InvalidNameError):
        return _revision_side(repo, spec)
    commit = _commit(repo, run.commit)
    if commit is None:
        raise UnknownRevisionError(f"run {run.id} points at {run.commit[:12]}, not a commit")
    return Side(spec=spec, kind="run", tree=commit.tree, commit=str(commit.id), run=run)


def worktree_side(repo: pygit2.Repository, environ: Mapping[str, str]) -> Side:
    """The working tree as `git exp run` would snapshot it now; the index file is untouched."""
    require_worktree(repo)
    max_size = config_size(repo, "exp.maxFileSize", DEFAULT_MAX_FILE_SIZE)
    snapshot = snapshot_tree(repo, max_size, environ)
    tree = repo[snapshot.tree].peel(pygit2.Tree)
    return Side(spec="", kind="worktree", tree=tree, skipped=snapshot.skipped)


def _revision_side(repo: pygit2.Repository, spec: str) -> Side:
    shown = printable(spec[:100])
    try:
        target = repo.revparse_single(spec) if spec and not spec.startswith("-") else None
    except (KeyError, ValueError, pygit2.GitError):
        target = None
    if target is None:
        raise UnknownRevisionError(f"unknown run or revision '{shown}' (git exp log lists runs)")
    commit = _commit(repo, target.id)
    if commit is None:
        raise UnknownRevisionError(f"'{shown}' is a {target.type_str}, not a run or a commit")
    return Side(spec=spec, kind="revision", tree=commit.tree, commit=str(commit.id))


def _commit(repo: pygit2.Repository, oid: str | pygit2.Oid) -> pygit2.Commit | None:
    try:
        commit = repo[oid].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return None
    return commit if isinstance(commit, pygit2.Commit) else None

"""`git exp checkout`: a run's snapshot into the working tree, onto a new branch, or a worktree.

Nothing local is ever lost: gitexp.switching refuses to overwrite local changes, and with
`--force` saves them as a snapshot run first.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from gitexp import ids, store
from gitexp.listing import Run
from gitexp.repository import require_worktree
from gitexp.runspec import find_run
from gitexp.switching import (
    SavedState,
    create_branch,
    new_branch_ref,
    snapshot_commit,
    switch_working_tree,
)
from gitexp.worktrees import add_worktree, check_new_worktree_path


@dataclass
class CheckoutResult:
    """What `checkout_run` did (or, with `dry_run`, would do)."""

    run: str
    commit: str
    mode: str  # "detached", "branch" or "worktree"
    previous: str | None  # the branch HEAD was on, or the commit it was detached at
    branch: str | None = None
    worktree: str | None = None
    saved: SavedState | None = None
    saves_local_state: bool = False  # --force found local state to save (dry run: would)
    kept: list[str] = field(default_factory=list)  # local changes left in place, `XY path`
    reproduce: str | None = None
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return asdict(self)


def checkout_run(
    repo: pygit2.Repository,
    spec: str,
    environ: Mapping[str, str],
    *,
    branch: str | None = None,
    worktree: Path | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> CheckoutResult:
    """Check out the snapshot of the run `spec` names, like `git checkout <commit>`.

    Detached by default; on a new `branch`; or into a new linked `worktree` (an absolute
    path), leaving the current checkout alone.
    """
    run = find_run(repo, spec)
    commit = snapshot_commit(repo, run)
    branch_ref = new_branch_ref(repo, branch) if branch is not None else None
    mode = "worktree" if worktree is not None else "branch" if branch else "detached"
    if worktree is not None:
        check_new_worktree_path(repo, worktree)
        if not dry_run:
            _create_worktree(repo, run, commit, worktree, branch_ref)
        return CheckoutResult(
            run=run.id,
            commit=str(commit.id),
            mode=mode,
            previous=None,
            branch=branch,
            worktree=str(worktree),
            reproduce=reproduce_command(run, worktree),
            dry_run=dry_run,
        )
    reason = f"git exp checkout{' --force' if force else ''} {run.id}"
    switch = switch_working_tree(
        repo, run, environ, force=force, dry_run=dry_run, reason=reason, branch_ref=branch_ref
    )
    return CheckoutResult(
        run=run.id,
        commit=str(commit.id),
        mode=mode,
        previous=switch.previous,
        branch=branch,
        saved=switch.saved,
        saves_local_state=switch.saves_local_state,
        kept=switch.kept,
        reproduce=reproduce_command(run, require_worktree(repo)),
        dry_run=dry_run,
    )


def reproduce_command(run: Run, workdir: Path) -> str | None:
    """The shell line that runs `run`'s command again, from its recorded directory."""
    record = run.record or {}
    command = record.get("command")
    if not isinstance(command, list) or not command:
        return None
    argv = [str(part) for part in command]
    options = [] if ids.default_name(argv) == run.name else ["-n", run.name]
    cwd = record.get("cwd")
    directory = workdir / cwd if isinstance(cwd, str) and cwd not in ("", ".") else workdir
    return (
        f"cd {shlex.quote(str(directory))} && {shlex.join(['git', 'exp', 'run', *options, *argv])}"
    )


def _create_worktree(
    repo: pygit2.Repository,
    run: Run,
    commit: pygit2.Commit,
    path: Path,
    branch_ref: str | None,
) -> None:
    reason = f"git exp checkout --worktree {run.id}"
    if branch_ref is not None:
        create_branch(repo, branch_ref, commit.id, reason)
    try:
        add_worktree(
            repo, path, commit.id, f"checkout: moving to {commit.id} ({reason})", branch_ref
        )
    except BaseException:
        if branch_ref is not None:
            store.delete_ref(repo, branch_ref)
        raise

"""`git exp rerun`: run a recorded command again, on the recorded code, as a new run.

By default the program runs in a temporary linked worktree checked out at the run's snapshot,
never in the user's working tree; whatever it writes there (checkpoints, outputs, ignored
files included) is moved into the new run's directory under `outputs/` before the worktree is
removed. `here` runs in the current working tree instead, after `git exp checkout`'s checks.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileStatus

from gitexp import ids, rundir
from gitexp.argparams import REDACTED
from gitexp.errors import GitExpError
from gitexp.launch import RunRequest, RunResult, run_experiment
from gitexp.listing import Run
from gitexp.record import update_record
from gitexp.repository import identity, require_worktree
from gitexp.runspec import find_run
from gitexp.switching import SavedState, snapshot_commit, switch_working_tree
from gitexp.worktrees import (
    Worktree,
    add_worktree,
    owner_reason,
    prune_abandoned,
    remove_worktree,
    temporary_worktree_path,
)

OUTPUTS_DIR = "outputs"
# What the program left in the temporary worktree: new files (ignored ones too) and changes.
WRITTEN = FileStatus.WT_NEW | FileStatus.IGNORED | FileStatus.WT_MODIFIED | FileStatus.WT_TYPECHANGE
# Delivered again once the worktree is cleaned up; a late Ctrl-C (git forwards the
# terminal's a second time) is dropped so the exit status stays the program's.
REDELIVERED = (signal.SIGTERM, signal.SIGHUP)
DEFERRED = (signal.SIGINT, *REDELIVERED)


@dataclass
class RerunRequest:
    """What the user asked `git exp rerun` to do."""

    spec: str
    environ: Mapping[str, str]
    extra_args: list[str] = field(default_factory=list)
    here: bool = False
    force: bool = False
    name: str | None = None
    message: str | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class RerunResult:
    """The new run, the one it repeats, and where the program's files went."""

    original: str
    run: RunResult
    outputs_dir: str | None = None
    outputs: list[str] = field(default_factory=list)
    saved: SavedState | None = None


@dataclass
class _Started:
    """The new run, once `run_experiment` has written its record."""

    run_id: str | None = None
    run_dir: Path | None = None


def rerun_run(
    repo: pygit2.Repository, request: RerunRequest, report: Callable[[str], None]
) -> RerunResult:
    """Run the command recorded for `request.spec` again as a new run (see the module)."""
    workdir = require_worktree(repo)
    original = find_run(repo, request.spec)
    command = recorded_command(original) + list(request.extra_args)
    cwd = recorded_cwd(original)
    commit = snapshot_commit(repo, original)
    signature = identity(repo, dict(request.environ))
    root = rundir.logdir_root(repo, request.environ.get("GITEXP_LOGDIR"))
    started = _Started()
    run_request = RunRequest(
        command=command,
        cwd=workdir,
        environ=request.environ,
        name=request.name or original.name,
        message=request.message,
        tags=list(request.tags),
        rerun_of=original.id,
        logdir=root,
        on_started=_announced(
            _origin_note(original, commit.author, root),
            _linker(repo, original, started, signature, report),
            report,
        ),
    )
    _warn_about_gaps(original, request, report)
    if request.here:
        return _rerun_here(repo, original, request, run_request, report)
    prune_abandoned(repo)
    worktree = add_worktree(
        repo,
        temporary_worktree_path(root),
        commit.id,
        f"checkout: moving to {commit.id} (git exp rerun {original.id})",
        locked_reason=owner_reason(),
    )
    kept: tuple[list[str], str | None] = ([], None)
    try:
        run_request.cwd = working_directory(worktree.path, cwd)
        result = run_experiment(worktree.open(), run_request, report)
    finally:
        with _signals_deferred():
            try:
                kept = _keep_outputs(repo, worktree, started, signature, report)
            finally:
                remove_worktree(repo, worktree)
    outputs, outputs_dir = kept
    return RerunResult(original.id, result, outputs_dir, outputs)


def _rerun_here(
    repo: pygit2.Repository,
    original: Run,
    request: RerunRequest,
    run_request: RunRequest,
    report: Callable[[str], None],
) -> RerunResult:
    """Check the snapshot out in the current working tree (as `checkout` would), run there."""
    flag = " --force" if request.force else ""
    switch = switch_working_tree(
        repo,
        original,
        request.environ,
        force=request.force,
        dry_run=False,
        reason=f"git exp rerun --here{flag} {original.id}",
    )
    if switch.saved is not None:
        saved = switch.saved.id
        report(
            f"gitexp: saved the local state as {saved} (git exp checkout {saved} brings it back)"
        )
    run_request.cwd = working_directory(require_worktree(repo), recorded_cwd(original))
    result = run_experiment(repo, run_request, report)
    return RerunResult(original.id, result, saved=switch.saved)


def recorded_command(run: Run) -> list[str]:
    """The command `run` recorded, or GitExpError."""
    record = run.record
    if record is None:
        raise GitExpError(f"{run.id} has no readable record: nothing to rerun")
    command = record.get("command")
    if record.get("status") == "saved":
        raise GitExpError(
            f"{run.id} is a saved working tree, not a run: there is no command to rerun "
            f"(git exp checkout {run.id} brings it back)"
        )
    if not isinstance(command, list) or not command or not all(isinstance(a, str) for a in command):
        raise GitExpError(f"{run.id} has no recorded command: nothing to rerun")
    return list(command)


def recorded_cwd(run: Run) -> str:
    """The directory `run` ran in, relative to the top of the working tree."""
    cwd = (run.record or {}).get("cwd")
    if not isinstance(cwd, str) or not cwd:
        return "."
    if os.path.isabs(cwd) or ".." in Path(cwd).parts:
        raise GitExpError(
            f"{run.id} ran outside the working tree ({ids.printable(cwd)}): cannot rerun it"
        )
    return cwd


def working_directory(top: Path, cwd: str) -> Path:
    """`top/cwd`, created when the checkout has no file there (an empty or ignored dir)."""
    directory = top / cwd if cwd != "." else top
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def move_outputs(worktree: Worktree, destination: Path) -> list[str]:
    """Move what the program wrote in `worktree` under `destination`, keeping relative paths.

    Returns the paths moved (a directory of ignored files counts once, as `git status
    --ignored` lists it).
    """
    moved = []
    for path, flags in sorted(worktree.open().status(untracked_files="all", ignored=True).items()):
        relative = path.rstrip("/")
        source = worktree.path / relative
        if not flags & WRITTEN or not os.path.lexists(source):
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(source, target)
        moved.append(relative)
    return moved


def _linker(
    repo: pygit2.Repository,
    original: Run,
    started: _Started,
    signature: pygit2.Signature,
    report: Callable[[str], None],
) -> Callable[[str, Path], None]:
    """The `on_started` hook: remember the new run and list it in the original's `reruns`."""

    def link(run_id: str, run_dir: Path) -> None:
        started.run_id, started.run_dir = run_id, run_dir

        def add(record: dict[str, Any]) -> None:
            reruns = record.get("reruns")
            reruns = list(reruns) if isinstance(reruns, list) else []
            record["reruns"] = reruns if run_id in reruns else [*reruns, run_id]

        try:
            update_record(repo, original.commit, add, signature)
        except GitExpError as exc:
            report(f"gitexp: warning: {original.id} does not list this rerun: {exc}")

    return link


def _keep_outputs(
    repo: pygit2.Repository,
    worktree: Worktree,
    started: _Started,
    signature: pygit2.Signature,
    report: Callable[[str], None],
) -> tuple[list[str], str | None]:
    """Move the program's files into the new run's `outputs/` and say so in its record.

    Returns the paths moved and the directory they went to (None when there were none).
    """
    if started.run_id is None or started.run_dir is None:
        return [], None  # no run was recorded, so the program never started
    destination = started.run_dir / OUTPUTS_DIR
    moved = move_outputs(worktree, destination)
    outputs_dir = str(destination) if moved else None
    reference = repo.references.get(f"{ids.REF_PREFIX}{started.run_id}")
    if reference is None:
        return moved, outputs_dir
    try:
        update_record(
            repo,
            str(reference.target),
            lambda record: record.__setitem__("outputs_dir", outputs_dir),
            signature,
        )
    except GitExpError as exc:
        report(f"gitexp: warning: the record does not say where the outputs went: {exc}")
    if moved:
        report(f"gitexp: kept what the program wrote ({len(moved)} path(s)) in {destination}")
    return moved, outputs_dir


def _origin_note(original: Run, author: pygit2.Signature, root: Path) -> str | None:
    """Where a command recorded elsewhere came from (machine, user, snapshot author): a
    pulled or imported record is someone else's word for what to execute. None when the
    run was recorded in this clone."""
    record = original.record or {}
    if rundir.recorded_here(record, root, socket.gethostname()):
        return None
    host = record.get("host")
    host = host if isinstance(host, dict) else {}
    command = shlex.join(str(part) for part in record.get("command") or [])
    return ids.printable(
        f"gitexp: note: {original.id} was not recorded in this clone (host "
        f"{host.get('hostname') or '?'}, user {host.get('user') or '?'}, snapshot by "
        f"{author.name} <{author.email}>); running its command: {command}",
        limit=500,
    )


def _announced(
    note: str | None, on_started: Callable[[str, Path], None], report: Callable[[str], None]
) -> Callable[[str, Path], None]:
    """`on_started`, saying `note` first: once the new run exists, before the program starts
    (a rerun refused for a bad name or tag says nothing more than why)."""

    def announce(run_id: str, run_dir: Path) -> None:
        if note is not None:
            report(note)
        on_started(run_id, run_dir)

    return announce


def _warn_about_gaps(original: Run, request: RerunRequest, report: Callable[[str], None]) -> None:
    """Say what the recorded command or snapshot lacks compared with the original run."""
    record = original.record or {}
    command = record.get("command") or []
    # `***` alone, after `=`, or inside a URL (`https://user:***@host`) or a longer argument.
    if any(isinstance(part, str) and REDACTED in part for part in command):
        report(
            "gitexp: note: the recorded command has secret values replaced by ***; "
            "pass the real ones after --"
        )
    git = record.get("git")
    skipped = git.get("skipped") if isinstance(git, dict) else None
    if skipped and not request.here:
        paths = [str(item.get("path")) for item in skipped if isinstance(item, dict)]
        report(
            f"gitexp: note: {len(paths)} file(s) the original run had are not in its snapshot "
            f"and not in the rerun's worktree (first: {ids.printable(paths[0])})"
        )


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold off SIGINT, SIGTERM and SIGHUP while the worktree is cleaned up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _: received.append(signum)) for sig in DEFERRED
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(received):
            if signum in REDELIVERED:
                signal.raise_signal(signum)

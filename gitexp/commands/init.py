"""`git exp init`: prepare a repository for sharing runs — fetch config and git hooks.

Hooks come from the top-level `hooks/` folder (installed as the package data
`gitexp/_hooks_data/`). A hook already in place is moved aside to `<name>.gitexp-chained`
and called by ours with the same arguments and input; ours carries a marker line, so
uninstalling removes only what gitexp wrote and puts the chained hook back (a rename both
ways, so it comes back byte for byte).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from gitexp import store
from gitexp.errors import GitExpError, UsageError
from gitexp.repository import common_dir, config_value
from gitexp.store import tracking_notes_ref

HOOK_MARKER = b"# gitexp-managed-hook:"
CHAINED_SUFFIX = ".gitexp-chained"
HOOK_MODE = 0o755
MARKER_SEARCH_BYTES = 4096
DEFAULT_REMOTE = "origin"


@dataclass
class InitChange:
    """One thing `git exp init` looked at: a hook file or a config value, and what happened."""

    what: str  # "hook pre-push", "config remote.origin.fetch", ...
    action: str  # installed, updated, unchanged, removed, restored, added, set, not set, ...
    path: str | None = None
    detail: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"what": self.what, "action": self.action, "path": self.path, "detail": self.detail}


@dataclass
class InitReport:
    """What `git exp init` did (or, with `dry_run`, would do; with no action: the state)."""

    dry_run: bool
    changes: list[InitChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "changes": [change.as_json() for change in self.changes],
            "warnings": self.warnings,
        }


def init_repository(
    repo: pygit2.Repository,
    *,
    hooks: bool = False,
    config: bool = False,
    show_notes: bool = False,
    uninstall_hooks: bool = False,
    remote: str | None = None,
    dry_run: bool = False,
) -> InitReport:
    """Install or remove gitexp's hooks and add the fetch config, as asked; idempotent.

    With nothing asked, report the current state of each without changing anything.
    """
    if hooks and uninstall_hooks:
        raise UsageError("--hooks and --uninstall-hooks cannot be used together")
    report = InitReport(dry_run)
    if not (hooks or config or show_notes or uninstall_hooks):
        report.dry_run = False
        _describe_state(repo, remote or DEFAULT_REMOTE, report)
        return report
    if config:
        report.changes.append(add_notes_fetch_refspec(repo, remote or DEFAULT_REMOTE, dry_run))
    if show_notes:
        report.changes.append(add_notes_display_ref(repo, dry_run))
    if hooks or uninstall_hooks:
        directory = hooks_directory(repo)
        for name, content in shipped_hooks().items():
            if hooks:
                _refuse_hooks_in_worktree(repo, directory, name)
                report.changes.append(install_hook(directory, name, content, dry_run, report))
            else:
                report.changes.append(uninstall_hook(directory, name, dry_run, report))
    return report


def fetch_refspec(remote: str) -> str:
    """The refspec that makes `git fetch REMOTE` bring its records into the tracking ref."""
    return f"+{store.NOTES_REF}:{tracking_notes_ref(remote)}"


def add_notes_fetch_refspec(repo: pygit2.Repository, remote: str, dry_run: bool) -> InitChange:
    """Add the notes fetch refspec to remote.REMOTE.fetch unless it is there already."""
    if remote not in set(repo.remotes.names()):
        raise GitExpError(
            f"no such remote '{remote}' (git remote -v lists them; pick one with --remote)"
        )
    return _add_config_value(repo, f"remote.{remote}.fetch", fetch_refspec(remote), dry_run)


def add_notes_display_ref(repo: pygit2.Repository, dry_run: bool) -> InitChange:
    """Add refs/notes/experiments to notes.displayRef, so `git log` shows records."""
    return _add_config_value(repo, "notes.displayRef", store.NOTES_REF, dry_run)


def _add_config_value(repo: pygit2.Repository, key: str, value: str, dry_run: bool) -> InitChange:
    what = f"config {key}"
    if value in _config_values(repo, key):
        return InitChange(what, "unchanged", detail=value)
    if not dry_run:
        # A multivar: add our value next to the others (the pattern matches only itself).
        repo.config.set_multivar(key, f"^{re.escape(value)}$", value)
    return InitChange(what, "would add" if dry_run else "added", detail=value)


def _config_values(repo: pygit2.Repository, key: str) -> list[str]:
    try:
        return [value for value in repo.config.get_multivar(key) if value is not None]
    except (KeyError, pygit2.GitError):
        return []


def hooks_directory(repo: pygit2.Repository) -> Path:
    """Where git looks for hooks: core.hooksPath, else `<git common dir>/hooks`.

    A relative core.hooksPath is relative to the top of the working tree (to the git
    directory in a bare repository), as git runs hooks from there.
    """
    configured = config_value(repo, "core.hooksPath")
    if not configured:
        return common_dir(repo) / "hooks"
    path = Path(configured).expanduser()
    if path.is_absolute():
        return path
    base = repo.workdir if repo.workdir and not repo.is_bare else repo.path
    return Path(base) / path


def shipped_hooks() -> dict[str, bytes]:
    """{hook name: script} of the hooks gitexp ships."""
    directory = shipped_hooks_directory()
    return {
        path.name: path.read_bytes()
        for path in sorted(directory.iterdir())
        if path.is_file() and not path.name.startswith((".", "_"))
    }


def shipped_hooks_directory() -> Path:
    """The shipped hooks: package data when installed, the checkout's `hooks/` when not."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_hooks_data", package.parent / "hooks"):
        if (candidate / "pre-push").is_file():
            return candidate
    raise GitExpError("gitexp's hook scripts are missing from this installation: reinstall gitexp")


def install_hook(
    directory: Path, name: str, content: bytes, dry_run: bool, report: InitReport
) -> InitChange:
    """Install one hook; a hook already there (not ours) is chained, not replaced."""
    target, chained = directory / name, directory / (name + CHAINED_SUFFIX)
    what = f"hook {name}"
    if is_gitexp_hook(target):
        if target.read_bytes() == content and _is_executable(target):
            return InitChange(what, "unchanged", str(target))
        if not dry_run:
            _write_hook(target, content)
        return InitChange(what, "would update" if dry_run else "updated", str(target))
    detail = None
    if os.path.lexists(target):
        if target.is_dir() and not target.is_symlink():
            raise GitExpError(f"cannot install the {name} hook: {target} is a directory")
        if os.path.lexists(chained):
            raise GitExpError(
                f"cannot install the {name} hook: {target} is not gitexp's and {chained} "
                "exists already; move one of them away"
            )
        detail = f"the hook that was there runs first, from {chained}"
        _warn_about_existing(target, chained, report)
    elif os.path.lexists(chained):
        detail = f"it runs {chained} first"
    if not dry_run:
        moved = os.path.lexists(target)
        if moved:
            os.rename(target, chained)
        try:
            _write_hook(target, content)
        except OSError:
            if moved:
                os.rename(chained, target)
            raise
    return InitChange(what, "would install" if dry_run else "installed", str(target), detail)


def uninstall_hook(directory: Path, name: str, dry_run: bool, report: InitReport) -> InitChange:
    """Remove our hook (only ours) and put back the hook it chained, if any."""
    target, chained = directory / name, directory / (name + CHAINED_SUFFIX)
    what = f"hook {name}"
    if os.path.lexists(target) and not is_gitexp_hook(target):
        if os.path.lexists(chained):
            report.warnings.append(f"{chained} is left alone: {target} is not gitexp's hook")
        return InitChange(what, "left alone", str(target), "not installed by gitexp")
    ours, restore = os.path.lexists(target), os.path.lexists(chained)
    if not ours and not restore:
        return InitChange(what, "not installed", str(target))
    if not dry_run:
        if ours:
            target.unlink()
        if restore:
            os.rename(chained, target)
    action = "removed" if ours else "restored"
    detail = f"the hook that was there before is back, from {chained}" if restore else None
    return InitChange(what, f"would {action[:-1]}" if dry_run else action, str(target), detail)


def is_gitexp_hook(path: Path) -> bool:
    """Whether `path` is a hook gitexp installed: a regular file whose second line is the
    marker (`# gitexp-managed-hook: ...`)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            lines = handle.read(MARKER_SEARCH_BYTES).split(b"\n")
    except OSError:
        return False
    return len(lines) > 1 and lines[1].startswith(HOOK_MARKER)


def _write_hook(target: Path, content: bytes) -> None:
    """Write `content` executable at `target`, atomically (a temp file renamed over it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.gitexp-{os.getpid()}")
    try:
        temp.write_bytes(content)
        temp.chmod(HOOK_MODE)
        os.replace(temp, target)
    finally:
        if temp.exists():
            temp.unlink()


def _warn_about_existing(target: Path, chained: Path, report: InitReport) -> None:
    if target.is_symlink():
        report.warnings.append(
            f"{target} is a symlink (to {os.readlink(target)}): it is kept as is, as {chained}"
        )
    if not _is_executable(target):
        report.warnings.append(
            f"{target} is not executable, so git does not run it and neither will gitexp's "
            f"hook (kept as {chained}; chmod +x it to have it run)"
        )


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _refuse_hooks_in_worktree(repo: pygit2.Repository, directory: Path, name: str) -> None:
    """core.hooksPath inside the working tree holds files you track: gitexp never writes there."""
    if repo.is_bare or not repo.workdir:
        return
    resolved = directory.resolve()
    if resolved.is_relative_to(Path(repo.workdir).resolve()) and not resolved.is_relative_to(
        common_dir(repo)
    ):
        raise GitExpError(
            f"core.hooksPath ({directory}) is inside the working tree, which gitexp never "
            f"changes: to use gitexp's hook, call {shipped_hooks_directory() / name} from "
            f"your {name} hook"
        )


def _describe_state(repo: pygit2.Repository, remote: str, report: InitReport) -> None:
    directory = hooks_directory(repo)
    for name in shipped_hooks():
        target = directory / name
        state = "installed" if is_gitexp_hook(target) else "not installed"
        report.changes.append(InitChange(f"hook {name}", state, str(target)))
    if remote in set(repo.remotes.names()):
        key = f"remote.{remote}.fetch"
        state = "set" if fetch_refspec(remote) in _config_values(repo, key) else "not set"
        report.changes.append(InitChange(f"config {key}", state, detail=fetch_refspec(remote)))
    else:
        report.warnings.append(f"no remote '{remote}' to configure fetching records from")
    shown = store.NOTES_REF in _config_values(repo, "notes.displayRef")
    report.changes.append(
        InitChange("config notes.displayRef", "set" if shown else "not set", detail=store.NOTES_REF)
    )

"""Hermetic fixtures: every test gets a scratch home and a real git repository."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from hypothesis import settings
from pygit2.enums import ConfigLevel

SCRUBBED_PREFIXES = ("GIT_", "GITEXP_")

# CI (which sets CI=true) replays the same examples every time, so a landing never depends on
# luck; local runs keep exploring new ones (and print a blob to replay any failure).
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def hermetic_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Scrub git and gitexp variables and point HOME at an empty directory."""
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(SCRUBBED_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
    # libgit2 reads $HOME once, when pygit2 is imported: point its config search at `home`
    # so in-process tests never see the real ~/.gitconfig or /etc/gitconfig.
    levels = (ConfigLevel.SYSTEM, ConfigLevel.XDG, ConfigLevel.GLOBAL)
    saved = {level: pygit2.settings.search_path[level] for level in levels}
    empty_system = home / "no-system-config"
    empty_system.mkdir()
    pygit2.settings.search_path[ConfigLevel.SYSTEM] = str(empty_system)
    pygit2.settings.search_path[ConfigLevel.XDG] = str(home / ".config" / "git")
    pygit2.settings.search_path[ConfigLevel.GLOBAL] = str(home)
    yield home
    for level, path in saved.items():
        pygit2.settings.search_path[level] = path


def git(cwd: Path, *args: str, check: bool = True) -> str:
    """Run the real git binary and return its stdout."""
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr}")
    return result.stdout


@pytest.fixture
def repo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh repository with a pinned identity and one commit; cwd is its root."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Test User")
    git(path, "config", "user.email", "test@example.com")
    (path / "README").write_text("hello\n")
    git(path, "add", "README")
    git(path, "commit", "-q", "-m", "initial")
    monkeypatch.chdir(path)
    yield path

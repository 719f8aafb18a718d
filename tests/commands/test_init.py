"""`git exp init`: the pre-push hook (chained, opt-in, no recursion), fetch config, packaging."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pygit2
import pytest
from conftest import git
from helpers_archive import clone_of, git_user, make_remote_and_clone, remote_refs
from helpers_e2e import assert_one_error_line, git_exp, invoke_main, repo_state, run_core

from gitexp.commands.init import (
    CHAINED_SUFFIX,
    hooks_directory,
    init_repository,
    is_gitexp_hook,
    shipped_hooks,
)
from gitexp.errors import GitExpError, UsageError

ROOT = Path(__file__).resolve().parents[2]
NOTES_REFSPEC = "+refs/notes/experiments:refs/notes/remotes/origin/experiments"
# A hook of the user's: logs its arguments and input, fails when the file `fail` exists.
USER_HOOK = """#!/bin/sh
log="$(git rev-parse --git-common-dir)/../../hook-calls.log"
{ echo "call $*"; cat; } >> "$log"
[ ! -e "$(dirname "$log")/fail" ]
"""


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A clone (with two recorded runs and a new commit) of the bare remote tmp_path/remote.git."""
    _, path = make_remote_and_clone(tmp_path)
    for _ in range(2):
        run_core(path, "train.py")
    (path / "more.txt").write_text("more\n")
    git(path, "add", "more.txt")
    git(path, "commit", "-q", "-m", "more")
    return path


def user_hook(hooks: Path, content: str = USER_HOOK, mode: int = 0o755) -> Path:
    hooks.mkdir(parents=True, exist_ok=True)
    hook = hooks / "pre-push"
    hook.write_text(content)
    hook.chmod(mode)
    return hook


def hook_calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "hook-calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line for line in lines if line.startswith("call ")]


def run_refs_pushed(remote: Path) -> set[str]:
    return {ref for ref in remote_refs(remote) if ref.startswith("refs/experiments/")}


def local_run_refs(clone: Path) -> set[str]:
    return set(git(clone, "for-each-ref", "--format=%(refname)", "refs/experiments").split())


# --- the pre-push hook, through real pushes ---------------------------------------------------


def test_plain_git_push_also_pushes_the_runs_once(clone: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    user_hook(clone / ".git" / "hooks")
    before = repo_state(clone)
    result = git_exp(clone, "init", "--hooks")
    assert result.returncode == 0, result.stderr
    assert repo_state(clone) == before

    pushed = git_user(clone, "push", "origin", "main")

    assert pushed.returncode == 0, pushed.stderr
    assert "2 run(s) pushed" in pushed.stderr
    assert run_refs_pushed(remote) == local_run_refs(clone)
    assert "refs/notes/experiments" in remote_refs(remote)
    assert git(remote, "rev-parse", "refs/notes/experiments") == git(
        clone, "rev-parse", "refs/notes/experiments"
    )
    # No recursion: the user's hook ran for the branch push, then once for gitexp's own push
    # of the runs (whose hook did not push again).
    calls = (tmp_path / "hook-calls.log").read_text()
    assert hook_calls(tmp_path) == [f"call origin {remote}"] * 2
    assert "refs/heads/main" in calls.split("call ")[1]
    assert "refs/experiments/" in calls.split("call ")[2]
    assert git_user(clone, "push", "origin", "main").returncode == 0  # up to date: fine too


def test_a_failing_chained_hook_blocks_the_push(clone: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    user_hook(clone / ".git" / "hooks")
    assert git_exp(clone, "init", "--hooks").returncode == 0
    (tmp_path / "fail").write_text("")

    pushed = git_user(clone, "push", "origin", "main")

    assert pushed.returncode != 0
    assert "failed to push" in pushed.stderr
    assert hook_calls(tmp_path) == [f"call origin {remote}"]
    assert run_refs_pushed(remote) == set()
    assert git(remote, "rev-parse", "main") != git(clone, "rev-parse", "main")


def test_failing_to_push_runs_warns_and_lets_the_branch_through(
    clone: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    refuse_runs = remote / "hooks" / "pre-receive"  # the server refuses run refs
    refuse_runs.write_text("#!/bin/sh\n! grep -q ' refs/experiments/'\n")
    refuse_runs.chmod(0o755)
    assert git_exp(clone, "init", "--hooks").returncode == 0

    pushed = git_user(clone, "push", "origin", "main")

    assert pushed.returncode == 0, pushed.stderr
    assert "gitexp: warning: could not push experiment runs to origin" in pushed.stderr
    assert git(remote, "rev-parse", "main") == git(clone, "rev-parse", "main")
    assert run_refs_pushed(remote) == set()


@pytest.mark.parametrize(
    ("setting", "env"),
    [(None, {"GITEXP_TRANSPORT": "1"}), ("false", {})],
    ids=["inside-gitexp", "pushOnPush-false"],
)
def test_the_hook_stays_out_when_told(
    clone: Path, tmp_path: Path, setting: str | None, env: dict[str, str]
) -> None:
    remote = tmp_path / "remote.git"
    assert git_exp(clone, "init", "--hooks").returncode == 0
    if setting:
        git(clone, "config", "exp.pushOnPush", setting)
    pushed = git_user(clone, "push", "origin", "main", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert git(remote, "rev-parse", "main") == git(clone, "rev-parse", "main")
    assert run_refs_pushed(remote) == set()
    assert "refs/notes/experiments" not in remote_refs(remote)


def test_a_push_that_carries_runs_itself_is_left_alone(clone: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    assert git_exp(clone, "init", "--hooks").returncode == 0
    one = sorted(local_run_refs(clone))[0]
    pushed = git_user(clone, "push", "origin", f"{one}:{one}")
    assert pushed.returncode == 0, pushed.stderr
    assert run_refs_pushed(remote) == {one}
    assert "gitexp" not in pushed.stderr


# --- installing and uninstalling --------------------------------------------------------------


def test_install_twice_then_uninstall_restores_the_hook_byte_for_byte(clone: Path) -> None:
    hooks = clone / ".git" / "hooks"
    original = user_hook(hooks, USER_HOOK + "# the user's own\n", mode=0o750)
    original_bytes, original_stat = original.read_bytes(), original.stat()
    repo = pygit2.Repository(str(clone))

    first = init_repository(repo, hooks=True)
    installed = (hooks / "pre-push").read_bytes()
    second = init_repository(repo, hooks=True)

    assert [c.action for c in first.changes] == ["installed"]
    assert [c.action for c in second.changes] == ["unchanged"]
    assert installed == shipped_hooks()["pre-push"] == (hooks / "pre-push").read_bytes()
    assert is_gitexp_hook(hooks / "pre-push")
    assert (hooks / ("pre-push" + CHAINED_SUFFIX)).read_bytes() == original_bytes
    assert sorted(p.name for p in hooks.iterdir() if p.name.startswith("pre-push")) == [
        "pre-push",
        "pre-push.gitexp-chained",
        "pre-push.sample",
    ]

    removed = init_repository(repo, uninstall_hooks=True)
    assert [c.action for c in removed.changes] == ["removed"]
    restored = hooks / "pre-push"
    assert restored.read_bytes() == original_bytes
    assert restored.stat().st_mode == original_stat.st_mode
    assert restored.stat().st_ino == original_stat.st_ino  # renamed back, never rewritten
    assert not (hooks / ("pre-push" + CHAINED_SUFFIX)).exists()
    again = init_repository(repo, uninstall_hooks=True)
    assert [(c.action, c.detail) for c in again.changes] == [
        ("left alone", "not installed by gitexp")
    ]
    assert restored.read_bytes() == original_bytes


def test_install_and_uninstall_without_a_previous_hook(repo_dir: Path) -> None:
    repo = pygit2.Repository(str(repo_dir))
    hook = repo_dir / ".git" / "hooks" / "pre-push"
    init_repository(repo, hooks=True)
    assert os.access(hook, os.X_OK)
    assert [c.action for c in init_repository(repo, uninstall_hooks=True).changes] == ["removed"]
    assert not hook.exists()
    assert [c.action for c in init_repository(repo, uninstall_hooks=True).changes] == [
        "not installed"
    ]


def test_symlinked_hook_is_chained_as_a_link_and_still_runs(clone: Path, tmp_path: Path) -> None:
    managed = user_hook(tmp_path / "hook-manager")
    hooks = clone / ".git" / "hooks"
    (hooks / "pre-push").symlink_to(managed)
    repo = pygit2.Repository(str(clone))

    report = init_repository(repo, hooks=True)

    chained = hooks / ("pre-push" + CHAINED_SUFFIX)
    assert chained.is_symlink() and os.readlink(chained) == str(managed)
    assert any("is a symlink" in warning for warning in report.warnings)
    assert git_user(clone, "push", "origin", "main").returncode == 0
    assert len(hook_calls(tmp_path)) == 2
    init_repository(repo, uninstall_hooks=True)
    assert (hooks / "pre-push").is_symlink()
    assert os.readlink(hooks / "pre-push") == str(managed)
    assert managed.read_text() == USER_HOOK


def test_a_chained_link_to_gitexps_own_hook_does_not_loop(clone: Path, tmp_path: Path) -> None:
    hooks = clone / ".git" / "hooks"
    (hooks / "pre-push").symlink_to(ROOT / "hooks" / "pre-push")  # "call gitexp's hook"
    init_repository(pygit2.Repository(str(clone)), hooks=True)
    pushed = git_user(clone, "push", "origin", "main")
    assert pushed.returncode == 0, pushed.stderr
    assert pushed.stderr.count("run(s) pushed") == 1
    assert run_refs_pushed(tmp_path / "remote.git") == local_run_refs(clone)


def test_a_non_executable_hook_is_kept_but_not_run_as_git_would(
    clone: Path, tmp_path: Path
) -> None:
    hooks = clone / ".git" / "hooks"
    user_hook(hooks, mode=0o644)
    report = init_repository(pygit2.Repository(str(clone)), hooks=True)
    assert any("is not executable" in warning for warning in report.warnings)
    assert git_user(clone, "push", "origin", "main").returncode == 0
    assert hook_calls(tmp_path) == []
    assert run_refs_pushed(tmp_path / "remote.git") == local_run_refs(clone)


def test_a_foreign_hook_in_the_chained_slot_is_never_overwritten(repo_dir: Path) -> None:
    hooks = repo_dir / ".git" / "hooks"
    user_hook(hooks)
    (hooks / ("pre-push" + CHAINED_SUFFIX)).write_text("#!/bin/sh\n# someone else's\n")
    before = {p.name: p.read_bytes() for p in hooks.iterdir()}
    with pytest.raises(GitExpError, match="exists already; move one of them away"):
        init_repository(pygit2.Repository(str(repo_dir)), hooks=True)
    assert {p.name: p.read_bytes() for p in hooks.iterdir()} == before


def test_core_hooks_path_is_respected(clone: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "shared-hooks"
    git(clone, "config", "core.hooksPath", str(elsewhere))
    user_hook(elsewhere)
    repo = pygit2.Repository(str(clone))
    assert hooks_directory(repo) == elsewhere

    init_repository(repo, hooks=True)

    assert is_gitexp_hook(elsewhere / "pre-push")
    assert (elsewhere / ("pre-push" + CHAINED_SUFFIX)).read_text() == USER_HOOK
    assert not (clone / ".git" / "hooks" / "pre-push").exists()
    assert git_user(clone, "push", "origin", "main").returncode == 0
    assert run_refs_pushed(tmp_path / "remote.git") == local_run_refs(clone)
    assert len(hook_calls(tmp_path)) == 2

    git(clone, "config", "core.hooksPath", ".git/my-hooks")  # relative: to the work tree top
    assert hooks_directory(pygit2.Repository(str(clone))) == clone / ".git" / "my-hooks"


def test_hooks_path_inside_the_work_tree_is_refused(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    git(repo_dir, "config", "core.hooksPath", ".githooks")
    before = repo_state(repo_dir)
    code, out, err = invoke_main(monkeypatch, "init", "--hooks")
    assert (code, out) == (1, "")
    assert_one_error_line(
        err,
        f"core.hooksPath ({repo_dir}/.githooks) is inside the working tree, which gitexp "
        f"never changes: to use gitexp's hook, call {ROOT}/hooks/pre-push from your pre-push hook",
    )
    assert repo_state(repo_dir) == before
    assert not (repo_dir / ".githooks").exists()


def test_hooks_and_uninstall_together_is_an_error(repo_dir: Path) -> None:
    with pytest.raises(UsageError, match="cannot be used together"):
        init_repository(pygit2.Repository(str(repo_dir)), hooks=True, uninstall_hooks=True)


# --- fetch config -----------------------------------------------------------------------------


def test_config_makes_plain_git_fetch_bring_the_records(clone: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    other = clone_of(remote, tmp_path / "b")
    assert git_exp(clone, "push").returncode == 0
    before = repo_state(other)

    for _ in range(2):
        result = git_exp(other, "init", "--config")
        assert result.returncode == 0, result.stderr

    assert git(other, "config", "--get-all", "remote.origin.fetch").splitlines() == [
        "+refs/heads/*:refs/remotes/origin/*",
        NOTES_REFSPEC,
    ]
    assert git(other, "config", "--get-all", "remote.origin.push", check=False) == ""
    assert git_user(other, "fetch").returncode == 0
    assert git(other, "rev-parse", "refs/notes/remotes/origin/experiments") == git(
        remote, "rev-parse", "refs/notes/experiments"
    )
    assert local_run_refs(other) == set()  # runs come with `git exp pull`, create-only
    assert git(other, "rev-parse", "-q", "--verify", "refs/notes/experiments", check=False) == ""
    assert repo_state(other) == before


def test_show_notes_makes_git_log_show_records(clone: Path) -> None:
    repo = pygit2.Repository(str(clone))
    for _ in range(2):
        init_repository(repo, show_notes=True)
    assert git(clone, "config", "--get-all", "notes.displayRef") == "refs/notes/experiments\n"
    run_ref = sorted(local_run_refs(clone))[0]
    assert "Notes (experiments):" in git(clone, "log", "-1", run_ref)


def test_config_for_a_missing_remote_is_an_error(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = invoke_main(monkeypatch, "init", "--config", "--remote", "cluster")
    assert (code, out) == (1, "")
    assert_one_error_line(
        err, "no such remote 'cluster' (git remote -v lists them; pick one with --remote)"
    )


def test_state_dry_run_and_json_change_nothing(
    clone: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(clone)
    config = (clone / ".git" / "config").read_bytes()
    hooks = sorted(p.name for p in (clone / ".git" / "hooks").iterdir())

    code, out, _ = invoke_main(monkeypatch, "init")
    assert code == 0
    assert f"hook pre-push ({clone}/.git/hooks/pre-push): not installed" in out
    assert f"config remote.origin.fetch: not set: {NOTES_REFSPEC}" in out

    code, out, _ = invoke_main(monkeypatch, "init", "--hooks", "--config", "--dry-run")
    assert code == 0
    assert "would install" in out and "would add" in out and "dry run: nothing changed" in out
    assert (clone / ".git" / "config").read_bytes() == config
    assert sorted(p.name for p in (clone / ".git" / "hooks").iterdir()) == hooks

    code, out, _ = invoke_main(monkeypatch, "init", "--hooks", "--config", "--json")
    assert code == 0
    report = json.loads(out)
    assert [(c["what"], c["action"]) for c in report["changes"]] == [
        ("config remote.origin.fetch", "added"),
        ("hook pre-push", "installed"),
    ]
    code, out, _ = invoke_main(monkeypatch, "init")
    assert "pre-push): installed" in out and "remote.origin.fetch: set" in out


# --- what is shipped --------------------------------------------------------------------------


def test_the_shipped_hook_is_posix_sh_with_the_marker(tmp_path: Path) -> None:
    hook = ROOT / "hooks" / "pre-push"
    assert hook.read_bytes().startswith(b"#!/bin/sh\n")
    assert is_gitexp_hook(hook)
    wrapper = tmp_path / "pre-push"
    wrapper.write_text(f'#!/bin/sh\n# calls # gitexp-managed-hook: from\n{hook} "$@"\n')
    assert not is_gitexp_hook(wrapper)  # the marker must be the second line
    subprocess.run(["sh", "-n", str(hook)], check=True)
    assert set(shipped_hooks()) == {"pre-push"}


def test_every_package_is_listed_for_packaging() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {"gitexp"} | {
        "gitexp." + path.relative_to(ROOT / "gitexp").as_posix().replace("/", ".")
        for path in (ROOT / "gitexp").rglob("*")
        if path.is_dir() and path.name != "__pycache__" and any(path.glob("*.py"))
    }
    assert set(config["packages"]) == on_disk | {"gitexp._hooks_data"}
    assert config["package-dir"] == {"gitexp._hooks_data": "hooks"}
    assert config["package-data"]["gitexp._hooks_data"] == ["*"]

"""`git exp checkout`: the run's code comes back, and no local change is ever lost."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import git
from helpers_e2e import (
    add_all_tree,
    assert_one_error_line,
    fsck,
    git_exp,
    invoke_main,
    note,
    repo_state,
    run_refs,
    user_env,
)
from helpers_restore import (
    BASE_FILES,
    RUN_FILES,
    index_tree,
    open_repo,
    prune_has_nothing_to_do,
    run_with_changes,
    show_file,
    worktree_list,
)

from gitexp.commands.checkout import checkout_run
from gitexp.commands.run import RunResult
from gitexp.errors import GitExpError, InvalidNameError
from gitexp.listing import list_runs

REFUSAL = (
    "checking out {run} would overwrite local changes to {paths}; commit or stash them "
    "(git stash -u), or use --force to save them as a snapshot first"
)


@pytest.fixture
def run(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> RunResult:
    return run_with_changes(repo_dir, capfd)


def checkout(repo_dir: Path, spec: str, **options: object):  # type: ignore[no-untyped-def]
    return checkout_run(open_repo(repo_dir), spec, user_env(), **options)  # type: ignore[arg-type]


def head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD").strip()


def test_detached_checkout_makes_the_working_tree_the_snapshot(
    repo_dir: Path, run: RunResult
) -> None:
    main_commit = head(repo_dir)

    result = checkout(repo_dir, run.run_id)

    assert head(repo_dir) == run.commit
    assert git(repo_dir, "symbolic-ref", "-q", "HEAD", check=False) == ""
    assert git(repo_dir, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo_dir, "diff", "HEAD", run.ref) == ""
    for path, text in RUN_FILES.items():
        assert (repo_dir / path).read_text() == text
    assert git(repo_dir, "reflog", "-1", "--format=%gs", "HEAD").strip() == (
        f"checkout: moving from main to {run.commit} (git exp checkout {run.run_id})"
    )
    assert (result.mode, result.previous, result.saved, result.kept) == (
        "detached",
        "main",
        None,
        [],
    )
    assert result.reproduce == f"cd {repo_dir} && git exp run noop.py"
    assert git(repo_dir, "rev-parse", "refs/heads/main").strip() == main_commit
    git(repo_dir, "checkout", "-q", "-")  # git understands our reflog entry
    assert git(repo_dir, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    fsck(repo_dir)


def test_changes_that_are_not_in_the_way_are_kept(repo_dir: Path, run: RunResult) -> None:
    (repo_dir / "other.txt").write_text("staged edit\n")
    git(repo_dir, "add", "other.txt")
    (repo_dir / "README").write_text("unstaged edit\n")
    (repo_dir / "scratch.txt").write_text("untracked, not in the way\n")
    (repo_dir / "weights.ckpt").write_text("ignored\n")

    result = checkout(repo_dir, run.run_id)

    assert head(repo_dir) == run.commit
    assert result.kept == [" M README", "M  other.txt", "?? scratch.txt"]
    assert git(repo_dir, "diff", "--cached", "--name-only").split() == ["other.txt"]
    assert (repo_dir / "other.txt").read_text() == "staged edit\n"
    assert (repo_dir / "README").read_text() == "unstaged edit\n"
    assert (repo_dir / "scratch.txt").read_text() == "untracked, not in the way\n"
    assert (repo_dir / "weights.ckpt").read_text() == "ignored\n"
    assert (repo_dir / "model.py").read_text() == RUN_FILES["model.py"]
    assert run_refs(repo_dir) == {run.ref: run.commit}  # nothing needed saving


def _staged(repo: Path) -> None:
    (repo / "model.py").write_text("WIDTH = 5  # staged\n")
    git(repo, "add", "model.py")


def _unstaged(repo: Path) -> None:
    (repo / "model.py").write_text("WIDTH = 6  # unstaged\n")


def _staged_then_reverted(repo: Path) -> None:
    # libgit2's SAFE checkout alone overwrites this staged change without a word.
    _staged(repo)
    (repo / "model.py").write_text(BASE_FILES["model.py"])


def _deleted(repo: Path) -> None:
    (repo / "model.py").unlink()


def _untracked_in_the_way(repo: Path) -> None:
    (repo / "new.txt").write_text("my own new.txt\n")


def _staged_new_file_in_the_way(repo: Path) -> None:
    _untracked_in_the_way(repo)
    git(repo, "add", "new.txt")


@pytest.mark.parametrize(
    ("make_change", "paths"),
    [
        (_staged, "model.py"),
        (_unstaged, "model.py"),
        (_staged_then_reverted, "model.py"),
        (_deleted, "model.py"),
        (_untracked_in_the_way, "new.txt"),
        (_staged_new_file_in_the_way, "new.txt"),
    ],
)
def test_local_changes_in_the_way_are_refused(
    repo_dir: Path, run: RunResult, make_change: Callable[[Path], None], paths: str
) -> None:
    make_change(repo_dir)
    before = repo_state(repo_dir)

    for dry_run in (True, False):
        with pytest.raises(GitExpError) as refused:
            checkout(repo_dir, run.run_id, dry_run=dry_run)
        assert str(refused.value) == REFUSAL.format(run=run.run_id, paths=paths)

    assert repo_state(repo_dir) == before
    assert run_refs(repo_dir) == {run.ref: run.commit}


def test_force_saves_staged_unstaged_and_untracked_changes_first(
    repo_dir: Path, run: RunResult, tmp_path: Path
) -> None:
    (repo_dir / "model.py").write_text("WIDTH = 5  # staged\n")
    git(repo_dir, "add", "model.py")
    (repo_dir / "model.py").write_text("WIDTH = 6  # unstaged, on top of the staged one\n")
    (repo_dir / "other.txt").write_text("staged only\n")
    git(repo_dir, "add", "other.txt")
    (repo_dir / "new.txt").write_text("untracked, in the way\n")
    (repo_dir / "notes.txt").write_text("untracked, not in the way\n")
    os.symlink("other.txt", repo_dir / "link")
    (repo_dir / "README").unlink()
    expected_tree = add_all_tree(repo_dir, tmp_path / "oracle")
    expected_index = index_tree(repo_dir, tmp_path / "oracle")
    main_commit = head(repo_dir)

    result = checkout(repo_dir, run.run_id, force=True)

    saved = result.saved
    assert saved is not None and result.saves_local_state
    assert saved.id.startswith("saved/")
    saved_ref = f"refs/experiments/{saved.id}"
    assert run_refs(repo_dir) == {run.ref: run.commit, saved_ref: saved.commit}
    # The snapshot is made exactly as a run's: the working tree on top of HEAD ...
    assert git(repo_dir, "rev-parse", f"{saved.commit}^{{tree}}").strip() == expected_tree
    assert git(repo_dir, "rev-parse", f"{saved.commit}^1").strip() == main_commit
    # ... and the index, as it was, is its second parent (as in `git stash`).
    assert git(repo_dir, "rev-parse", f"{saved.commit}^2^{{tree}}").strip() == expected_index
    assert saved.index_commit == git(repo_dir, "rev-parse", f"{saved.commit}^2").strip()
    assert (
        show_file(repo_dir, saved.commit, "model.py")
        == "WIDTH = 6  # unstaged, on top of the staged one\n"
    )
    assert show_file(repo_dir, f"{saved.commit}^2", "model.py") == "WIDTH = 5  # staged\n"
    assert show_file(repo_dir, saved.commit, "new.txt") == "untracked, in the way\n"
    record = note(repo_dir, saved.commit)
    assert (record["status"], record["name"], record["id"], record["command"]) == (
        "saved",
        "saved",
        saved.id,
        [],
    )
    assert record["git"]["index"] == saved.index_commit
    assert record["message"] == (
        f"local state on main saved by `git exp checkout --force {run.run_id}`: "
        "2 staged, 2 unstaged, 3 untracked path(s)"
    )
    assert git(repo_dir, "log", "-1", "--format=%B", saved.commit).startswith(
        f"exp: {saved.id}\n\ngit exp checkout --force {run.run_id}\n"
    )
    listed = {r.id: r.status for r in list_runs(open_repo(repo_dir))}
    assert listed[saved.id] == "saved"
    # The run's code is checked out; untracked files not in the way stay.
    assert head(repo_dir) == run.commit
    assert (repo_dir / "new.txt").read_text() == RUN_FILES["new.txt"]
    assert (repo_dir / "notes.txt").read_text() == "untracked, not in the way\n"
    assert result.kept == ["?? link", "?? notes.txt"]
    fsck(repo_dir)

    back = checkout(repo_dir, saved.id, force=True)

    assert back.saved is not None  # the state with the run's code was saved in turn
    assert git(repo_dir, "rev-parse", "HEAD^{tree}").strip() == expected_tree
    assert (
        repo_dir / "model.py"
    ).read_text() == "WIDTH = 6  # unstaged, on top of the staged one\n"


def test_force_with_a_clean_tree_saves_nothing(repo_dir: Path, run: RunResult) -> None:
    result = checkout(repo_dir, run.run_id, force=True)
    assert (result.saved, result.saves_local_state) == (None, False)
    assert run_refs(repo_dir) == {run.ref: run.commit}
    assert head(repo_dir) == run.commit


def test_force_refuses_to_overwrite_what_no_snapshot_holds(repo_dir: Path, run: RunResult) -> None:
    # An ignored file inside an untracked directory the run's file replaces: libgit2's
    # forced checkout would delete it even with DONT_OVERWRITE_IGNORED.
    (repo_dir / "new.txt").mkdir()
    (repo_dir / "new.txt" / "mine.txt").write_text("untracked\n")
    (repo_dir / "new.txt" / "best.ckpt").write_text("ignored checkpoint\n")
    before = repo_state(repo_dir)

    for force in (False, True):
        with pytest.raises(GitExpError) as refused:
            checkout(repo_dir, run.run_id, force=force)
        assert str(refused.value) == (
            f"checking out {run.run_id} would overwrite new.txt/best.ckpt, which --force "
            "cannot save (ignored, larger than exp.maxFileSize, or a nested repository): "
            "move them away first"
        )
    assert repo_state(repo_dir) == before
    assert run_refs(repo_dir) == {run.ref: run.commit}

    (repo_dir / "new.txt" / "best.ckpt").unlink()
    git(repo_dir, "config", "exp.maxFileSize", "5")
    with pytest.raises(GitExpError, match=r"overwrite new\.txt/mine\.txt, which"):
        checkout(repo_dir, run.run_id, force=True)


def test_dry_run_changes_nothing(repo_dir: Path, run: RunResult) -> None:
    _unstaged(repo_dir)
    (repo_dir / "scratch.txt").write_text("untracked\n")
    before = repo_state(repo_dir)

    result = checkout(repo_dir, run.run_id, force=True, dry_run=True)

    assert result.dry_run and result.saves_local_state and result.saved is None
    assert result.kept == ["?? scratch.txt"]
    assert repo_state(repo_dir) == before
    assert run_refs(repo_dir) == {run.ref: run.commit}
    assert checkout(repo_dir, run.run_id, worktree=repo_dir.parent / "wt", dry_run=True).dry_run
    assert not (repo_dir.parent / "wt").exists()


def test_new_branch(repo_dir: Path, run: RunResult) -> None:
    result = checkout(repo_dir, run.run_id, branch="try-it")

    assert (result.mode, result.branch) == ("branch", "try-it")
    assert git(repo_dir, "symbolic-ref", "HEAD").strip() == "refs/heads/try-it"
    assert head(repo_dir) == run.commit
    assert git(repo_dir, "reflog", "-1", "--format=%gs", "HEAD").strip() == (
        f"checkout: moving from main to try-it (git exp checkout {run.run_id})"
    )
    assert git(repo_dir, "reflog", "-1", "--format=%gs", "try-it").strip() == (
        f"branch: Created from {run.commit} (git exp checkout {run.run_id})"
    )
    before = repo_state(repo_dir)
    with pytest.raises(GitExpError, match=r"^a branch named 'main' already exists$"):
        checkout(repo_dir, run.run_id, branch="main")
    for bad in ("a..b", "-x", "HEAD", "x.lock", "a b", ""):
        with pytest.raises(InvalidNameError, match=r"is not a valid branch name$"):
            checkout(repo_dir, run.run_id, branch=bad)
    assert repo_state(repo_dir) == before


def test_refused_branch_checkout_leaves_no_branch(repo_dir: Path, run: RunResult) -> None:
    _unstaged(repo_dir)
    with pytest.raises(GitExpError):
        checkout(repo_dir, run.run_id, branch="try-it")
    assert git(repo_dir, "branch", "--list", "try-it") == ""


def test_worktree_leaves_the_current_checkout_alone(
    repo_dir: Path, run: RunResult, tmp_path: Path
) -> None:
    _unstaged(repo_dir)
    (repo_dir / "scratch.txt").write_text("untracked\n")
    before = repo_state(repo_dir)
    refs_before = git(repo_dir, "for-each-ref", "--format=%(refname) %(objectname)")
    path = tmp_path / "elsewhere" / "k3f9"

    result = checkout(repo_dir, run.run_id, worktree=path)

    assert result.worktree == str(path)
    assert repo_state(repo_dir) == before
    assert git(repo_dir, "for-each-ref", "--format=%(refname) %(objectname)") == refs_before
    listed = worktree_list(repo_dir)
    assert len(listed) == 2
    assert listed[1].splitlines() == [f"worktree {path}", f"HEAD {run.commit}", "detached"]
    assert git(path, "status", "--porcelain", "--untracked-files=all") == ""
    assert (path / "model.py").read_text() == RUN_FILES["model.py"]
    assert prune_has_nothing_to_do(repo_dir)
    assert result.reproduce == f"cd {path} && git exp run noop.py"
    fsck(repo_dir)

    with pytest.raises(GitExpError) as exists:
        checkout(repo_dir, run.run_id, worktree=path)
    assert str(exists.value) == f"'{path}' already exists"

    on_branch = tmp_path / "on-branch"
    checkout(repo_dir, run.run_id, worktree=on_branch, branch="wt-branch")
    assert git(on_branch, "symbolic-ref", "HEAD").strip() == "refs/heads/wt-branch"
    assert git(repo_dir, "rev-parse", "wt-branch").strip() == run.commit


def test_unfinished_merge_is_refused(repo_dir: Path, run: RunResult) -> None:
    git(repo_dir, "checkout", "-q", "-b", "side")
    (repo_dir / "other.txt").write_text("side\n")
    git(repo_dir, "commit", "-q", "-am", "side")
    git(repo_dir, "checkout", "-q", "main")
    (repo_dir / "other.txt").write_text("main\n")
    git(repo_dir, "commit", "-q", "-am", "main")
    git(repo_dir, "merge", "-q", "side", check=False)
    before = repo_state(repo_dir)
    with pytest.raises(GitExpError) as refused:
        checkout(repo_dir, run.run_id, force=True)
    assert str(refused.value) == (
        "a merge is in progress: finish or abort it before checking out a run"
    )
    assert repo_state(repo_dir) == before


def test_cli_reports_and_refuses(
    repo_dir: Path, run: RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    _unstaged(repo_dir)
    code, stdout, stderr = invoke_main(monkeypatch, "checkout", run.run_id)
    assert (code, stdout) == (1, "")
    assert_one_error_line(stderr, REFUSAL.format(run=run.run_id, paths="model.py"))

    code, stdout, stderr = invoke_main(monkeypatch, "checkout", "nope")
    assert code == 1
    assert_one_error_line(stderr, "unknown run 'nope' (git exp log lists runs)")

    code, stdout, stderr = invoke_main(monkeypatch, "checkout", run.run_id, "--force", "--json")
    assert (code, stderr) == (0, "")
    report = json.loads(stdout)
    assert report["saved"]["id"].startswith("saved/")
    assert (report["run"], report["mode"], report["previous"]) == (run.run_id, "detached", "main")

    code, stdout, stderr = invoke_main(monkeypatch, "checkout", "@", "--force", "--worktree", "x")
    assert code == 2
    assert "--force has no use with --worktree" in stderr


def test_git_exp_checkout_end_to_end(repo_dir: Path, run: RunResult, tmp_path: Path) -> None:
    (repo_dir / "new.txt").write_text("mine\n")
    env = user_env()

    refused = git_exp(repo_dir, "checkout", run.run_id, env=env)
    assert refused.returncode == 1
    assert_one_error_line(refused.stderr, REFUSAL.format(run=run.run_id, paths="new.txt"))

    forced = git_exp(repo_dir, "checkout", "--force", run.run_id, env=env)
    assert forced.returncode == 0, forced.stderr
    saved_id = next(r for r in run_refs(repo_dir) if "/saved/" in r)[len("refs/experiments/") :]
    assert forced.stdout.splitlines() == [
        f"Saved the local state as {saved_id}; to get it back: git exp checkout {saved_id}",
        f"Detached HEAD at {run.commit[:7]} ({run.run_id})",
        "Back to where you were: git checkout main",
        f"To reproduce the run: cd {repo_dir} && git exp run noop.py",
    ]
    logged = git_exp(repo_dir, "log", env=env)
    assert saved_id in logged.stdout and "saved" in logged.stdout

    back = git_exp(repo_dir, "checkout", saved_id, env=env)
    assert back.returncode == 0, back.stderr
    assert (repo_dir / "new.txt").read_text() == "mine\n"
    assert f"{saved_id} has no recorded command to reproduce" in back.stdout

    elsewhere = tmp_path / "wt"
    made = git_exp(repo_dir, "checkout", run.run_id, "--worktree", str(elsewhere), env=env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0] == (
        f"Created a worktree at {elsewhere}, detached at {run.commit[:7]} ({run.run_id})"
    )
    again = git_exp(repo_dir, "checkout", run.run_id, "--worktree", str(elsewhere), env=env)
    assert again.returncode == 1
    assert_one_error_line(again.stderr, f"'{elsewhere}' already exists")

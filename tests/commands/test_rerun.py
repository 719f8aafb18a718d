"""`git exp rerun`: the recorded command again, on the recorded code, never in the user's tree."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import git
from helpers_e2e import (
    BIN_DIR,
    assert_one_error_line,
    copy_example,
    fsck,
    git_exp,
    git_lost_waitpid_race,
    invoke_main,
    newest_run,
    note,
    read_json_file,
    repo_state,
    run_core,
    run_refs,
    user_env,
    wait_for,
    write_program,
)
from helpers_restore import open_repo, prune_has_nothing_to_do, worktree_list

from gitexp.commands.checkout import checkout_run
from gitexp.commands.rerun import RerunRequest, rerun_run
from gitexp.errors import GitExpError

# Writes into its working directory (a new file, a changed tracked file, an ignored file in an
# ignored directory), then exits with the code given as its last argument.
WRITER = """
import os, pathlib, sys
pathlib.Path("out").mkdir(exist_ok=True)
pathlib.Path("out/result.txt").write_text(" ".join(sys.argv[1:]) + "\\n")
pathlib.Path("tracked.txt").write_text("changed by the program\\n")
pathlib.Path("cache").mkdir(exist_ok=True)
pathlib.Path("cache/blob.bin").write_bytes(b"ignored")
sys.exit(int(sys.argv[-1]))
"""

# Writes a checkpoint, reports where it runs to argv[-2] and, when argv[-1] is "wait", waits
# for SIGINT, writes a last checkpoint and exits 130.
INTERRUPTIBLE = """
import json, os, pathlib, signal, sys, time
stop = []
def on_sigint(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop.append(signum)
signal.signal(signal.SIGINT, on_sigint)
pathlib.Path("ckpt").mkdir(exist_ok=True)
pathlib.Path("ckpt/step1.pt").write_text("1")
info = {"cwd": os.getcwd(), "run_dir": os.environ["GITEXP_RUN_DIR"]}
pathlib.Path(sys.argv[-2] + ".tmp").write_text(json.dumps(info))
os.replace(sys.argv[-2] + ".tmp", sys.argv[-2])
if sys.argv[-1] != "wait":
    sys.exit(0)
deadline = time.monotonic() + 20
while not stop and time.monotonic() < deadline:
    time.sleep(0.01)
pathlib.Path("ckpt/interrupted.pt").write_text("2")
sys.exit(130)
"""


def commit_all(repo: Path, message: str = "work") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def rerun(repo: Path, spec: str, *extra: str, **options: object):  # type: ignore[no-untyped-def]
    request = RerunRequest(spec=spec, environ=user_env(), extra_args=list(extra), **options)  # type: ignore[arg-type]
    reported: list[str] = []
    return rerun_run(open_repo(repo), request, reported.append), reported


def no_worktree_left(repo: Path) -> None:
    assert len(worktree_list(repo)) == 1
    assert prune_has_nothing_to_do(repo)
    admin = repo / ".git" / "worktrees"
    assert not admin.exists() or list(admin.iterdir()) == []
    temporary = repo / ".git" / "experiments" / ".worktrees"
    assert not temporary.exists() or list(temporary.iterdir()) == []


def test_rerun_of_the_train_logreg_example(repo_dir: Path) -> None:
    copy_example(repo_dir, "train_logreg.py")
    (repo_dir / ".gitignore").write_text("checkpoints/\n")
    commit_all(repo_dir)
    first = git_exp(repo_dir, "run", "train_logreg.py", "--epochs", "2", "--n", "200")
    assert first.returncode == 0, first.stderr
    _, original_commit, original = newest_run(repo_dir)
    (repo_dir / "README").write_text("the user's unstaged edit\n")
    (repo_dir / "scratch.txt").write_text("the user's untracked file\n")
    before = repo_state(repo_dir)

    again = git_exp(repo_dir, "rerun", "@", "--", "--epochs", "3", "--seed", "1")

    assert again.returncode == 0, again.stderr
    assert repo_state(repo_dir) == before
    no_worktree_left(repo_dir)
    _, commit, record = newest_run(repo_dir)
    assert record["rerun_of"] == original["id"]
    assert note(repo_dir, original_commit)["reruns"] == [record["id"]]
    assert record["name"] == "train_logreg"
    assert record["command"] == [*original["command"], "--epochs", "3", "--seed", "1"]
    assert (record["params"]["epochs"], record["params"]["seed"], record["params"]["n"]) == (
        3,
        1,
        200,
    )
    assert record["metrics"]["val_acc"]["count"] == 3
    assert record["cwd"] == "."
    # The code is the original's, and the new snapshot sits on it.
    assert git(repo_dir, "rev-parse", f"{commit}^{{tree}}") == git(
        repo_dir, "rev-parse", f"{original_commit}^{{tree}}"
    )
    assert git(repo_dir, "rev-parse", f"{commit}^").strip() == original_commit
    outputs = Path(record["run_dir"]) / "outputs"
    assert record["outputs_dir"] == str(outputs)
    assert sorted(p.name for p in (outputs / "checkpoints").iterdir()) == ["best.json", "last.json"]
    assert json.loads((outputs / "checkpoints" / "last.json").read_text())["epoch"] == 3
    user_checkpoint = json.loads((repo_dir / "checkpoints" / "last.json").read_text())
    assert user_checkpoint["epoch"] == 2  # the first run's, untouched
    assert f"gitexp: kept what the program wrote (1 path(s)) in {outputs}" in again.stderr
    assert again.stderr.splitlines()[-1].startswith(
        f"gitexp: {record['id']} (rerun of {original['id']}) succeeded in "
    )
    shown = git_exp(repo_dir, "show", record["id"]).stdout.splitlines()
    assert f"rerun of  {original['id']}" in shown
    assert f"outputs   {outputs}" in shown
    assert f"reruns    {record['id']}" in git_exp(repo_dir, "show", original["id"]).stdout
    fsck(repo_dir)


def test_outputs_and_exit_status_of_a_failing_rerun(
    repo_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_program(repo_dir / "sub" / "writer.py", WRITER)
    (repo_dir / "sub" / "tracked.txt").write_text("original\n")
    (repo_dir / ".gitignore").write_text("cache/\n")
    commit_all(repo_dir)
    original, _ = run_core(
        repo_dir, "writer.py", "--api-key", "s3cret", "0", cwd=repo_dir / "sub", name="baseline"
    )
    git(repo_dir, "checkout", "-q", "--", ".")
    git(repo_dir, "clean", "-fdxq")
    before = repo_state(repo_dir)

    result, reported = rerun(repo_dir, original.run_id, "3", message="again", tags=["repro"])

    capfd.readouterr()
    assert repo_state(repo_dir) == before
    no_worktree_left(repo_dir)
    run = result.run
    assert run.exit_status == 3
    assert (run.record["status"], run.record["exit_code"]) == ("failed", 3)
    assert run.run_id.startswith("baseline/")
    assert (run.record["cwd"], run.record["message"], run.record["tags"]) == (
        "sub",
        "again",
        ["repro"],
    )
    record = note(repo_dir, run.commit)
    outputs = Path(record["run_dir"]) / "outputs"
    assert record["outputs_dir"] == result.outputs_dir == str(outputs)
    assert result.outputs == ["sub/cache", "sub/out/result.txt", "sub/tracked.txt"]
    assert (outputs / "sub" / "out" / "result.txt").read_text() == "--api-key *** 0 3\n"
    assert (outputs / "sub" / "tracked.txt").read_text() == "changed by the program\n"
    assert (outputs / "sub" / "cache" / "blob.bin").read_bytes() == b"ignored"
    assert (
        "gitexp: note: the recorded command has secret values replaced by ***; "
        "pass the real ones after --"
    ) in reported
    assert note(repo_dir, original.commit)["reruns"] == [run.run_id]

    second, _ = rerun(repo_dir, original.run_id, "0")
    capfd.readouterr()
    assert note(repo_dir, original.commit)["reruns"] == [run.run_id, second.run.run_id]


@pytest.mark.parametrize(
    ("launcher", "exit_status"),
    [
        # git waits for `git-exp` (which exits 130), then dies of the SIGINT it got itself.
        (("git", "exp"), -signal.SIGINT),
        ((str(BIN_DIR / "git-exp"),), 130),
    ],
)
def test_ctrl_c_still_cleans_up_and_keeps_outputs(
    repo_dir: Path, tmp_path: Path, launcher: tuple[str, ...], exit_status: int
) -> None:
    write_program(repo_dir / "loop.py", INTERRUPTIBLE)
    (repo_dir / ".gitignore").write_text("ckpt/\n")
    commit_all(repo_dir)
    first = git_exp(repo_dir, "run", "loop.py", str(tmp_path / "first.json"), "quick")
    assert first.returncode == 0, first.stderr
    before = repo_state(repo_dir)
    info_file = tmp_path / "info.json"

    process = subprocess.Popen(
        [*launcher, "rerun", "@", "--", str(info_file), "wait"],
        cwd=repo_dir,
        env=user_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        info = wait_for(lambda: read_json_file(info_file))
        assert Path(info["cwd"]).is_dir()
        os.killpg(process.pid, signal.SIGINT)  # what a Ctrl-C at the terminal does
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()

    assert process.returncode == exit_status or git_lost_waitpid_race(process.returncode, stderr), (
        stderr
    )
    assert not Path(info["cwd"]).exists()
    no_worktree_left(repo_dir)
    assert repo_state(repo_dir) == before
    _, _, record = newest_run(repo_dir)
    assert record["status"] == "interrupted"
    outputs = Path(info["run_dir"]) / "outputs"
    assert record["outputs_dir"] == str(outputs)
    assert sorted(p.name for p in (outputs / "ckpt").iterdir()) == ["interrupted.pt", "step1.pt"]


def test_here_runs_in_the_working_tree_after_checkouts_checks(
    repo_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_program(repo_dir / "writer.py", WRITER)
    (repo_dir / "tracked.txt").write_text("original\n")
    commit_all(repo_dir)
    (repo_dir / "tracked.txt").write_text("the run's version\n")
    original, _ = run_core(repo_dir, "writer.py", "0")
    (repo_dir / "tracked.txt").write_text("the user's edit\n")
    before = repo_state(repo_dir)

    with pytest.raises(GitExpError) as refused:
        rerun(repo_dir, original.run_id, here=True)
    assert str(refused.value).startswith(
        f"checking out {original.run_id} would overwrite local changes to tracked.txt;"
    )
    assert repo_state(repo_dir) == before
    assert len(run_refs(repo_dir)) == 1

    result, _ = rerun(repo_dir, original.run_id, here=True, force=True)

    capfd.readouterr()
    assert result.saved is not None
    assert git(repo_dir, "show", f"{result.saved.commit}:tracked.txt") == "the user's edit\n"
    assert git(repo_dir, "rev-parse", "HEAD").strip() == original.commit
    assert git(repo_dir, "rev-parse", f"{result.run.commit}^").strip() == original.commit
    assert result.run.record["rerun_of"] == original.run_id
    assert "outputs_dir" not in note(repo_dir, result.run.commit)
    assert (repo_dir / "out" / "result.txt").read_text() == "0\n"
    assert git(repo_dir, "reflog", "-1", "--format=%gs", "HEAD").strip() == (
        f"checkout: moving from main to {original.commit} "
        f"(git exp rerun --here --force {original.run_id})"
    )


def test_bad_input(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    run, _ = run_core(repo_dir, "git", "--version")
    capfd.readouterr()
    (repo_dir / "README").write_text("changed\n")
    result = checkout_run(open_repo(repo_dir), run.run_id, user_env(), force=True)
    assert result.saved is not None

    code, stdout, stderr = invoke_main(monkeypatch, "rerun", result.saved.id)
    assert (code, stdout) == (1, "")
    assert_one_error_line(
        stderr,
        f"{result.saved.id} is a saved working tree, not a run: there is no command to rerun "
        f"(git exp checkout {result.saved.id} brings it back)",
    )
    code, _, stderr = invoke_main(monkeypatch, "rerun", "nope")
    assert code == 1
    assert_one_error_line(stderr, "unknown run 'nope' (git exp log lists runs)")
    code, _, stderr = invoke_main(monkeypatch, "rerun", "--force", "@")
    assert code == 2
    assert "--force only applies with --here" in stderr


def test_a_credential_redacted_inside_an_argument_is_pointed_out(repo_dir: Path) -> None:
    write_program(repo_dir / "fetch.py", "import sys\n")
    commit_all(repo_dir)
    original, _ = run_core(repo_dir, "python", "fetch.py", "--from", "https://me:hunter22@host/x")
    assert original.record["command"][-1] == "https://me:***@host/x"
    _, reported = rerun(repo_dir, original.run_id)
    assert (
        "gitexp: note: the recorded command has secret values replaced by ***; "
        "pass the real ones after --"
    ) in reported

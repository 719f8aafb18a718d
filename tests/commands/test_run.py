"""`run_experiment`, the core of `git exp run`, called directly on real repositories."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pygit2
import pytest
from conftest import git
from helpers_e2e import (
    add_all_tree,
    fsck,
    ls_tree,
    make_messy_repo,
    note,
    notes_ref,
    repo_state,
    run_core,
    run_refs,
    user_env,
    write_program,
)

from gitexp.commands.run import RunRequest, run_experiment
from gitexp.errors import GitExpError, InvalidNameError
from gitexp.probecache import RACY_SECONDS

NAME_RULE = (
    "use letters, digits, '.', '_' and '-', starting with a letter or digit, "
    "without '..' and not ending in '.lock'"
)


def assert_nothing_written(repo_dir: Path) -> None:
    assert run_refs(repo_dir) == {}
    assert notes_ref(repo_dir) is None


def test_snapshot_is_the_work_tree_and_the_repository_is_untouched(
    repo_dir: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    make_messy_repo(repo_dir)
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    before = repo_state(repo_dir)
    oracle = add_all_tree(repo_dir, tmp_path / "oracle")

    result, reported = run_core(repo_dir, "noop.py")

    assert repo_state(repo_dir) == before
    assert result.exit_status == 0
    assert ls_tree(repo_dir, result.commit) == ls_tree(repo_dir, oracle)
    assert git(repo_dir, "rev-parse", f"{result.commit}^@").split() == [head]
    assert run_refs(repo_dir) == {result.ref: result.commit}
    record = note(repo_dir, result.commit)
    assert record == result.record
    assert record["git"]["head"] == head
    assert record["git"]["branch"] == "main"
    assert record["git"]["dirty"] is True
    assert record["git"]["untracked"] == ["notes/untracked.txt"]
    message = git(repo_dir, "log", "-1", "--format=%B", result.commit)
    assert message.startswith(f"exp: {result.run_id}\n\nnoop.py\n")
    assert reported == [f"gitexp: {result.run_id} started (snapshot {result.commit[:7]})"]
    fsck(repo_dir)
    capfd.readouterr()


def test_unborn_head_gives_a_root_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "fresh"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.name", "Test User")
    git(repo, "config", "user.email", "test@example.com")
    (repo / "train.py").write_text("print('hi')\n")
    monkeypatch.chdir(repo)

    result, _ = run_core(repo, "train.py")

    assert result.record["status"] == "succeeded"
    assert git(repo, "rev-list", "--parents", "-n", "1", result.commit).split() == [result.commit]
    assert ls_tree(repo, result.commit) == ls_tree(repo, add_all_tree(repo, tmp_path / "o"))
    assert result.record["git"]["head"] is None
    assert result.record["git"]["branch"] == "main"
    assert git(repo, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False) == ""
    fsck(repo)


def test_detached_head_is_the_parent(repo_dir: Path) -> None:
    write_program(repo_dir / "train.py", "pass\n")
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-q", "-m", "train")
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    git(repo_dir, "checkout", "-q", "--detach")
    before = repo_state(repo_dir)

    result, _ = run_core(repo_dir, "train.py")

    assert repo_state(repo_dir) == before
    assert git(repo_dir, "rev-parse", f"{result.commit}^@").split() == [head]
    assert result.record["git"]["branch"] is None
    assert result.record["git"]["dirty"] is False


def test_large_untracked_files_are_left_out_and_listed(repo_dir: Path, tmp_path: Path) -> None:
    git(repo_dir, "config", "exp.maxFileSize", "1k")
    write_program(repo_dir / "train.py", "pass\n")
    (repo_dir / "big.bin").write_bytes(b"x" * 2000)

    (repo_dir / "nested").mkdir()
    git(repo_dir / "nested", "init", "-q")

    result, reported = run_core(repo_dir, "train.py")

    files = [line.split("\t")[1] for line in ls_tree(repo_dir, result.commit)]
    assert files == ["README", "train.py"]
    assert result.record["git"]["skipped"] == [
        {"path": "big.bin", "size": 2000, "reason": "larger than exp.maxFileSize"},
        {"path": "nested/", "size": None, "reason": "nested repository"},
    ]
    assert reported[1:] == [  # said at launch, not only by `git exp show`
        "gitexp: left out big.bin (2.0 KiB, larger than exp.maxFileSize)",
        "gitexp: left out nested/ (nested repository)",
    ]
    assert result.record["git"]["untracked"] == ["train.py"]


def test_exit_status_passes_through(repo_dir: Path) -> None:
    write_program(repo_dir / "three.py", "import sys\nsys.exit(3)\n")

    result, _ = run_core(repo_dir, "three.py")

    assert result.exit_status == 3
    assert result.record["status"] == "failed"
    assert result.record["exit_code"] == 3
    assert result.record["signal"] is None
    assert result.record["error"] is None


def test_name_message_tags_and_typed_params(repo_dir: Path) -> None:
    write_program(repo_dir / "train.py", "pass\n")

    result, _ = run_core(
        repo_dir,
        "train.py",
        "--lr",
        "0.1",
        "--epochs=5",
        "opt=adam",
        "--amp",
        "--wd",
        "-1e-3",
        "--shuffle",
        "false",
        name="baseline",
        message="first try",
        tags=["ablation", "lr", "ablation"],
    )

    record = note(repo_dir, result.commit)
    assert result.run_id.startswith("baseline/")
    assert record["name"] == "baseline"
    assert record["message"] == "first try"
    assert record["tags"] == ["ablation", "lr"]
    assert record["params"] == {
        "lr": 0.1,
        "epochs": 5,
        "amp": True,
        "opt": "adam",
        "wd": -0.001,
        "shuffle": False,
    }
    assert [type(record["params"][k]) for k in ("lr", "epochs", "amp", "opt")] == [
        float,
        int,
        bool,
        str,
    ]
    assert record["command"] == [
        "train.py",
        *("--lr", "0.1", "--epochs=5", "opt=adam", "--amp", "--wd", "-1e-3", "--shuffle", "false"),
    ]


def test_interpreter_options_are_not_params(repo_dir: Path) -> None:
    write_program(repo_dir / "pkg" / "__init__.py", "")
    write_program(repo_dir / "pkg" / "train.py", "pass\n")

    module, _ = run_core(repo_dir, "python", "-u", "-m", "pkg.train", "--lr", "2")
    script, _ = run_core(repo_dir, "python", "-W", "ignore", "pkg/train.py", "--lr", "3")

    assert module.record["name"] == "train"
    assert module.record["params"] == {"lr": 2}
    assert module.record["status"] == "succeeded"
    assert script.record["params"] == {"lr": 3}


def test_cwd_is_recorded_relative_to_the_top(repo_dir: Path) -> None:
    write_program(repo_dir / "sub" / "deeper" / "train.py", "import os\nprint(os.getcwd())\n")

    result, _ = run_core(repo_dir, "train.py", cwd=repo_dir / "sub" / "deeper")

    assert result.record["cwd"] == "sub/deeper"
    assert result.record["status"] == "succeeded"


def test_no_identity_anywhere_uses_the_fallback(repo_dir: Path) -> None:
    git(repo_dir, "config", "--unset", "user.name")
    git(repo_dir, "config", "--unset", "user.email")
    write_program(repo_dir / "train.py", "pass\n")

    result, _ = run_core(repo_dir, "train.py")

    assert result.record["status"] == "succeeded"
    author = git(repo_dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>", result.commit).strip()
    assert author == "gitexp <gitexp@localhost>|gitexp <gitexp@localhost>"
    notes_author = git(repo_dir, "log", "-1", "--format=%an <%ae>", "refs/notes/experiments")
    assert notes_author.strip() == "gitexp <gitexp@localhost>"


@pytest.mark.parametrize("name", ["../heads/main", "a..b", "x.lock", "has space", "-dash", ""])
def test_invalid_names_write_nothing(repo_dir: Path, name: str) -> None:
    write_program(repo_dir / "train.py", "pass\n")

    with pytest.raises(InvalidNameError) as caught:
        run_core(repo_dir, "train.py", name=name)

    rule = NAME_RULE if name else "it must not be empty"
    assert str(caught.value) == f"invalid experiment name '{name}': {rule}"
    assert_nothing_written(repo_dir)


@pytest.mark.parametrize("tag", ["has space", "a,b", "new\nline", "x" * 101, ""])
def test_invalid_tags_write_nothing(repo_dir: Path, tag: str) -> None:
    write_program(repo_dir / "train.py", "pass\n")

    with pytest.raises(InvalidNameError, match=r"^invalid tag '"):
        run_core(repo_dir, "train.py", tags=["ok", tag])

    assert_nothing_written(repo_dir)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (["missing.py"], "program not found: missing.py"),
        (["./missing.sh"], "program not found: ./missing.sh"),
        (["no-such-tool"], "program not found: no-such-tool (not on PATH and not a file here)"),
        (
            ["./plain.sh"],
            "program is not executable: ./plain.sh (chmod +x it, or name its interpreter first)",
        ),
    ],
)
def test_programs_that_cannot_start_write_nothing(
    repo_dir: Path, command: list[str], message: str
) -> None:
    write_program(repo_dir / "plain.sh", "#!/bin/sh\necho hi\n")

    with pytest.raises(GitExpError) as caught:
        run_core(repo_dir, *command)

    assert str(caught.value) == message
    assert_nothing_written(repo_dir)


def test_bad_interpreter_line_is_a_recorded_failure(repo_dir: Path) -> None:
    write_program(repo_dir / "broken.sh", "#!/no/such/interpreter\n", executable=True)

    result, _ = run_core(repo_dir, "./broken.sh")

    assert result.exit_status == 127
    record = note(repo_dir, result.commit)
    assert record["status"] == "failed"
    assert record["error"]["type"] == "FileNotFoundError"


def test_bare_repository_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    request = RunRequest(command=["train.py"], cwd=bare, environ=user_env())

    with pytest.raises(GitExpError) as caught:
        run_experiment(pygit2.Repository(str(bare)), request, report=lambda _line: None)

    assert str(caught.value) == (
        f"this operation needs a working tree, but {bare} is a bare repository"
    )
    assert git(bare, "for-each-ref") == ""


def test_packages_come_from_the_python_that_runs_the_program(
    repo_dir: Path, tmp_path: Path
) -> None:
    write_program(repo_dir / "train.py", "pass\n")

    result, _ = run_core(repo_dir, "train.py")

    assert result.record["python"]["executable"] == str(Path(sys.executable).parent / "python")
    assert "gitexp" in result.record["packages"]
    assert os.path.basename(result.record["command"][0]) == "train.py"


def test_text_that_is_not_unicode_is_recorded_escaped(repo_dir: Path) -> None:
    """Non-UTF-8 bytes in argv arrive as lone surrogates; orjson cannot encode them."""
    result, _ = run_core(
        repo_dir, sys.executable, "-c", "pass", "arg\udcfe", name="odd", message="bad \ud800"
    )
    record = note(repo_dir, result.commit)
    assert record["message"] == "bad \\ud800"
    assert record["command"][-1] == "arg\\udcfe"
    assert "arg\\udcfe" in git(repo_dir, "log", "-1", "--format=%B", result.commit)


def test_a_bad_argument_is_recorded_as_a_usage_error(repo_dir: Path) -> None:
    write_program(
        repo_dir / "cli.py",
        "import argparse\nargparse.ArgumentParser().parse_args()\n",
    )
    result, _ = run_core(repo_dir, "cli.py", "--dropout", "0")
    record = note(repo_dir, result.commit)
    assert (record["status"], record["exit_code"]) == ("failed", 2)
    assert record["error"]["type"] == "UsageError"
    assert record["error"]["message"] == "unrecognized arguments: --dropout 0"


def test_the_probe_answer_is_cached_in_the_common_dir_and_recorded_the_same(
    repo_dir: Path,
) -> None:
    first, _ = run_core(repo_dir, "true")
    second, _ = run_core(repo_dir, "true")

    cache = repo_dir / ".git" / "experiments" / ".cache" / "python-probe-v1"
    if not cache.exists():  # this virtualenv changed just before: nothing was safe to keep
        time.sleep(RACY_SECONDS)
        second, _ = run_core(repo_dir, "true")
    assert cache.read_bytes().startswith(b"gitexp-python-probe-cache 1 ")
    assert git(repo_dir, "status", "--porcelain", "--ignored") == ""
    for field in ("python", "packages"):
        assert first.record[field] == second.record[field] == note(repo_dir, second.commit)[field]
    assert first.record["python"]["executable"] == str(Path(sys.executable).parent / "python")
    assert "cache" not in first.record["python"]

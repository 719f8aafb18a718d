"""`git exp note`, `tag`, `rm`, `restore`: labels and marks, never losing a concurrent update."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pygit2
import pytest
from helpers_e2e import (
    assert_one_error_line,
    git_exp,
    make_messy_repo,
    note,
    repo_state,
    run_core,
    start_git_exp,
    wait_for,
    write_program,
)

from gitexp.commands.note import set_message
from gitexp.commands.rm import mark_deleted
from gitexp.commands.tag import change_tags
from gitexp.errors import InvalidNameError, UnknownRunError

QUICK = "import sys; sys.exit(0)"


@pytest.fixture
def two_runs(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> list[str]:
    first, _ = run_core(repo_dir, sys.executable, "-c", QUICK, name="train")
    second, _ = run_core(repo_dir, sys.executable, "-c", QUICK, name="train")
    capfd.readouterr()
    return [first.commit, second.commit]


def repo(path: Path) -> pygit2.Repository:
    return pygit2.Repository(str(path))


def test_message_set_append_and_clear(repo_dir: Path, two_runs: list[str]) -> None:
    set_message(repo(repo_dir), "@", "first try", os.environ)
    assert note(repo_dir, two_runs[1])["message"] == "first try"
    set_message(repo(repo_dir), "@", "loss spikes at 30", os.environ, append=True)
    record = note(repo_dir, two_runs[1])
    assert record["message"] == "first try"
    [entry] = record["annotations"]
    assert entry["text"] == "loss spikes at 30"
    assert entry["author"] == "Test User"
    assert entry["time"].startswith(time.strftime("%Y-"))
    set_message(repo(repo_dir), "@", None, os.environ)
    assert note(repo_dir, two_runs[1])["message"] is None
    assert note(repo_dir, two_runs[0])["message"] is None  # the other run is untouched


def test_tags_add_remove_keep_order_and_validate(repo_dir: Path, two_runs: list[str]) -> None:
    change_tags(repo(repo_dir), "@~1", os.environ, add=["best", "lr", "best"])
    change_tags(repo(repo_dir), "@~1", os.environ, add=["zz"], remove=["lr"])
    assert note(repo_dir, two_runs[0])["tags"] == ["best", "zz"]
    with pytest.raises(InvalidNameError, match="invalid tag 'a b'"):
        change_tags(repo(repo_dir), "@~1", os.environ, add=["a b"])
    assert note(repo_dir, two_runs[0])["tags"] == ["best", "zz"]


def test_rm_marks_and_restore_clears_all_specs_checked_first(
    repo_dir: Path, two_runs: list[str]
) -> None:
    with pytest.raises(UnknownRunError):
        mark_deleted(repo(repo_dir), ["@", "nope"], True, os.environ)
    assert note(repo_dir, two_runs[1])["deleted"] is None  # nothing written
    [change] = mark_deleted(repo(repo_dir), ["@"], True, os.environ)
    assert change.changed and change.deleted
    assert note(repo_dir, two_runs[1])["deleted"] == change.deleted
    [again] = mark_deleted(repo(repo_dir), [change.run], True, os.environ)
    assert not again.changed and again.deleted == change.deleted  # the first mark's time stays
    [restored] = mark_deleted(repo(repo_dir), [change.run], False, os.environ)
    assert restored.changed and note(repo_dir, two_runs[1])["deleted"] is None


def test_cli_note_tag_rm_restore_end_to_end(repo_dir: Path, two_runs: list[str]) -> None:
    make_messy_repo(repo_dir)
    before = repo_state(repo_dir)
    assert git_exp(repo_dir, "note", "@", "keep this").returncode == 0
    assert git_exp(repo_dir, "note", "@", "--append", "checked").returncode == 0
    shown = git_exp(repo_dir, "note", "@")
    assert shown.stdout.splitlines()[0] == "keep this"
    assert shown.stdout.splitlines()[1].endswith("Test User: checked")
    assert git_exp(repo_dir, "tag", "@", "best", "x").stdout == ""
    assert git_exp(repo_dir, "tag", "-d", "@", "x").returncode == 0
    assert git_exp(repo_dir, "tag", "@").stdout == "best\n"
    assert "[best] keep this" in git_exp(repo_dir, "log", "-t", "best").stdout
    removed = git_exp(repo_dir, "rm", "@")
    assert removed.stdout.endswith("marked deleted\n")
    assert len(git_exp(repo_dir, "log").stdout.splitlines()) == 1
    assert len(git_exp(repo_dir, "log", "--all").stdout.splitlines()) == 2
    run_id = removed.stdout.split()[0]
    assert git_exp(repo_dir, "restore", run_id).stdout == f"{run_id} restored\n"
    assert len(git_exp(repo_dir, "log").stdout.splitlines()) == 2
    assert repo_state(repo_dir) == before


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["note", "nope", "x"], "unknown run 'nope' (git exp log lists runs)"),
        (["tag", "@", "has space"], None),
        (["rm", "@~9"], "unknown run '@~9': there are only 2 runs"),
        (["note", "@", "--clear", "x"], None),
    ],
)
def test_cli_errors(repo_dir: Path, two_runs: list[str], args: list[str], expected: str) -> None:
    result = git_exp(repo_dir, *args)
    assert result.returncode != 0
    if expected:
        assert_one_error_line(result.stderr, expected)
    assert "Traceback" not in result.stderr


def test_annotations_during_a_run_survive_its_final_update(repo_dir: Path) -> None:
    """Tag and note a running run many times: neither side loses the other's writes."""
    write_program(
        repo_dir / "slow.py",
        "import gitexp, time\n"
        "for step in range(30):\n"
        "    gitexp.log(step=step, loss=1 / (step + 1))\n"
        "    time.sleep(0.02)\n",
    )
    process = start_git_exp(repo_dir, "run", "slow.py")
    wait_for(lambda: git_exp(repo_dir, "log", "--status", "running").stdout.strip())
    tags = [f"t{i}" for i in range(6)]
    for tag in tags:
        assert git_exp(repo_dir, "tag", "@", tag).returncode == 0
        assert git_exp(repo_dir, "note", "@", "--append", f"note {tag}").returncode == 0
    assert process.wait(timeout=60) == 0
    [record] = json.loads(git_exp(repo_dir, "log", "--json").stdout)
    assert record["status"] == "succeeded"
    assert record["metrics"]["loss"]["count"] == 30
    assert record["tags"] == tags
    assert [entry["text"] for entry in record["annotations"]] == [f"note {t}" for t in tags]

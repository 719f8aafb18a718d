"""`show_run` and `render_run`: naming one run and printing its whole record."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import pygit2
import pytest
from conftest import git
from helpers_e2e import note, run_core, write_program

from gitexp.cli.showtext import render_run
from gitexp.commands.run import RunResult
from gitexp.commands.show import show_run
from gitexp.errors import GitExpError, InvalidNameError, UnknownRunError

FAILING = """
import gitexp
gitexp.log(step=1, loss=0.9)
gitexp.log(step=2, loss=0.4, val_acc=0.75)
raise ValueError("bad batch 7")
"""


@pytest.fixture
def two_runs(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> tuple[RunResult, RunResult]:
    write_program(repo_dir / "train.py", FAILING)
    first, _ = run_core(repo_dir, "train.py", "--lr", "0.25", "--layers", "3", "-m", "note")
    second, _ = run_core(repo_dir, sys.executable, "-c", "pass", name="other")
    capfd.readouterr()
    return first, second


def resolve(repo_dir: Path, spec: str) -> str:
    return show_run(pygit2.Repository(str(repo_dir)), spec).id


def test_every_spec_form(repo_dir: Path, two_runs: tuple[RunResult, RunResult]) -> None:
    first, second = two_runs
    name, run_id = first.run_id.split("/")
    rand = run_id.rsplit(".", 1)[1]
    for spec in (first.ref, first.run_id, run_id, rand, f"001.{rand}", f"{name}/{rand}", "@~1"):
        assert resolve(repo_dir, spec) == first.run_id, spec
    assert resolve(repo_dir, "@") == second.run_id
    assert resolve(repo_dir, "@~0") == second.run_id


def test_unknown_and_invalid_specs(repo_dir: Path, two_runs: tuple[RunResult, RunResult]) -> None:
    repo = pygit2.Repository(str(repo_dir))
    with pytest.raises(UnknownRunError) as unknown:
        show_run(repo, "zzzzzzzz")
    assert str(unknown.value) == "unknown run 'zzzzzzzz' (git exp log lists runs)"
    with pytest.raises(UnknownRunError) as too_far:
        show_run(repo, "@~2")
    assert str(too_far.value) == "unknown run '@~2': there are only 2 runs"
    with pytest.raises(InvalidNameError, match=r"^invalid run 'a b': name a run by"):
        show_run(repo, "a b")


def test_ambiguous_spec_lists_candidates(
    repo_dir: Path, two_runs: tuple[RunResult, RunResult]
) -> None:
    first, _ = two_runs
    run_id = first.run_id.split("/")[1]
    git(repo_dir, "update-ref", f"refs/experiments/copy/{run_id}", first.commit)

    with pytest.raises(GitExpError) as caught:
        show_run(pygit2.Repository(str(repo_dir)), run_id)

    message = str(caught.value)
    assert message.startswith(f"ambiguous run '{run_id}': it matches ")
    matched = message.split(": it matches ", 1)[1].split(", ")
    assert sorted(matched) == sorted([first.run_id, f"copy/{run_id}"])


def test_text_shows_params_metrics_and_error(
    repo_dir: Path, two_runs: tuple[RunResult, RunResult]
) -> None:
    first, _ = two_runs
    run = show_run(pygit2.Repository(str(repo_dir)), first.run_id)
    text = click.unstyle("\n".join(render_run(run)))
    lines = text.splitlines()

    assert lines[0] == f"run       {first.run_id}"
    assert lines[1] == "status    failed (exit 1)"
    assert f"ref       {first.ref}" in lines
    assert "error     ValueError: bad batch 7" in lines
    assert "  lr      0.25" in lines
    assert "  layers  3" in lines
    assert "  m       note" in lines
    metric_rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  l")}
    assert metric_rows["loss"] == ["0.4", "0.4", "0.9", "2", "2"]
    assert any(line.split()[:2] == ["val_acc", "0.75"] for line in lines)
    assert "command   train.py --lr 0.25 --layers 3 -m note" in lines


def test_json_is_the_note(repo_dir: Path, two_runs: tuple[RunResult, RunResult]) -> None:
    first, _ = two_runs
    data = show_run(pygit2.Repository(str(repo_dir)), first.run_id).as_json()
    assert data == note(repo_dir, first.commit)
    assert (data["ref"], data["commit"], data["id"]) == (first.ref, first.commit, first.run_id)
    assert data["error"]["type"] == "ValueError"

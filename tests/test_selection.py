"""`select_runs`, the one run selection (log, compare, export, plot, notebook, dashboard):
filters, order, named runs, and crashed runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pygit2
import pytest
from helpers_e2e import note, repo_state, run_core

from gitexp import store
from gitexp.commands.rm import mark_deleted
from gitexp.commands.run import RunResult
from gitexp.record import dump_record
from gitexp.selection import select_runs

LOG_METRIC = "import gitexp, sys; gitexp.log(step=1, loss=0.5); sys.exit({code})"


def quick_run(repo_dir: Path, name: str, code: int = 0, tags: tuple[str, ...] = ()) -> RunResult:
    result, _ = run_core(
        repo_dir, sys.executable, "-c", LOG_METRIC.format(code=code), name=name, tags=list(tags)
    )
    return result


@pytest.fixture
def four_runs(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> list[RunResult]:
    runs = [
        quick_run(repo_dir, "train", tags=("baseline",)),
        quick_run(repo_dir, "eval", code=2),
        quick_run(repo_dir, "train", code=1, tags=("ablation", "lr")),
        quick_run(repo_dir, "train", tags=("lr",)),
    ]
    capfd.readouterr()
    return runs


def ids(runs: list[object]) -> list[str]:
    return [run.id for run in runs]  # type: ignore[attr-defined]


def test_newest_first(repo_dir: Path, four_runs: list[RunResult]) -> None:
    listed = select_runs(pygit2.Repository(str(repo_dir)))
    assert ids(listed) == [run.run_id for run in reversed(four_runs)]
    assert [run.status for run in listed] == ["succeeded", "failed", "failed", "succeeded"]
    assert [run.run_id.split(".")[1] for run in listed] == ["003", "002", "001", "001"]


def test_filters_combine(repo_dir: Path, four_runs: list[RunResult]) -> None:
    repo = pygit2.Repository(str(repo_dir))
    first, failed_eval, failed_train, last = (run.run_id for run in four_runs)
    assert ids(select_runs(repo, names=["eval"])) == [failed_eval]
    assert ids(select_runs(repo, names=["train", "eval"], limit=2)) == [last, failed_train]
    assert ids(select_runs(repo, statuses=["failed"])) == [failed_train, failed_eval]
    assert ids(select_runs(repo, tags=["lr"])) == [last, failed_train]
    assert ids(select_runs(repo, tags=["baseline", "ablation"])) == [failed_train, first]
    assert ids(select_runs(repo, names=["train"], statuses=["succeeded"], tags=["lr"])) == [last]
    assert ids(select_runs(repo, limit=0)) == []
    assert ids(select_runs(repo, names=["nothing"])) == []


def test_named_runs_come_as_named_once_each_deleted_too(
    repo_dir: Path, four_runs: list[RunResult]
) -> None:
    repo = pygit2.Repository(str(repo_dir))
    first, failed_eval, failed_train, last = (run.run_id for run in four_runs)
    mark_deleted(repo, [first], True, {})
    assert first not in ids(select_runs(repo))
    assert ids(select_runs(repo, include_deleted=True))[-1] == first
    assert ids(select_runs(repo, [first, last, first])) == [first, last]
    assert ids(select_runs(repo, [failed_eval, first, last], names=["train"])) == [first, last]
    assert ids(select_runs(repo, [failed_train, last], statuses=["failed"], limit=1)) == [
        failed_train
    ]
    assert ids(select_runs(repo, [last, failed_train], sort="status")) == [failed_train, last]


def test_json_form_has_ref_and_commit(repo_dir: Path, four_runs: list[RunResult]) -> None:
    listed = select_runs(pygit2.Repository(str(repo_dir)))
    by_id = {run.run_id: run for run in four_runs}
    for run in listed:
        data = run.as_json()
        assert data == note(repo_dir, by_id[run.id].commit)
        assert data["ref"] == by_id[run.id].ref
        assert data["commit"] == by_id[run.id].commit


def test_a_running_record_whose_supervisor_is_gone_is_crashed(
    repo_dir: Path, four_runs: list[RunResult]
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = four_runs[0]
    record = dict(target.record, status="running", ended_at=None)
    record["host"] = dict(record["host"], pid=dead.pid)
    repo = pygit2.Repository(str(repo_dir))
    signature = pygit2.Signature("Test User", "test@example.com")
    store.update_note(repo, target.commit, lambda _old: dump_record(record), signature)
    before = repo_state(repo_dir)

    crashed = select_runs(repo, statuses=["crashed"])

    assert ids(crashed) == [target.run_id]
    assert crashed[0].as_json()["status"] == "crashed"
    assert note(repo_dir, target.commit)["status"] == "running"  # shown, never written
    assert repo_state(repo_dir) == before


def test_no_runs_no_lines(repo_dir: Path) -> None:
    assert select_runs(pygit2.Repository(str(repo_dir))) == []

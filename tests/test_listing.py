"""Listing runs and resolving what users type to name one.

Runs are built the way gitexp stores them (a commit, its ref, a note), through the storage
functions, so these tests do not depend on running programs.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pygit2
import pytest
from conftest import git
from helpers import finished_record, libgit2_home, make_run, make_three_runs, started

from gitexp.listing import Run, list_runs
from gitexp.record import new_record

pytestmark = pytest.mark.usefixtures(libgit2_home.__name__)

HOST = socket.gethostname()


def open_repo(repo_dir: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_dir))


def running_record(name: str, run_id: str, host: dict[str, Any] | None) -> dict[str, Any]:
    return new_record(id=f"{name}/{run_id}", name=name, started_at=started(12), host=host)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not psutil.pid_exists(process.pid)
    return process.pid


@pytest.fixture
def three_runs(repo_dir: Path) -> pygit2.Repository:
    return make_three_runs(repo_dir)


def ids_of(runs: list[Run]) -> list[str]:
    return [run.id for run in runs]


def test_list_runs_newest_first(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    assert ids_of(runs) == [
        "train/20261120.002.zz99",
        "eval/20261120.001.ab12",
        "train/20261120.001.k3f9",
    ]
    newest = runs[0]
    assert newest.ref == "refs/experiments/train/20261120.002.zz99"
    assert newest.name == "train"
    assert newest.run_id == "20261120.002.zz99"
    assert newest.status == "succeeded"
    assert newest.record is not None and newest.record["id"] == newest.id
    assert newest.commit == git(Path(three_runs.workdir), "rev-parse", newest.ref).strip()
    data = newest.as_json()
    assert (data["id"], data["ref"], data["commit"], data["status"]) == (
        newest.id,
        newest.ref,
        newest.commit,
        "succeeded",
    )
    assert "problem" not in data


def test_list_runs_of_a_repository_without_runs(repo_dir: Path) -> None:
    assert list_runs(open_repo(repo_dir)) == []


def test_list_runs_ignores_refs_that_are_not_runs(
    repo_dir: Path, three_runs: pygit2.Repository
) -> None:
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    for ref in (
        "refs/experiments/junk",
        "refs/experiments/train/not-an-id",
        "refs/experiments/a/b/c",
        "refs/heads/20261120.003.zzzz",
    ):
        git(repo_dir, "update-ref", ref, head)
    assert len(list_runs(open_repo(repo_dir))) == 3


def test_runs_started_at_the_same_moment_keep_a_stable_order(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    for run_id in ("20261120.001.aaaa", "20261120.003.cccc", "20261120.002.bbbb"):
        make_run(repo, "train", run_id, finished_record("train", run_id, started(9)))
    assert [run.run_id for run in list_runs(repo)] == [
        "20261120.003.cccc",
        "20261120.002.bbbb",
        "20261120.001.aaaa",
    ]


def test_unreadable_record_does_not_hide_the_others(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    make_run(repo, "train", "20261120.001.good", finished_record("train", "x", started(9)))
    make_run(repo, "train", "20261120.002.bad1", b"{not json")
    make_run(repo, "train", "20261120.003.bad2", b"[1, 2, 3]\n")
    make_run(repo, "train", "20261120.004.bad3", b"\xff\xfe")
    runs = {run.run_id: run for run in list_runs(repo)}
    assert runs["20261120.001.good"].status == "succeeded"
    for run_id in ("20261120.002.bad1", "20261120.003.bad2", "20261120.004.bad3"):
        run = runs[run_id]
        assert run.status == "unreadable"
        assert run.record is None
        assert run.problem
        assert run.as_json()["status"] == "unreadable"
        assert run.as_json()["problem"] == run.problem


def test_running_on_this_host_with_a_dead_pid_is_crashed(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    host = {"hostname": HOST, "pid": dead_pid(), "pid_started_at": 1_700_000_000.0}
    make_run(repo, "train", "20261120.001.dead", running_record("train", "x", host))
    (run,) = list_runs(repo)
    assert run.status == "crashed"
    assert run.record is not None and run.record["status"] == "running"
    assert run.as_json()["status"] == "crashed"


def test_running_with_a_reused_pid_is_crashed(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    me = psutil.Process()
    reused = {"hostname": HOST, "pid": me.pid, "pid_started_at": me.create_time() - 3600}
    alive = {"hostname": HOST, "pid": me.pid, "pid_started_at": me.create_time()}
    make_run(repo, "train", "20261120.001.reus", running_record("train", "x", reused))
    make_run(repo, "train", "20261120.002.live", running_record("train", "y", alive))
    runs = {run.run_id: run.status for run in list_runs(repo)}
    assert runs == {"20261120.001.reus": "crashed", "20261120.002.live": "running"}


def test_running_on_another_host_stays_running(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    host = {"hostname": HOST + "-elsewhere", "pid": dead_pid(), "pid_started_at": 1.0}
    make_run(repo, "train", "20261120.001.away", running_record("train", "x", host))
    assert list_runs(repo)[0].status == "running"
    # Seen from that other host, the same record is checked and found dead.
    assert list_runs(repo, hostname=HOST + "-elsewhere")[0].status == "crashed"


def test_ref_without_a_note(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    make_run(repo, "train", "20261120.001.old0", None, seconds_ago=3600)
    make_run(repo, "train", "20261120.002.new0", None, seconds_ago=0)
    runs = {run.run_id: run for run in list_runs(repo)}
    assert runs["20261120.001.old0"].status == "crashed"
    assert runs["20261120.002.new0"].status == "running"
    assert runs["20261120.001.old0"].problem == "no record was written for this run"
    assert [run.run_id for run in list_runs(repo)] == ["20261120.002.new0", "20261120.001.old0"]


@pytest.mark.parametrize(
    "fields",
    [
        {"started_at": "yesterday"},
        {"started_at": 12},
        {"started_at": "0001-01-01T00:00:00"},
        {"started_at": "9999-12-31T23:59:59"},
        {"status": 7},
        {"status": None},
        {"host": "not a dict"},
        {"host": {"hostname": HOST, "pid": -5}},
        {"host": {"hostname": HOST, "pid": 0}},
        {"host": {"hostname": HOST, "pid": 2**80}},
        {"host": {"hostname": HOST, "pid": True}},
        {"host": {"hostname": HOST, "pid": "1"}},
        {"host": {"hostname": HOST, "pid": 1, "pid_started_at": "soon"}},
    ],
)
def test_odd_records_still_list(repo_dir: Path, fields: dict[str, Any]) -> None:
    repo = open_repo(repo_dir)
    make_run(repo, "train", "20261120.001.good", finished_record("train", "x", started(9)))
    odd = new_record(id="train/20261120.002.odd0", name="train", **fields)
    make_run(repo, "train", "20261120.002.odd0", json.dumps(odd).encode())  # not orjson: 2**80
    runs = {run.run_id: run for run in list_runs(repo)}
    assert runs["20261120.001.good"].status == "succeeded"
    assert isinstance(runs["20261120.002.odd0"].status, str)


def test_run_ref_pointing_at_something_else_than_a_commit(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    make_run(repo, "train", "20261120.001.good", finished_record("train", "x", started(9)))
    blob = git(repo_dir, "rev-parse", "HEAD:README").strip()
    git(repo_dir, "update-ref", "refs/experiments/train/20261120.002.blob", blob)
    git(repo_dir, "tag", "-a", "-m", "tag", "annotated")
    tag = git(repo_dir, "rev-parse", "annotated").strip()
    git(repo_dir, "update-ref", "refs/experiments/train/20261120.003.atag", tag)
    runs = {run.run_id: run for run in list_runs(repo)}
    assert runs["20261120.001.good"].status == "succeeded"
    assert len(runs) == 3

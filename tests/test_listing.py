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
from helpers import finished_record, libgit2_home, make_run, repo_state

from gitexp.errors import GitExpError, InvalidNameError, UnknownRunError
from gitexp.listing import Run, list_runs, resolve_run_spec
from gitexp.record import new_record

pytestmark = pytest.mark.usefixtures(libgit2_home.__name__)

HOST = socket.gethostname()


def open_repo(repo_dir: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_dir))


def started(hour: int) -> str:
    return f"2026-11-20T{hour:02d}:00:00.000+00:00"


def running_record(name: str, run_id: str, host: dict[str, Any] | None) -> dict[str, Any]:
    return new_record(id=f"{name}/{run_id}", name=name, started_at=started(12), host=host)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not psutil.pid_exists(process.pid)
    return process.pid


@pytest.fixture
def three_runs(repo_dir: Path) -> pygit2.Repository:
    """train/...001.k3f9 (oldest), eval/...001.ab12, train/...002.zz99 (newest)."""
    repo = open_repo(repo_dir)
    for name, run_id, hour in (
        ("train", "20261120.001.k3f9", 9),
        ("train", "20261120.002.zz99", 11),
        ("eval", "20261120.001.ab12", 10),
    ):
        make_run(repo, name, run_id, finished_record(name, run_id, started(hour)))
    return repo


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


def test_relative_specs(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    assert resolve_run_spec(runs, "@") is runs[0]
    assert resolve_run_spec(runs, "@~0") is runs[0]
    assert resolve_run_spec(runs, "@~1") is runs[1]
    assert resolve_run_spec(runs, "@~2") is runs[2]
    with pytest.raises(UnknownRunError, match=r"^unknown run '@~3': there are only 3 runs$"):
        resolve_run_spec(runs, "@~3")
    with pytest.raises(UnknownRunError, match=r"there are only 3 runs"):
        resolve_run_spec(runs, "@~99999999999999999999999")
    with pytest.raises(UnknownRunError, match=r"there are only 1 run$"):
        resolve_run_spec(runs[:1], "@~1")
    with pytest.raises(UnknownRunError, match=r"there are only 0 runs$"):
        resolve_run_spec([], "@")


def test_named_specs(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    oldest = runs[2]
    for spec in (
        "refs/experiments/train/20261120.001.k3f9",
        "train/20261120.001.k3f9",
        "20261120.001.k3f9",
        "k3f9",
        "f9",
        "001.k3f9",
        ".k3f9",
        "train/k3f9",
    ):
        assert resolve_run_spec(runs, spec) is oldest, spec
    assert resolve_run_spec(runs, "eval/20261120.001.ab12") is runs[1]
    assert resolve_run_spec(runs, "ab12") is runs[1]


def test_ambiguous_specs_list_the_candidates(three_runs: pygit2.Repository) -> None:
    runs = list_runs(three_runs)
    with pytest.raises(UnknownRunError):
        resolve_run_spec(runs, "20261120.001")  # a prefix, not a suffix: names nothing
    with pytest.raises(GitExpError) as caught:
        resolve_run_spec(runs, "9")
    assert str(caught.value) == (
        "ambiguous run '9': it matches train/20261120.002.zz99, train/20261120.001.k3f9"
    )
    with pytest.raises(GitExpError, match=r"train/20261120.002.zz99, train/20261120.001"):
        resolve_run_spec(runs, "train/9")


def test_same_id_under_two_names_is_ambiguous(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    for name in ("train", "eval"):
        make_run(repo, name, "20261120.001.same", finished_record(name, "x", started(9)))
    runs = list_runs(repo)
    with pytest.raises(GitExpError, match=r"eval/20261120.001.same"):
        resolve_run_spec(runs, "20261120.001.same")
    assert resolve_run_spec(runs, "eval/20261120.001.same").name == "eval"


def test_many_candidates_are_summarised(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    for n in range(13):
        run_id = f"20261120.{n + 1:03d}.a{n:02d}x"
        make_run(repo, "train", run_id, finished_record("train", run_id, started(n)))
    with pytest.raises(GitExpError, match=r" and 3 more$") as caught:
        resolve_run_spec(list_runs(repo), "x")
    assert str(caught.value).count("train/") == 10


@pytest.mark.parametrize(
    "spec", ["zzzz", "train/zz98", "nope/20261120.001.k3f9", "refs/heads/main", "train", "@~"]
)
def test_unknown_specs(three_runs: pygit2.Repository, spec: str) -> None:
    with pytest.raises(UnknownRunError, match=r"^unknown run '"):
        resolve_run_spec(list_runs(three_runs), spec)


@pytest.mark.parametrize(
    "spec",
    ["", "k3f9\n", "a\x00b", "\x1b[31mred", "with space", "x" * 10_000, "ab;rm", "é"],
)
def test_invalid_specs_touch_nothing(
    repo_dir: Path, three_runs: pygit2.Repository, spec: str
) -> None:
    before = repo_state(repo_dir)
    runs = list_runs(three_runs)
    with pytest.raises(InvalidNameError) as caught:
        resolve_run_spec(runs, spec)
    message = str(caught.value)
    assert message.startswith("invalid run '")
    assert len(message) < 200
    assert all(ch.isprintable() for ch in message)
    assert repo_state(repo_dir) == before


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

"""`git exp status`: runs in progress on this machine (pid, elapsed time) and crashed runs."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import click
import pygit2
import pytest
from helpers_e2e import (
    git_exp,
    invoke_main,
    note,
    repo_state,
    run_refs,
    start_git_exp,
    wait_for,
    write_program,
)
from helpers_lifecycle import alive_host, dead_host, fake_run

from gitexp.commands.status import run_status

WAITER = """
import pathlib, sys, time
release = pathlib.Path(sys.argv[1])
while not release.exists():
    time.sleep(0.02)
"""


@pytest.fixture
def repo(repo_dir: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_dir))


def test_nothing_in_progress(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = invoke_main(monkeypatch, "status")
    assert (code, out, err) == (0, "no runs in progress\n", "")
    code, out, err = invoke_main(monkeypatch, "status", "--json")
    assert code == 0
    assert json.loads(out) == {"host": socket.gethostname(), "running": [], "crashed": []}


def test_running_crashed_and_the_rest(
    repo: pygit2.Repository, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = time.time() - 125
    iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(started))
    alive, dead = alive_host(), dead_host()
    command = ["train.py", "--lr", "0.1"]
    fake_run(
        repo,
        "train",
        "20260101.001.aaaa",
        status="running",
        host=alive,
        started_at=iso,
        command=command,
    )
    fake_run(
        repo,
        "train",
        "20260101.002.bbbb",
        status="running",
        host=dead,
        started_at=iso,
        command=["crash.py"],
    )
    fake_run(
        repo, "train", "20260101.003.cccc", status="running", host=dead, started_at=iso, deleted=iso
    )
    fake_run(
        repo,
        "train",
        "20260101.004.dddd",
        status="running",
        host={"hostname": "elsewhere", "pid": 1},
    )
    fake_run(repo, "train", "20260101.005.eeee", status="succeeded", host=alive)
    before = repo_state(repo_dir)

    report = run_status(repo, now=started + 125)

    assert [(r.id, r.pid, r.command, r.elapsed_s) for r in report.running] == [
        ("train/20260101.001.aaaa", alive["pid"], command, pytest.approx(125, abs=1))
    ]
    assert [(r.id, r.pid, r.status) for r in report.crashed] == [
        ("train/20260101.002.bbbb", dead["pid"], "crashed")
    ]

    code, out, err = invoke_main(monkeypatch, "status")
    assert (code, err) == (0, "")
    lines = click.unstyle(out).splitlines()
    assert lines[0] == f"in progress on {socket.gethostname()}:"
    assert lines[1].startswith(f"  train/20260101.001.aaaa  pid {alive['pid']}  running for 2m")
    assert lines[1].endswith("  train.py --lr 0.1")
    assert lines[2] == "crashed:"
    assert lines[3].startswith(f"  train/20260101.002.bbbb  pid {dead['pid']}  started ")
    assert lines[3].endswith(f" ago on {socket.gethostname()}  crash.py")
    assert len(lines) == 4
    code, out, _ = invoke_main(monkeypatch, "status", "--json")
    data = json.loads(out)
    assert [r["id"] for r in data["running"]] == ["train/20260101.001.aaaa"]
    assert data["running"][0]["started_at"] == iso
    assert [r["id"] for r in data["crashed"]] == ["train/20260101.002.bbbb"]
    assert repo_state(repo_dir) == before


def test_end_to_end_a_real_run(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "wait.py", WAITER)
    release = tmp_path / "release"
    process = start_git_exp(repo_dir, "run", "wait.py", str(release))
    try:
        wait_for(lambda: run_refs(repo_dir) and _recorded(repo_dir))
        shown = git_exp(repo_dir, "status")
        listed = json.loads(git_exp(repo_dir, "status", "--json").stdout)
    finally:
        release.touch()
        process.communicate(timeout=30)

    assert shown.returncode == 0, shown.stderr
    (running,) = listed["running"]
    record = note(repo_dir, next(iter(run_refs(repo_dir).values())))
    assert running["id"] == record["id"]
    assert running["pid"] == record["host"]["pid"]
    assert running["command"] == ["wait.py", str(release)]
    assert 0 <= running["elapsed_s"] < 30
    assert f"  {record['id']}  pid {record['host']['pid']}  running for " in shown.stdout
    after = git_exp(repo_dir, "status")
    assert (after.returncode, after.stdout) == (0, "no runs in progress\n")


def _recorded(repo_dir: Path) -> bool:
    commit = next(iter(run_refs(repo_dir).values()))
    try:
        return note(repo_dir, commit)["status"] == "running"
    except AssertionError:
        return False

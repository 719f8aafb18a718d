"""Records from elsewhere: a path in a record is data, never where to read, pack or delete,
and a huge record costs a small multiple of its size to list and show (docs/guarantees.md).

Records are written with plain `git notes`, as a pull brings them; every command runs
through the real entry point.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pygit2
import pytest
from helpers_e2e import git_exp, user_env
from helpers_guarantees import fake_run, peak_rss

from gitexp.record import dump_record, new_record
from gitexp.web.api import metric_curves, output_tail, run_details

NAME = "train"
RUN_ID = "20261120.001.evil"
ARTIFACT = {"name": "model.pt", "path": "artifacts/model.pt", "size": 6, "sha256": None}


def finished(run_dir: str, **fields: Any) -> dict[str, Any]:
    record = new_record(
        id=f"{NAME}/{RUN_ID}",
        name=NAME,
        ref=f"refs/experiments/{NAME}/{RUN_ID}",
        status="succeeded",
        command=["train.py"],
        cwd=".",
        started_at="2026-11-20T10:00:00.000+00:00",
        ended_at="2026-11-20T10:01:00.000+00:00",
        duration_s=60.0,
        exit_code=0,
        run_dir=run_dir,
        artifacts=[ARTIFACT],
    )
    record.update(fields)
    return record


def victim_dir(path: Path) -> Path:
    """A directory that looks like a run directory, full of someone's private files."""
    (path / "artifacts").mkdir(parents=True)
    (path / "artifacts" / "model.pt").write_bytes(b"secret")
    (path / "output.log").write_text("private output\n")
    (path / "metrics.jsonl").write_text('{"step": 0, "stolen": 1}\n')
    (path / "private.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    return path


def tree_hash(path: Path) -> dict[str, str]:
    return {
        str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(path.rglob("*"))
        if file.is_file()
    }


# A directory anywhere, and one that ends in <name>/<id> as a run directory elsewhere would.
VICTIMS = ["victim", f"moved/{NAME}/{RUN_ID}"]


@pytest.mark.parametrize("where", VICTIMS)
def test_a_record_naming_another_directory_steers_no_command(
    repo_dir: Path, tmp_path: Path, where: str
) -> None:
    victim = victim_dir(tmp_path / where)
    before = tree_hash(victim)
    fake_run(repo_dir, NAME, RUN_ID, dump_record(finished(str(victim))))

    exported = git_exp(repo_dir, "export", "--all", "-o", str(tmp_path / "all.tar.gz"))
    assert exported.returncode == 0, exported.stderr
    assert "not here" in exported.stderr
    with tarfile.open(tmp_path / "all.tar.gz") as archive:
        assert not [name for name in archive.getnames() if name.startswith("rundirs/")]

    artifact = git_exp(repo_dir, "artifact", "@", "model.pt")
    assert artifact.returncode == 1 and str(victim) not in artifact.stdout
    assert "run directory is not here" in artifact.stderr

    plotted = git_exp(repo_dir, "plot", "@", "--json")
    assert plotted.returncode == 1 and "stolen" not in plotted.stdout + plotted.stderr

    notebook = subprocess.run(
        [sys.executable, "-c", "import gitexp; print(gitexp.runs()[0].run_dir)"],
        cwd=repo_dir,
        env=user_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert notebook.stdout.strip() == "None"

    repo = pygit2.Repository(str(repo_dir))
    details = run_details(repo, "@", None)
    assert details["has_output"] is False and details["has_metrics"] is False
    assert [item["file"] for item in details["artifacts"]] == [None]
    assert output_tail(repo, "@", None)["text"] == ""
    assert metric_curves(repo, ["@"], None)["runs"][0]["curves"] == {}

    assert git_exp(repo_dir, "rm", "@").returncode == 0
    collected = git_exp(repo_dir, "gc")
    assert collected.returncode == 0, collected.stderr
    assert tree_hash(victim) == before


def test_an_artifact_symlink_leaving_the_run_directory_is_outside(
    repo_dir: Path, tmp_path: Path
) -> None:
    victim = victim_dir(tmp_path / "victim")
    run_dir = repo_dir / ".git" / "experiments" / NAME / RUN_ID
    (run_dir / "artifacts").mkdir(parents=True)
    (run_dir / "artifacts" / "model.pt").symlink_to(victim / "artifacts" / "model.pt")
    fake_run(repo_dir, NAME, RUN_ID, dump_record(finished(str(run_dir))))

    shown = git_exp(repo_dir, "artifact", "@", "model.pt")

    assert shown.returncode == 1 and shown.stdout == ""
    assert "has a path outside its run directory" in shown.stderr
    listed = json.loads(git_exp(repo_dir, "artifact", "@", "--json").stdout)
    assert [(item["state"], item["file"]) for item in listed] == [("outside", None)]


HUGE_NOTE_BYTES = 100 * 1000 * 1000


@pytest.mark.slow
def test_a_huge_record_costs_a_small_multiple_of_its_size(repo_dir: Path, tmp_path: Path) -> None:
    note = dump_record(finished(str(tmp_path), message="m" * HUGE_NOTE_BYTES))
    fake_run(repo_dir, NAME, RUN_ID, note)
    bound = 5 * len(note) + 200 * 1024 * 1024

    for args in (["log"], ["log"], ["log", "--json"], ["show", "@"], ["show", "@", "--json"]):
        result, rss = peak_rss(repo_dir, *args)
        assert result.returncode == 0, result.stderr
        assert rss < bound, f"{args}: peak RSS {rss / 2**20:.0f} MiB"
        assert len(result.stdout) < 10_000  # one line about it, not the record
        assert "too large to read" in result.stdout
        assert "over exp.maxRecordSize (4.0 MiB)" in result.stdout

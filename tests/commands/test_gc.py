"""`git exp gc` removes the runs marked deleted (ref, run directory; the record stays,
marked) and nothing else."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pygit2
import pytest
from conftest import git
from helpers import make_run
from helpers_e2e import fsck, git_exp, invoke_main, repo_state, run_core, run_refs, write_program
from helpers_lifecycle import (
    alive_host,
    fake_run,
    notes_list,
    run_dirs,
    set_fields,
)

from gitexp import store
from gitexp.commands.gc import collect_garbage
from gitexp.record import new_record

DAY = 86400.0


def ago(seconds: float) -> str:
    moment = dt.datetime.now().astimezone() - dt.timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds")


def logdir(repo_dir: Path) -> Path:
    return repo_dir / ".git" / "experiments"


def make_fake(
    repo: pygit2.Repository, repo_dir: Path, suffix: str, size: int = 100, **fields: Any
) -> tuple[str, str]:
    """A run `train/20260101.<suffix>` with a run directory of `size` bytes in the logdir."""
    run_id = f"20260101.{suffix}"
    run_dir = logdir(repo_dir) / "train" / run_id
    files = {"output.log": b"o" * size, "artifacts/model.pt": b"m" * size}
    return fake_run(repo, "train", run_id, run_dir, files, **fields)


def snapshot(repo_dir: Path) -> dict[str, Any]:
    """Every ref, every note's content, every run directory, and the user's own state."""
    notes = {
        obj: git(repo_dir, "cat-file", "-p", blob) for obj, blob in notes_list(repo_dir).items()
    }
    return {
        "runs": run_refs(repo_dir),
        "notes": notes,
        "notes_ref": git(repo_dir, "rev-parse", "-q", "--verify", store.NOTES_REF, check=False),
        "dirs": run_dirs(logdir(repo_dir)),
        "user": repo_state(repo_dir),
    }


@pytest.fixture
def repo(repo_dir: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_dir))


def test_only_marked_runs_are_removed(repo: pygit2.Repository, repo_dir: Path) -> None:
    _, gone1 = make_fake(repo, repo_dir, "001.aaaa", size=1000, deleted=ago(DAY))
    _, gone2 = make_fake(repo, repo_dir, "002.bbbb", size=24, deleted=ago(60))
    _, kept = make_fake(repo, repo_dir, "003.cccc")
    make_fake(repo, repo_dir, "004.dddd", deleted=None, tags=["deleted"])
    make_run(repo, "train", "20260101.005.eeee", None)  # a ref without a record
    make_run(repo, "train", "20260101.006.ffff", b"{not json")
    before = snapshot(repo_dir)

    report = collect_garbage(repo)

    assert sorted(run.id for run in report.removed) == [
        "train/20260101.001.aaaa",
        "train/20260101.002.bbbb",
    ]
    assert report.bytes_freed == 2 * 1000 + 2 * 24
    assert (report.skipped, report.problems) == ([], [])
    after = snapshot(repo_dir)
    assert after["user"] == before["user"]
    assert after["runs"] == {
        ref: commit for ref, commit in before["runs"].items() if commit not in (gone1, gone2)
    }
    # The records stay as they were, marked: the deletion travels to other clones that way.
    assert after["notes"] == before["notes"] and after["notes_ref"] == before["notes_ref"]
    assert json.loads(after["notes"][gone1])["deleted"]
    assert after["dirs"] == [
        "train/20260101.003.cccc",
        "train/20260101.004.dddd",
    ]
    assert kept in after["notes"]
    fsck(repo_dir)


def test_dry_run_changes_nothing(repo: pygit2.Repository, repo_dir: Path) -> None:
    make_fake(repo, repo_dir, "001.aaaa", size=500, deleted=ago(DAY))
    make_fake(repo, repo_dir, "002.bbbb")
    before = snapshot(repo_dir)

    report = collect_garbage(repo, dry_run=True)

    assert [run.id for run in report.removed] == ["train/20260101.001.aaaa"]
    assert report.bytes_freed == 1000
    assert snapshot(repo_dir) == before


def test_older_than(repo: pygit2.Repository, repo_dir: Path) -> None:
    make_fake(repo, repo_dir, "001.aaaa", deleted=ago(40 * DAY))
    make_fake(repo, repo_dir, "002.bbbb", deleted=ago(2 * DAY))
    make_fake(repo, repo_dir, "003.cccc", deleted="sometime")

    report = collect_garbage(repo, older_than=30 * DAY)

    assert [run.id for run in report.removed] == ["train/20260101.001.aaaa"]
    reasons = {skip.id: skip.reason for skip in report.skipped}
    young = next(skip for skip in report.skipped if skip.id == "train/20260101.002.bbbb")
    assert young.reason == "not older than the limit"
    assert young.marked_ago_s is not None and 2 * DAY <= young.marked_ago_s < 2 * DAY + 60
    assert reasons["train/20260101.003.cccc"] == (
        "its deletion time 'sometime' cannot be read (--older-than 0 removes it)"
    )
    assert sorted(run_refs(repo_dir)) == [
        "refs/experiments/train/20260101.002.bbbb",
        "refs/experiments/train/20260101.003.cccc",
    ]
    report = collect_garbage(repo, older_than=0)
    assert sorted(run.id for run in report.removed) == [
        "train/20260101.002.bbbb",
        "train/20260101.003.cccc",
    ]
    assert run_refs(repo_dir) == {}
    assert len(notes_list(repo_dir)) == 3  # the records, marked deleted, stay
    fsck(repo_dir)


def test_a_running_run_is_skipped(repo: pygit2.Repository, repo_dir: Path) -> None:
    make_fake(repo, repo_dir, "001.aaaa", status="running", host=alive_host(), deleted=ago(DAY))
    before = snapshot(repo_dir)

    report = collect_garbage(repo)

    assert report.removed == []
    assert [(s.id, s.reason) for s in report.skipped] == [
        ("train/20260101.001.aaaa", "still running; gc removes it once it has finished")
    ]
    assert snapshot(repo_dir) == before


def test_run_directories_outside_the_logdir_are_left_alone(
    repo: pygit2.Repository, repo_dir: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "data.bin").write_bytes(b"keep me")
    name_dir = logdir(repo_dir) / "train"
    make_fake(repo, repo_dir, "002.bbbb")  # lives in name_dir: must survive
    make_run(
        repo,
        "train",
        "20260101.001.aaaa",
        new_record(name="train", run_dir=str(outside), deleted=ago(DAY), status="failed"),
    )
    make_run(
        repo,
        "train",
        "20260101.003.cccc",
        new_record(name="train", run_dir=str(name_dir), deleted=ago(DAY), status="failed"),
    )
    link = logdir(repo_dir) / "train" / "20260101.004.dddd"
    link.symlink_to(outside)
    make_run(
        repo,
        "train",
        "20260101.004.dddd",
        new_record(name="train", run_dir=str(link), deleted=ago(DAY), status="failed"),
    )

    report = collect_garbage(repo)

    assert sorted(run.id for run in report.removed) == [
        "train/20260101.001.aaaa",
        "train/20260101.003.cccc",
        "train/20260101.004.dddd",
    ]
    assert all(run.run_dir is None and run.run_dir_kept for run in report.removed)
    assert report.bytes_freed == 0
    assert (outside / "data.bin").read_bytes() == b"keep me"
    assert link.is_symlink()
    assert run_dirs(logdir(repo_dir)) == ["train/20260101.002.bbbb", "train/20260101.004.dddd"]
    assert list(run_refs(repo_dir)) == ["refs/experiments/train/20260101.002.bbbb"]


def test_a_commit_another_ref_still_names_keeps_its_note(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    _, commit = make_fake(repo, repo_dir, "001.aaaa", deleted=ago(DAY))
    git(repo_dir, "update-ref", "refs/experiments/by-hand", commit)  # not a run ref

    report = collect_garbage(repo)

    assert [run.id for run in report.removed] == ["train/20260101.001.aaaa"]
    assert run_refs(repo_dir) == {"refs/experiments/by-hand": commit}
    assert commit in notes_list(repo_dir)


def test_a_restore_after_the_listing_wins(repo: pygit2.Repository, repo_dir: Path) -> None:
    ref, commit = make_fake(repo, repo_dir, "001.aaaa", deleted=ago(DAY))
    planned = collect_garbage(repo, dry_run=True).removed
    set_fields(repo, commit, deleted=None)

    from gitexp.commands.gc import GcSkip, _delete_refs

    skipped: list[GcSkip] = []
    assert _delete_refs(repo, planned, skipped) == []
    assert [s.reason for s in skipped] == ["its deletion mark was cleared meanwhile"]
    assert ref in run_refs(repo_dir)


# --- the command line --------------------------------------------------------------------------


def test_cli_summary_json_and_errors(
    repo: pygit2.Repository, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake(repo, repo_dir, "001.aaaa", size=512 * 1024, deleted=ago(DAY))
    make_fake(repo, repo_dir, "002.bbbb", status="running", host=alive_host(), deleted=ago(DAY))

    code, out, err = invoke_main(monkeypatch, "gc", "--older-than", "30")
    assert (code, out) == (2, "")
    assert err == "error: invalid --older-than '30': use a duration (45s, 90m, 12h, 2d, 1w)\n"

    code, out, err = invoke_main(monkeypatch, "gc", "--dry-run")
    assert code == 0
    assert out == (
        "would remove train/20260101.001.aaaa (1.0 MiB)\n"
        "would remove 1 run, freeing 1.0 MiB (dry run: nothing changed)\n"
    )
    assert (
        err
        == "skipped train/20260101.002.bbbb: still running; gc removes it once it has finished\n"
    )

    code, out, err = invoke_main(monkeypatch, "gc", "--json")
    assert code == 0
    data = json.loads(out)
    assert (data["dry_run"], data["runs_removed"], data["bytes_freed"]) == (False, 1, 1048576)
    assert data["removed"][0]["id"] == "train/20260101.001.aaaa"
    assert data["removed"][0]["run_dir"] == str(logdir(repo_dir) / "train" / "20260101.001.aaaa")
    assert data["skipped"] == [
        {
            "id": "train/20260101.002.bbbb",
            "reason": "still running; gc removes it once it has finished",
        }
    ]

    code, out, err = invoke_main(monkeypatch, "gc")
    assert (code, out) == (0, "removed 0 runs, freed 0 B\n")


def test_cli_shows_how_long_ago_a_kept_run_was_marked(
    repo: pygit2.Repository, repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake(repo, repo_dir, "001.aaaa", deleted=ago(2 * DAY))
    reason = "marked deleted 48h00m ago, not older than the limit"

    code, out, err = invoke_main(monkeypatch, "gc", "--older-than", "30d")
    assert (code, out) == (0, "removed 0 runs, freed 0 B\n")
    assert err == f"skipped train/20260101.001.aaaa: {reason}\n"

    code, out, err = invoke_main(monkeypatch, "gc", "--older-than", "30d", "--json")
    assert code == 0
    assert json.loads(out)["skipped"] == [{"id": "train/20260101.001.aaaa", "reason": reason}]


def test_end_to_end_rm_then_gc(repo_dir: Path, tmp_path: Path) -> None:
    logdir_root = tmp_path / "runs"
    git(repo_dir, "config", "exp.logdir", str(logdir_root))
    write_program(repo_dir / "train.py", "import gitexp\ngitexp.log(loss=1.0)\nprint('x' * 5000)\n")
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-q", "-m", "train")
    keep, _ = run_core(repo_dir, "train.py")
    drop, _ = run_core(repo_dir, "train.py")
    drop_dir = Path(drop.record["run_dir"])
    expected = sum(f.stat().st_size for f in drop_dir.rglob("*") if f.is_file())
    before = repo_state(repo_dir)

    marked = git_exp(repo_dir, "rm", drop.run_id)
    assert marked.returncode == 0, marked.stderr
    dry = git_exp(repo_dir, "gc", "-n")
    assert dry.returncode == 0, dry.stderr
    assert drop_dir.is_dir() and drop.ref in run_refs(repo_dir)
    done = git_exp(repo_dir, "gc")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("removed 1 run, freed ")
    assert json.loads(git_exp(repo_dir, "gc", "--json").stdout)["runs_removed"] == 0
    assert expected > 5000
    assert not drop_dir.exists()
    assert Path(keep.record["run_dir"]).is_dir()
    assert run_refs(repo_dir) == {keep.ref: keep.commit}
    assert sorted(notes_list(repo_dir)) == sorted([keep.commit, drop.commit])
    assert json.loads(git(repo_dir, "notes", "--ref", "experiments", "show", keep.commit)) == (
        keep.record
    )
    dropped = json.loads(git(repo_dir, "notes", "--ref", "experiments", "show", drop.commit))
    assert dropped["deleted"] and dropped["status"] == "succeeded"
    assert repo_state(repo_dir) == before
    fsck(repo_dir)
    listed = json.loads(git_exp(repo_dir, "log", "--json").stdout)
    assert [run["id"] for run in listed] == [keep.run_id]
    assert os.listdir(logdir_root / "train") == [keep.run_id.split("/")[1]]

"""Sharing runs through a real bare remote: push, fetch, pull, and record-by-record merges."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import git
from helpers_e2e import assert_one_error_line, git_exp, repo_state, write_program
from helpers_sync import PROGRAM, make_clones

from gitexp.sync import disputed_facts, merge_records


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A bare remote and two clones of it (`a` and `b`) with one shared commit."""
    return make_clones(tmp_path, PROGRAM)


def exp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = git_exp(cwd, *args)
    assert result.returncode == 0, result.stderr
    return result


def records(cwd: Path) -> dict[str, dict]:
    return {r["id"]: r for r in json.loads(exp(cwd, "log", "--all", "--json").stdout)}


def test_push_then_pull_brings_runs_and_records(clones: tuple[Path, Path, Path]) -> None:
    remote, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "run", "-t", "x", "train.py")
    before = repo_state(b)
    assert "2 run(s) pushed" in exp(a, "push").stdout
    assert set(git(remote, "for-each-ref", "--format=%(refname)").split()) >= {
        "refs/notes/experiments",
        *(f"refs/experiments/{run}" for run in records(a)),
    }
    assert "2 new run(s), 2 record(s) added" in exp(b, "pull").stdout
    assert records(b) == records(a)
    assert repo_state(b) == before  # the user's branch, index, worktree untouched
    assert git(b, "fsck", "--no-progress") == ""
    # plain git sees the same refs and notes
    for run, record in records(a).items():
        shown = git(b, "notes", "--ref", "experiments", "show", f"refs/experiments/{run}")
        assert json.loads(shown)["id"] == record["id"]


def test_annotations_on_both_sides_all_survive(clones: tuple[Path, Path, Path]) -> None:
    _, a, b = clones
    exp(a, "run", "-m", "first", "train.py")
    exp(a, "push")
    exp(b, "pull")
    exp(a, "tag", "@", "from-a")
    exp(a, "note", "@", "--append", "seen on a")
    exp(b, "tag", "@", "from-b")
    exp(b, "note", "@", "--append", "seen on b")
    exp(b, "note", "@", "message from b")  # the newer message
    exp(a, "push")
    rejected = git_exp(b, "push")
    assert rejected.returncode == 1
    assert_one_error_line(
        rejected.stderr,
        "the remote has run records this clone does not have yet (nothing was pushed): "
        "run `git exp pull origin`, then push again",
    )
    assert "1 merged" in exp(b, "pull").stdout
    exp(b, "push")
    exp(a, "pull")
    for clone in (a, b):
        [record] = records(clone).values()
        assert record["tags"] == ["from-b", "from-a"] or record["tags"] == ["from-a", "from-b"]
        assert sorted(e["text"] for e in record["annotations"]) == ["seen on a", "seen on b"]
        assert record["message"] == "message from b"
        assert git(clone, "fsck", "--no-progress") == ""
    assert records(a) == records(b)


def test_fetch_does_not_touch_local_records(clones: tuple[Path, Path, Path]) -> None:
    _, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "push")
    exp(b, "run", "train.py")
    local_notes = git(b, "rev-parse", "refs/notes/experiments")
    assert "1 new run(s)" in exp(b, "fetch").stdout
    assert git(b, "rev-parse", "refs/notes/experiments") == local_notes
    assert git(b, "rev-parse", "refs/notes/remotes/origin/experiments").strip()
    exp(b, "pull")
    assert len(records(b)) == 2


def test_push_named_runs_only_and_unknown_remote(clones: tuple[Path, Path, Path]) -> None:
    remote, a, _ = clones
    exp(a, "run", "train.py")
    exp(a, "run", "train.py")
    exp(a, "push", "origin", "@")
    pushed = git(remote, "for-each-ref", "--format=%(refname)", "refs/experiments").split()
    assert len(pushed) == 1
    result = git_exp(a, "push", "nowhere")
    assert_one_error_line(result.stderr, "no such remote 'nowhere' (git remote -v lists them)")


def test_merge_records_rules() -> None:
    base = {"status": "running", "tags": ["a"], "annotations": [], "message": "m", "deleted": None}
    local = {**base, "tags": ["a", "l"], "message": "mine", "message_at": "2026-01-02"}
    remote = {
        **base,
        "status": "succeeded",
        "ended_at": "2026-01-03",
        "metrics": {"loss": {"last": 1}},
        "tags": ["r", "a"],
        "message_at": "2026-01-01",
        "deleted": "2026-01-04",
        "annotations": [{"time": "t1", "author": "r", "text": "x"}],
    }
    merged = merge_records(local, remote, base)
    assert merged["status"] == "succeeded" and merged["metrics"] == {"loss": {"last": 1}}
    assert merged["tags"] == ["a", "l", "r"]
    assert merged["message"] == "mine"  # newer message_at
    assert merged["deleted"] == "2026-01-04"  # only the remote changed it since the base
    assert merged["annotations"] == remote["annotations"]
    restored = merge_records({**remote, "deleted": None}, remote, remote)
    assert restored["deleted"] is None  # cleared locally since the base: the clear wins
    # A tag removed on one side since the base stays removed; one added on the other comes.
    untagged = merge_records({**base, "tags": []}, {**base, "tags": ["a", "r"]}, base)
    assert untagged["tags"] == ["r"]
    assert merge_records({**base, "tags": []}, {**base, "tags": ["a", "r"]}, None)["tags"] == [
        "a",
        "r",
    ]  # no common ancestor (an import): the union


def test_merge_records_keeps_every_fact_of_a_run_recorded_here() -> None:
    local = {
        "status": "running",
        "command": ["train.py"],
        "artifacts": [{"name": "m.pt", "sha256": "aa"}],
        "tags": [],
        "message": None,
    }
    remote = {
        **local,
        "status": "succeeded",
        "command": ["evil.py"],
        "artifacts": [{"name": "m.pt", "sha256": "bb"}, {"name": "x", "sha256": "cc"}],
        "outputs_dir": "/",
        "tags": ["t"],
        "message": "hi",
        "message_at": "2026-01-01",
    }
    merged = merge_records(local, remote, None, facts_from_local=True)
    assert {key: merged[key] for key in ("status", "command", "artifacts")} == {
        "status": "running",
        "command": ["train.py"],
        "artifacts": local["artifacts"],
    }
    assert "outputs_dir" not in merged
    assert merged["tags"] == ["t"] and merged["message"] == "hi"
    assert disputed_facts(local, remote) == ["status", "command", "artifacts", "outputs_dir"]
    assert merge_records(local, remote, None)["status"] == "succeeded"  # someone else's run


def test_a_removed_tag_stays_removed_across_clones(clones: tuple[Path, Path, Path]) -> None:
    _, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "tag", "@", "bad-seed", "good")
    exp(a, "push")
    exp(b, "pull")
    exp(b, "tag", "-d", "@", "bad-seed")
    exp(b, "push")
    exp(a, "note", "@", "--append", "looked at it")
    exp(a, "pull")
    exp(a, "push")
    exp(b, "pull")
    for clone in (a, b):
        [record] = records(clone).values()
        assert record["tags"] == ["good"]
        assert [e["text"] for e in record["annotations"]] == ["looked at it"]


def test_shared_logdir_for_runs_started_on_several_clones_at_once(
    clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Two clones (two "machines") writing run directories to one shared logdir at once."""
    from helpers_e2e import start_git_exp, user_env

    _, a, b = clones
    write_program(b / "train.py", PROGRAM)
    shared = tmp_path / "shared-logs"
    env = user_env({"GITEXP_LOGDIR": str(shared)})
    processes = [start_git_exp(clone, "run", "train.py", env=env) for clone in (a, b) * 3]
    assert [process.wait(timeout=60) for process in processes] == [0] * 6
    run_dirs = [r["run_dir"] for clone in (a, b) for r in records(clone).values()]
    assert len(set(run_dirs)) == 6
    for run_dir in run_dirs:
        assert Path(run_dir).parent.parent == shared
        assert (Path(run_dir) / "metrics.jsonl").read_text() == '{"step":1,"loss":0.5}\n'


def test_a_run_collected_here_is_not_brought_back_by_pull(clones: tuple[Path, Path, Path]) -> None:
    _, a, _ = clones
    exp(a, "run", "train.py")
    exp(a, "run", "train.py")
    exp(a, "push")
    gone = exp(a, "rm", "@").stdout.split()[0]
    exp(a, "gc")
    result = exp(a, "pull")
    assert "0 new run(s)" in result.stdout
    assert list(records(a)) == [run for run in records(a) if run != gone]
    assert gone not in git(a, "for-each-ref", "--format=%(refname)", "refs/experiments")


def test_a_run_collected_elsewhere_stays_a_marked_record_everywhere(
    clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """gc removes a run's ref and directory, not its record: the deletion travels as a mark,
    and no clone is left with a run whose record is gone."""
    remote, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "run", "train.py")
    exp(a, "push")
    exp(b, "pull")
    gone = exp(a, "rm", "@").stdout.split()[0]
    exp(a, "gc")
    assert gone not in git(a, "for-each-ref", "--format=%(refname)", "refs/experiments")
    assert "records pushed" in exp(a, "push").stdout
    assert "1 merged" in exp(b, "pull").stdout
    assert records(b)[gone]["deleted"] and records(b)[gone]["status"] == "succeeded"
    assert gone not in exp(b, "log").stdout  # hidden, as any run marked deleted
    c = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(remote), str(c))
    exp(c, "pull")
    assert records(c)[gone]["deleted"]  # the remote's ref is still there, with its record
    # Collected here too, then pulled again: not brought back, and said so.
    exp(b, "gc")
    result = exp(b, "pull")
    assert "0 new run(s)" in result.stdout and "1 collected here left out" in result.stdout
    assert gone not in records(b) and gone not in records(a)


def test_a_run_restored_elsewhere_comes_back_after_gc_here(
    clones: tuple[Path, Path, Path],
) -> None:
    _, a, b = clones
    exp(a, "run", "train.py")
    run = exp(a, "rm", "@").stdout.split()[0]
    exp(a, "push")
    exp(b, "pull")
    exp(a, "restore", run)
    exp(a, "tag", run, "important")
    exp(a, "push")
    exp(b, "gc")  # b still thinks it is deleted
    assert run not in records(b)
    assert "1 new run(s)" in exp(b, "pull").stdout  # restored there: fetched after all
    assert records(b)[run]["tags"] == ["important"] and not records(b)[run]["deleted"]


def test_a_record_pruned_by_hand_comes_back_with_its_run(
    clones: tuple[Path, Path, Path],
) -> None:
    # `git notes prune` drops the notes of commits this clone does not have (yet).
    _, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "run", "train.py")
    first = list(records(a))[-1]  # the older run
    exp(a, "push", "origin", first)  # one ref, every record
    exp(b, "pull")
    git(b, "notes", "--ref", "experiments", "prune")
    exp(a, "push")
    assert "1 new run(s), 1 record(s) added" in exp(b, "pull").stdout
    assert records(b) == records(a)


def test_a_record_removed_on_the_remote_by_hand_stays_here(
    clones: tuple[Path, Path, Path],
) -> None:
    """The remote's notes descend from ours but lack a record: no fast-forward drops it."""
    _, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "run", "train.py")
    exp(a, "push")
    exp(b, "pull")
    kept = records(b)
    commit = next(iter(kept.values()))["commit"]
    git(a, "notes", "--ref", "experiments", "remove", commit)
    exp(a, "push")
    assert "0 record(s) added, 0 merged" in exp(b, "pull").stdout
    assert records(b) == kept


def test_a_refused_push_sends_no_run_without_its_record(
    clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    remote, a, b = clones
    exp(a, "run", "train.py")
    exp(b, "run", "train.py")
    exp(b, "push")
    refused = git_exp(a, "push")
    assert refused.returncode == 1 and "nothing was pushed" in refused.stderr
    (mine,) = records(a)
    assert mine not in git(remote, "for-each-ref", "--format=%(refname)", "refs/experiments")
    exp(a, "pull")
    exp(a, "push")
    c = tmp_path / "c"
    git(tmp_path, "clone", "-q", str(remote), str(c))
    exp(c, "pull")
    assert all(record["status"] == "succeeded" for record in records(c).values())
    assert len(records(c)) == 2


def test_pull_counts_records_updated_by_a_fast_forward(clones: tuple[Path, Path, Path]) -> None:
    _, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "push")
    exp(b, "pull")
    exp(a, "tag", "@", "best")
    exp(a, "run", "train.py")
    exp(a, "push")
    assert "1 new run(s), 1 record(s) added, 1 merged" in exp(b, "pull").stdout
    assert records(b) == records(a)


def test_a_remote_without_atomic_pushes_still_gets_runs_and_records(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, a, b = clones
    git(remote, "config", "receive.advertiseAtomic", "false")
    exp(a, "run", "train.py")
    assert "1 run(s) pushed" in exp(a, "push").stdout
    assert "1 new run(s), 1 record(s) added" in exp(b, "pull").stdout
    assert records(b) == records(a)


def test_a_run_id_the_remote_holds_with_another_snapshot_is_left_out_not_blocking(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, a, b = clones
    exp(a, "run", "train.py")
    exp(a, "run", "train.py")
    exp(a, "push")
    first, second = sorted(records(a))
    commits = {run: records(a)[run]["commit"] for run in (first, second)}
    git(remote, "update-ref", f"refs/experiments/{first}", commits[second])  # by hand
    exp(a, "run", "train.py")
    result = exp(a, "push")
    assert "1 run(s) pushed" in result.stdout
    assert f"warning: {first} exists on origin with another snapshot; not pushed" in (result.stderr)
    exp(b, "pull")
    assert len(records(b)) == 3


def test_without_atomic_pushes_refused_records_still_send_no_run(
    clones: tuple[Path, Path, Path],
) -> None:
    remote, a, b = clones
    git(remote, "config", "receive.advertiseAtomic", "false")
    exp(b, "run", "train.py")
    exp(b, "push")
    exp(a, "run", "train.py")
    refused = git_exp(a, "push")
    assert refused.returncode == 1 and "nothing was pushed" in refused.stderr
    (mine,) = records(a)
    assert mine not in git(remote, "for-each-ref", "--format=%(refname)", "refs/experiments")


def test_a_remote_that_is_not_a_repository_is_one_line_saying_so(
    clones: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    _, a, _ = clones
    git(a, "remote", "add", "nowhere", str(tmp_path / "missing.git"))
    for command in ("push", "pull", "fetch"):
        result = git_exp(a, command, "nowhere")
        assert result.returncode == 1
        line = assert_one_error_line(result.stderr)
        assert "does not appear to be a git repository" in line, line

"""A collaborator with push access to the shared remote is not trusted with your runs.

Two clones and a bare remote; the remote's records are crafted with plain git (`git notes`,
`git hash-object`, `git update-ref`), the way anyone who can push could. Each test fails on
the code before issue 12.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

from conftest import git
from helpers_e2e import (
    assert_one_error_line,
    git_exp,
    note,
    only_run,
    start_git_exp,
    user_env,
    wait_for,
)
from helpers_sync import make_clones

# Waits for the file named by $GATE (when set) before it logs and ends: a run that is still
# running while the test pulls.
GATED = """\
import os, pathlib, sys, time
import gitexp
gate = os.environ.get("GATE")
while gate and not pathlib.Path(gate).exists():
    time.sleep(0.02)
print("the program starts its work", file=sys.stderr, flush=True)
gitexp.log(step=1, loss=0.5)
"""


def exp(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = git_exp(cwd, *args)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


def forge(clone: Path, commit: str, data: bytes) -> None:
    """Replace the record of `commit` in `clone` with `data` and push it, with plain git."""
    path = clone.parent / f"forged-{commit[:8]}"
    path.write_bytes(data)
    git(clone, "notes", "--ref", "experiments", "add", "-f", "-F", str(path), commit)
    git(clone, "push", "-q", "origin", "refs/notes/experiments")


def forged(record: dict[str, Any], **fields: Any) -> bytes:
    return json.dumps({**record, **fields}, indent=2).encode() + b"\n"


def test_a_remote_cannot_rewrite_the_facts_of_a_run_made_here(tmp_path: Path) -> None:
    """Only annotations merge into a run recorded here; a later `rerun` runs our command."""
    _, a, b = make_clones(tmp_path, GATED)
    exp(a, "run", "train.py", "--lr", "0.1")
    exp(a, "push")
    exp(b, "pull")
    _, commit, mine = only_run(a)
    attack = dict(
        mine,
        command=["evil.py"],
        params={"lr": 9},
        metrics={"loss": {"last": 0.0}},
        ended_at="2099-01-01T00:00:00.000+00:00",
        run_dir="/",
        tags=["from-b"],
    )
    (b / "evil.py").write_text("import pathlib\npathlib.Path('pwned').write_text('x')\n")
    forge(b, commit, forged(attack))

    pulled = exp(a, "pull", "--json")
    after = note(a, commit)
    for fact in ("command", "params", "metrics", "ended_at", "run_dir", "status", "host"):
        assert after[fact] == mine[fact], fact
    assert after["tags"] == ["from-b"]  # annotations still merge
    [kept] = json.loads(pulled.stdout)["records"]["kept_facts"]
    assert kept["run"] == mine["id"] and kept["commit"] == commit
    assert set(kept["fields"]) == {"command", "params", "metrics", "ended_at", "run_dir"}
    # Each new change of a fact is said again; facts it already said nothing new about are not.
    again = forged(attack, command=["evil2.py"], message="again", message_at="2099-01-01T00:00")
    forge(b, commit, again)
    line = exp(a, "pull").stderr.strip()
    assert line == f"warning: {mine['id']} was recorded here; kept its command (the remote differs)"
    assert note(a, commit)["message"] == "again"

    rerun = exp(a, "rerun", mine["id"])
    assert "was not recorded in this clone" not in rerun.stderr
    assert not list(tmp_path.rglob("pwned"))
    [rerun_record] = [
        note(a, c)
        for c in git(a, "for-each-ref", "--format=%(objectname)").split()
        if c != commit
        if git(a, "notes", "--ref", "experiments", "list", c, check=False).strip()
    ]
    assert rerun_record["command"] == ["train.py", "--lr", "0.1"]


def test_a_run_still_running_here_keeps_its_facts_and_its_own_final_update(
    tmp_path: Path,
) -> None:
    _, a, b = make_clones(tmp_path, GATED)
    gate = tmp_path / "go"
    process = start_git_exp(a, "run", "train.py", env=user_env({"GATE": str(gate)}))
    try:
        wait_for(lambda: git(a, "notes", "--ref", "experiments", "list").strip(), timeout=60)
        exp(a, "push")
        exp(b, "pull")
        _, commit, running = only_run(a)
        assert running["status"] == "running"
        forge(b, commit, forged(running, status="succeeded", exit_code=0, command=["x.py"]))
        assert "kept its status, command, exit_code" in exp(a, "pull").stderr
        assert note(a, commit)["status"] == "running"
        assert note(a, commit)["command"] == ["train.py"]
    finally:
        gate.touch()
        assert process.wait(timeout=60) == 0
    final = note(a, commit)
    assert final["status"] == "succeeded" and final["metrics"]["loss"]["last"] == 0.5
    assert final["command"] == ["train.py"]
    assert final["host"]["hostname"] == socket.gethostname()


def test_an_unreadable_record_never_replaces_a_readable_one(tmp_path: Path) -> None:
    """Whatever the merge base says: here, both records were unchanged since it."""
    _, a, b = make_clones(tmp_path)
    exp(a, "run", "train.py")
    exp(b, "run", "train.py")
    exp(b, "push")
    exp(a, "pull")
    exp(a, "push")
    exp(b, "pull")
    for commit in git(b, "for-each-ref", "--format=%(objectname)", "refs/experiments").split():
        forge(b, commit, b"{torn")
    before = {c: note(a, c) for c in git(a, "notes", "--ref", "experiments", "list").split()[1::2]}

    result = exp(a, "pull")

    assert {c: note(a, c) for c in before} == before
    assert result.stderr.count("is unreadable on one side; kept yours") == 2
    shown = json.loads(exp(a, "log", "--json").stdout)
    assert sorted(run["status"] for run in shown) == ["succeeded", "succeeded"]


def test_a_record_over_the_size_limit_is_left_out_with_one_line(tmp_path: Path) -> None:
    _, a, b = make_clones(tmp_path)
    git(a, "config", "exp.maxRecordSize", "64k")
    exp(b, "run", "train.py")
    exp(b, "run", "train.py")
    exp(b, "push")
    big, small = git(b, "for-each-ref", "--format=%(objectname)", "refs/experiments").split()
    forge(b, big, forged(note(b, big), message="x" * 100_000))

    result = exp(a, "pull")  # a has no records yet

    assert result.stderr == (
        f"warning: record of {big[:12]} is larger than exp.maxRecordSize; left out\n"
    )
    assert git(a, "notes", "--ref", "experiments", "show", big, check=False) == ""
    assert note(a, small) == note(b, small)
    # A record this clone has already is not replaced by an oversized one either.
    forge(b, small, forged(note(b, small), message="y" * 100_000))
    assert "larger than exp.maxRecordSize; left out" in exp(a, "pull").stderr
    assert note(a, small)["message"] is None


def test_a_remote_notes_ref_that_is_not_a_commit_is_one_error_and_blocks_no_other_remote(
    tmp_path: Path,
) -> None:
    remote, a, b = make_clones(tmp_path)
    exp(b, "run", "train.py")
    exp(b, "push")
    exp(a, "pull")
    other = tmp_path / "other.git"
    git(tmp_path, "clone", "-q", "--bare", str(remote), str(other))
    git(a, "remote", "add", "other", str(other))
    blob = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"],
        cwd=remote,
        input=b"not notes",
        capture_output=True,
        check=True,
    ).stdout.decode()
    tree = git(remote, "mktree", "--missing").strip() or git(remote, "write-tree").strip()
    tracking_before = git(a, "rev-parse", "refs/notes/remotes/origin/experiments")
    for kind, oid in (("blob", blob.strip()), ("tree", tree)):
        git(remote, "update-ref", "refs/notes/experiments", oid)
        for verb in ("pull", "fetch"):
            result = git_exp(a, verb)
            assert result.returncode == 1, result.stderr
            assert_one_error_line(
                result.stderr,
                f"origin's refs/notes/experiments is a {kind}, not a notes commit: "
                "its records were not fetched (runs were)",
            )
            assert git(a, "rev-parse", "refs/notes/remotes/origin/experiments") == tracking_before
            assert exp(a, "log", "--json").stdout
    assert "0 new run(s)" in exp(a, "pull", "other").stdout


def test_push_says_why_the_remote_refused(tmp_path: Path) -> None:
    remote, a, _ = make_clones(tmp_path)
    exp(a, "run", "train.py")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: records need a ticket number' >&2\nexit 1\n")
    hook.chmod(0o755)

    result = git_exp(a, "push")

    assert result.returncode == 1
    assert_one_error_line(
        result.stderr,
        "the remote refused the push (pre-receive hook declined: "
        "policy: records need a ticket number)",
    )
    hook.unlink()
    # fsck on the remote: a run ref at a commit with a broken author line.
    git(remote, "config", "receive.fsckObjects", "true")
    tree = git(a, "write-tree").strip()
    bad = subprocess.run(
        ["git", "hash-object", "-t", "commit", "-w", "--literally", "--stdin"],
        cwd=a,
        input=f"tree {tree}\nauthor A <a@example.com> 1 +99999\ncommitter A <a> 1 +0000\n\nx\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    git(a, "update-ref", "refs/experiments/train/20260101.001.bad0", bad)
    refused = git_exp(a, "push")
    assert refused.returncode == 1
    message = assert_one_error_line(refused.stderr)
    assert message.startswith("the remote refused the push (") and "pull" not in message
    assert "unpacker error" in message and "badTimezone" in message


def test_rerun_of_a_run_recorded_elsewhere_names_where_it_came_from(tmp_path: Path) -> None:
    _, a, b = make_clones(tmp_path, GATED)
    exp(b, "run", "train.py")
    exp(b, "push")
    exp(a, "pull")
    _, _, record = only_run(a)

    result = exp(a, "rerun", record["id"])

    lines = result.stderr.splitlines()
    origin = (
        f"gitexp: note: {record['id']} was not recorded in this clone (host "
        f"{socket.gethostname()}, user {record['host']['user']}, snapshot by B "
        "<b@example.com>); running its command: train.py"
    )
    assert origin in lines
    assert lines.index(origin) < lines.index("the program starts its work")


def test_gc_leaves_alone_a_run_directory_marked_deleted_by_someone_else(tmp_path: Path) -> None:
    _, a, b = make_clones(tmp_path)
    exp(a, "run", "train.py")
    exp(a, "push")
    exp(b, "pull")
    _, commit, record = only_run(a)
    exp(b, "rm", record["id"])
    exp(b, "push")
    exp(a, "pull")
    assert note(a, commit)["deleted"]

    result = exp(a, "gc", "--json")

    reason = (
        "marked deleted by another clone (it came with a pull), and its run directory is "
        f"here: left alone (`git exp rm {record['id']}` here collects it)"
    )
    assert json.loads(result.stdout)["skipped"] == [{"id": record["id"], "reason": reason}]
    assert os.path.isdir(record["run_dir"])
    assert f"refs/experiments/{record['id']}" in git(a, "for-each-ref")
    assert exp(a, "gc").stderr == f"skipped {record['id']}: {reason}\n"
    # Deleted here too: now it goes.
    exp(a, "rm", record["id"])
    assert "removed 1 run" in exp(a, "gc").stdout
    assert not os.path.exists(record["run_dir"])


def test_fetch_without_pull_shows_a_teammates_finished_run_as_it_ended(tmp_path: Path) -> None:
    _, a, b = make_clones(tmp_path)
    exp(a, "run", "train.py")
    exp(b, "run", "train.py")
    exp(b, "push")
    local_notes = git(a, "rev-parse", "refs/notes/experiments")

    exp(a, "fetch")

    assert git(a, "rev-parse", "refs/notes/experiments") == local_notes  # nothing merged
    _, commit, theirs = only_run(b)
    for _ in range(2):  # the listing cache must not freeze a fetched record
        [run] = [r for r in json.loads(exp(a, "log", "--json").stdout) if r["commit"] == commit]
        assert run["status"] == "succeeded" and "problem" not in run
        assert run["metrics"] == theirs["metrics"]
        line = next(x for x in exp(a, "log").stdout.splitlines() if theirs["id"] in x)
        assert "succeeded" in line and "loss" in line
    shown = exp(a, "show", theirs["id"]).stdout
    assert "succeeded" in shown and "no record" not in shown


def test_a_teammates_run_pulled_while_running_still_gets_its_end(tmp_path: Path) -> None:
    """The rule protects runs made here only: a teammate's run, tagged here while it was
    running, still takes its final state from them."""
    _, a, b = make_clones(tmp_path, GATED)
    gate = tmp_path / "go"
    process = start_git_exp(b, "run", "train.py", env=user_env({"GATE": str(gate)}))
    try:
        wait_for(lambda: git(b, "notes", "--ref", "experiments", "list").strip(), timeout=60)
        exp(b, "push")
        exp(a, "pull")
        _, commit, running = only_run(a)
        assert running["status"] == "running"
        exp(a, "tag", running["id"], "watched")
    finally:
        gate.touch()
        assert process.wait(timeout=60) == 0
    exp(b, "push")

    result = exp(a, "pull")

    assert "kept" not in result.stderr
    final = note(a, commit)
    assert final["status"] == "succeeded" and final["metrics"] == note(b, commit)["metrics"]
    assert final["tags"] == ["watched"]


def test_an_archive_cannot_rewrite_the_facts_of_a_run_made_here(tmp_path: Path) -> None:
    """`import` merges like `pull`: an archive adds annotations to a run recorded here."""
    _, a, b = make_clones(tmp_path, GATED)
    exp(a, "run", "train.py", "--lr", "0.1")
    exp(a, "push")
    exp(b, "pull")
    _, commit, mine = only_run(a)
    path = b.parent / "forged.json"
    later = "2099-01-01T00:00:00.000+00:00"  # the newer record wins a merge of other people's
    path.write_bytes(
        forged(mine, command=["evil.py"], params={"lr": 9}, ended_at=later, tags=["from-b"])
    )
    git(b, "notes", "--ref", "experiments", "add", "-f", "-F", str(path), commit)
    archive = tmp_path / "runs.tar.gz"
    exp(b, "export", "--all", "-o", str(archive))

    exp(a, "import", str(archive))
    after = note(a, commit)
    for fact in ("command", "params", "ended_at"):
        assert after[fact] == mine[fact], fact
    assert after["tags"] == ["from-b"]

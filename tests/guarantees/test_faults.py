"""Faults: a disk that fills up or turns read-only under a run, and locks left behind by a
crashed git. Each test checks the record's final state and a clean `git fsck`.

kill -9 of the supervisor, signals to the program and to gitexp, and a program that ignores
SIGTERM are proven in tests/test_e2e.py (docs/guarantees.md lists them).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pygit2
import pytest
from conftest import git
from helpers_e2e import (
    assert_one_error_line,
    fsck,
    git_exp,
    note,
    notes_ref,
    only_run,
    repo_state,
    run_core,
    run_refs,
    start_git_exp,
    user_env,
    wait_for,
    write_program,
)
from helpers_e2e import invoke_main_bytes as invoke_main
from helpers_guarantees import ext4_image, fake_run, read_only_bind, tmpfs, trigger_ext4_error

from gitexp import store
from gitexp.record import dump_record, new_record
from gitexp.rundir import read_exit_file

# 2 MiB of numbered lines to stdout (twice what the 1 MiB tmpfs holds), a metric, exit 3.
FLOOD = """
import sys, gitexp
for i in range(2048):
    sys.stdout.write(f"{i:06d} " + "x" * 1016 + "\\n")
sys.stdout.flush()
gitexp.log(step=1, loss=0.5)
gitexp.flush()
print("done", flush=True)
sys.exit(3)
"""

# Prints a line, waits for the file argv[1] to exist, prints another, logs a metric.
WAITER = """
import os, sys, time, gitexp
print("before", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
print("after", flush=True)
gitexp.log(step=1, loss=0.25)
"""


def finished_record(name: str, run_id: str, **fields: object) -> bytes:
    record = new_record(
        id=f"{name}/{run_id}",
        name=name,
        ref=f"refs/experiments/{name}/{run_id}",
        status="succeeded",
        started_at="2026-11-20T10:00:00.000+00:00",
        ended_at="2026-11-20T10:01:00.000+00:00",
        duration_s=60.0,
        exit_code=0,
        **fields,
    )
    return dump_record(record)


# --- the run directory's disk -------------------------------------------------------------


def test_a_full_disk_stops_only_the_log_and_the_record_says_so(
    repo_dir: Path, tmp_path: Path
) -> None:
    write_program(repo_dir / "flood.py", FLOOD)
    with tmpfs(tmp_path / "small", "1m") as logdir:
        env = user_env({"GITEXP_LOGDIR": str(logdir)})
        result = git_exp(repo_dir, "run", "flood.py", env=env, text=False)

        assert result.returncode == 3  # the program ended as it would have
        assert b"Traceback" not in result.stderr
        lines = result.stdout.splitlines()
        assert len(lines) == 2049 and lines[-1] == b"done"  # the terminal got everything
        _, _, record = only_run(repo_dir)
        assert record["status"] == "failed"
        assert record["exit_code"] == 3
        assert record["ended_at"] is not None
        assert any(p.startswith("output.log stopped: No space left") for p in record["problems"])
        kept = (Path(record["run_dir"]) / "output.log").read_bytes()
        assert 0 < len(kept) <= 1024 * 1024
        assert result.stdout.startswith(kept)  # what was kept is exactly the start
        # The program was told its metrics could not be written; it went on regardless.
        assert b"gitexp: cannot write metrics" in result.stderr
    shown = git_exp(repo_dir, "show", "@")
    assert shown.returncode == 0
    assert "problem   output.log stopped: No space left on device" in shown.stdout
    fsck(repo_dir)


def test_a_read_only_logdir_refuses_the_run_before_anything_is_written(
    repo_dir: Path, tmp_path: Path
) -> None:
    write_program(repo_dir / "never.py", "open('ran', 'w').write('ran')\n")
    before = repo_state(repo_dir)
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as logdir:
        result = git_exp(repo_dir, "run", "never.py", env=user_env({"GITEXP_LOGDIR": str(logdir)}))
    assert result.returncode == 1
    assert_one_error_line(result.stderr, "cannot start the run: Read-only file system")
    assert not (repo_dir / "ran").exists()
    assert run_refs(repo_dir) == {}
    assert notes_ref(repo_dir) is None
    assert repo_state(repo_dir) == before
    fsck(repo_dir)


def test_a_logdir_turning_read_only_mid_run(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "waiter.py", WAITER)
    go = tmp_path / "go"
    with ext4_image(tmp_path / "disk", tmp_path / "disk.img") as logdir:
        env = user_env({"GITEXP_LOGDIR": str(logdir)})
        process = start_git_exp(repo_dir, "run", "waiter.py", str(go), env=env)
        log = wait_for(lambda: next(logdir.glob("waiter/*/output.log"), None))
        wait_for(lambda: log.read_bytes() == b"before\n")
        trigger_ext4_error(logdir)
        go.touch()
        stdout, stderr = process.communicate(timeout=60)

        assert process.returncode == 0, stderr
        assert b"Traceback" not in stderr
        assert stdout == b"before\nafter\n"
        _, _, record = only_run(repo_dir)
        assert record["status"] == "succeeded"
        assert record["ended_at"] is not None
        assert "output.log stopped: Read-only file system" in record["problems"]
        assert log.read_bytes() == b"before\n"
    fsck(repo_dir)


# Prints progress without newlines until SIGTERM, then writes its clean-up output and exits.
GRACEFUL = """
import os, signal, sys, time
stop = False
def on_term(signum, frame):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
open(sys.argv[1], "w").write(str(os.getppid()))
i = 0
while not stop:
    i += 1
    sys.stdout.write(f"\\rstep {i}")
    sys.stdout.flush()
    time.sleep(0.01)
sys.stdout.write("\\nsaving checkpoint\\n")
print("partial line at exit", end="", file=sys.stderr, flush=True)
sys.exit(143)
"""


def test_sigterm_to_gitexp_keeps_every_byte_the_program_wrote_after_it(
    repo_dir: Path, tmp_path: Path
) -> None:
    write_program(repo_dir / "graceful.py", GRACEFUL)
    pid_file = tmp_path / "supervisor.pid"
    process = start_git_exp(repo_dir, "run", "graceful.py", str(pid_file))
    supervisor = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    wait_for(lambda: list(repo_dir.glob(".git/experiments/graceful/*/output.log")))
    log = next(repo_dir.glob(".git/experiments/graceful/*/output.log"))
    wait_for(lambda: b"step 5" in log.read_bytes())
    os.kill(supervisor, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 143
    _, _, record = only_run(repo_dir)
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.SIGTERM
    assert record["exit_code"] == 143
    logged = log.read_bytes()
    # Both streams to their end (their order in the log is the order the pipes were read).
    assert stdout.endswith(b"\nsaving checkpoint\n")
    assert b"\nsaving checkpoint\n" in logged and b"partial line at exit" in logged
    assert len(logged) == len(stdout) + len(b"partial line at exit")
    assert b"partial line at exit" in stderr
    fsck(repo_dir)


# --- stale locks ---------------------------------------------------------------------------


@pytest.fixture
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "RETRY_SECONDS", 0.3)


@pytest.mark.parametrize(
    "args",
    [
        ["note", "@", "a message"],
        ["note", "@", "--append", "an annotation"],
        ["tag", "@", "best"],
        ["rm", "@"],
        ["run", "-n", "locked", "--", sys.executable, "-c", "open('ran', 'w')"],
    ],
    ids=["note", "note-append", "tag", "rm", "run"],
)
def test_a_stale_notes_lock_is_one_error_naming_it_and_nothing_changes(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch, quick_retry: None, args: list[str]
) -> None:
    fake_run(repo_dir, "train", "20261120.001.aaaa", finished_record("train", "20261120.001.aaaa"))
    lock = repo_dir / ".git" / "refs" / "notes" / "experiments.lock"
    lock.write_text("")
    refs, notes = run_refs(repo_dir), notes_ref(repo_dir)

    code, stdout, stderr = invoke_main(monkeypatch, *args)
    assert stdout == b""

    assert code == 1
    message = assert_one_error_line(stderr.decode())
    assert str(lock) in message
    assert not (repo_dir / "ran").exists()
    assert (run_refs(repo_dir), notes_ref(repo_dir)) == (refs, notes)
    assert lock.read_text() == ""  # someone else's lock is never removed
    lock.unlink()
    fsck(repo_dir)


def test_a_notes_lock_left_when_the_run_ends_keeps_the_start_record_whole(
    repo_dir: Path, quick_retry: None
) -> None:
    lock = repo_dir / ".git" / "refs" / "notes" / "experiments.lock"
    program = f"open({str(lock)!r}, 'w').close(); print('trained'); raise SystemExit(4)"
    result, _ = run_core(repo_dir, sys.executable, "-c", program, name="locked")
    assert result.exit_status == 4
    assert result.record_error is not None and str(lock) in result.record_error
    assert "\n" not in result.record_error

    _, commit, record = only_run(repo_dir)
    assert record["status"] == "running"  # the start record, complete
    assert record["id"].startswith("locked/") and record["host"] and record["git"]
    assert (Path(record["run_dir"]) / "output.log").read_text() == "trained\n"
    # The end is kept for the next gitexp command (this process is the live supervisor).
    facts = read_exit_file(Path(record["run_dir"]))
    assert facts is not None and (facts["id"], facts["commit"]) == (record["id"], commit)
    assert facts["status"] == "failed" and facts["outcome"]["exit_code"] == 4
    lock.unlink()
    fsck(repo_dir)


def test_a_locked_run_ref_stops_gc_with_one_error_naming_it(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch, quick_retry: None
) -> None:
    run_id = "20261120.001.aaaa"
    ref, commit = fake_run(
        repo_dir, "train", run_id, finished_record("train", run_id, deleted="2026-11-21T00:00:00")
    )
    lock = repo_dir / ".git" / f"{ref}.lock"
    lock.write_text("")
    before = (run_refs(repo_dir), notes_ref(repo_dir))

    code, _, stderr = invoke_main(monkeypatch, "gc")

    assert code == 1
    assert str(lock) in assert_one_error_line(stderr.decode())
    assert (run_refs(repo_dir), notes_ref(repo_dir)) == before
    assert note(repo_dir, commit)["deleted"]
    lock.unlink()
    code, _, stderr = invoke_main(monkeypatch, "gc")
    assert code == 0, stderr
    assert run_refs(repo_dir) == {}
    fsck(repo_dir)


def test_commands_after_a_stale_lock_is_removed_work(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch, quick_retry: None
) -> None:
    _, commit = fake_run(
        repo_dir, "train", "20261120.001.aaaa", finished_record("train", "20261120.001.aaaa")
    )
    lock = repo_dir / ".git" / "refs" / "notes" / "experiments.lock"
    lock.write_text("")
    assert invoke_main(monkeypatch, "tag", "@", "x")[0] == 1
    lock.unlink()
    assert invoke_main(monkeypatch, "tag", "@", "x")[0] == 0
    assert note(repo_dir, commit)["tags"] == ["x"]
    listed = json.loads(invoke_main(monkeypatch, "log", "--json")[1])
    assert [item["tags"] for item in listed] == [["x"]]
    assert pygit2.Repository(str(repo_dir)).references.get("refs/notes/experiments")
    assert git(repo_dir, "notes", "--ref", "experiments", "list").count("\n") == 1
    fsck(repo_dir)


# --- the repository's disk -----------------------------------------------------------------

# Fills the disk the repository is on (argv[1] is a file there), then exits 3.
FILLER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"\\0" * 65536)
except OSError:
    pass
print("filled", flush=True)
sys.exit(3)
"""


def test_a_full_repository_disk_ends_the_run_truthfully_when_space_returns(
    repo_dir: Path, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "disk", "8m") as disk:
        repo = disk / "repo"
        shutil.copytree(repo_dir, repo, symlinks=True)
        write_program(repo / "filler.py", FILLER)
        git(repo, "add", "filler.py")
        git(repo, "commit", "-q", "-m", "filler")
        fill = disk / "fill"

        result = git_exp(repo, "run", "filler.py", str(fill))

        assert result.returncode == 3, result.stderr  # the program's exit status
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr
        assert "No space left on device" in errors[0] and "exit.json" in errors[0]
        _, commit, record = only_run(repo)
        assert record["status"] == "running"  # the start record: the end could not be written
        still_full = git_exp(repo, "log")  # cannot write the end yet: lists, and says crashed
        assert still_full.returncode == 0 and " crashed " in still_full.stdout, still_full

        fill.unlink()
        listed = json.loads(git_exp(repo, "log", "--json").stdout)
        assert [(run["status"], run["exit_code"]) for run in listed] == [("failed", 3)]
        record = note(repo, commit)  # written by `log`, from exit.json
        assert (record["status"], record["exit_code"], record["signal"]) == ("failed", 3, None)
        assert record["ended_at"] is not None and record["duration_s"] is not None
        assert not (Path(record["run_dir"]) / "exit.json").exists()  # its work is done
        shown = git_exp(repo, "show", "@")
        assert "status    failed (exit 3)" in shown.stdout
        fsck(repo)


# --- a read-only repository ----------------------------------------------------------------


@pytest.fixture
def read_only_repo(repo_dir: Path, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A repository with a real run, a run marked deleted, an archive and a remote, whose
    .git is then mounted read-only; yields the names the commands below use."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo_dir, "remote", "add", "origin", str(remote))
    made = git_exp(repo_dir, "run", "-n", "real", "--", sys.executable, "-c", "print(1)")
    assert made.returncode == 0, made.stderr
    deleted_id = "20261120.001.dddd"
    fake_run(repo_dir, "old", deleted_id, finished_record("old", deleted_id, deleted="2026-11-21"))
    archive = tmp_path / "runs.tar"
    assert git_exp(repo_dir, "export", "--all", "-o", str(archive)).returncode == 0
    assert git_exp(repo_dir, "push").returncode == 0
    with read_only_bind(repo_dir / ".git"):
        yield {"deleted": f"old/{deleted_id}", "archive": str(archive)}


@pytest.mark.parametrize(
    "args",
    [
        ["tag", "@", "best"],
        ["note", "@", "a message"],
        ["note", "@", "--append", "an annotation"],
        ["rm", "@"],
        ["restore", "{deleted}"],
        ["gc"],
        ["run", "-n", "more", "--", sys.executable, "-c", "open('ran', 'w')"],
        ["rerun", "@"],
        ["import", "{archive}"],
        ["pull"],
    ],
    ids=["tag", "note", "note-append", "rm", "restore", "gc", "run", "rerun", "import", "pull"],
)
def test_a_read_only_repository_refuses_every_write_with_one_line(
    repo_dir: Path, read_only_repo: dict[str, str], args: list[str]
) -> None:
    before = (repo_state(repo_dir), run_refs(repo_dir), notes_ref(repo_dir))
    result = git_exp(repo_dir, *[arg.format(**read_only_repo) for arg in args])

    assert result.returncode == 1, result.stderr
    message = assert_one_error_line(result.stderr)
    # git itself says where it could not write; gitexp's own writes say why.
    assert ("cannot lock ref" if args == ["pull"] else "Read-only file system") in message
    assert not (repo_dir / "ran").exists()
    assert (repo_state(repo_dir), run_refs(repo_dir), notes_ref(repo_dir)) == before


# --- a rerun killed with -9 ----------------------------------------------------------------

# Waits for the file argv[1] to exist (the same file for the run and its reruns).
WAIT_FOR_GO = "import os, sys, time\nwhile not os.path.exists(sys.argv[1]):\n    time.sleep(0.02)\n"


def temporary_worktrees(repo: Path) -> set[str]:
    """The paths of the linked worktrees git knows that live under the logdir."""
    listed = git(repo, "worktree", "list", "--porcelain").splitlines()
    paths = {line[len("worktree ") :] for line in listed if line.startswith("worktree ")}
    return {path for path in paths if "/.worktrees/rerun-" in path}


def start_rerun(repo: Path, run_id: str) -> tuple[subprocess.Popen[bytes], psutil.Process, str]:
    """`git exp rerun run_id`, its gitexp process, and the worktree it made."""
    before = temporary_worktrees(repo)
    process = start_git_exp(repo, "rerun", run_id)
    made = wait_for(lambda: temporary_worktrees(repo) - before, timeout=30)
    git_process = psutil.Process(process.pid)
    gitexp = next(p for p in git_process.children() if "git-exp" in " ".join(p.cmdline()))
    return process, gitexp, made.pop()


def running_script(parent: psutil.Process, script: str) -> psutil.Process | None:
    """The child of `parent` running `script`, once it has started."""
    for child in parent.children():
        try:
            if script in " ".join(child.cmdline()):
                return child
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.mark.parametrize("pruner", ["gc", "rerun"])
def test_the_worktree_of_a_killed_rerun_is_pruned_by_the_next_rerun_or_gc(
    repo_dir: Path, tmp_path: Path, pruner: str
) -> None:
    go = tmp_path / "go"
    write_program(repo_dir / "wait.py", WAIT_FOR_GO)
    git(repo_dir, "add", "wait.py")
    git(repo_dir, "commit", "-q", "-m", "wait")
    go.touch()
    assert git_exp(repo_dir, "run", "wait.py", str(go)).returncode == 0
    run_id = only_run(repo_dir)[2]["id"]
    # A user's own worktrees, one of them locked: never gitexp's to prune.
    git(repo_dir, "worktree", "add", "-q", "--detach", str(tmp_path / "mine"))
    git(repo_dir, "worktree", "add", "-q", "--detach", str(tmp_path / "locked"))
    git(repo_dir, "worktree", "lock", "--reason", "pid 1 started 0", str(tmp_path / "locked"))
    go.unlink()

    live, _, in_use = start_rerun(repo_dir, run_id)  # a rerun still going: left alone
    killed, gitexp, abandoned = start_rerun(repo_dir, run_id)
    program = wait_for(lambda: running_script(gitexp, "wait.py"), timeout=30)
    gitexp.kill()  # kill -9: no clean-up runs
    killed.communicate(timeout=30)
    program.kill()
    psutil.wait_procs([program], timeout=30)
    assert Path(abandoned).is_dir() and abandoned in temporary_worktrees(repo_dir)

    if pruner == "gc":
        result = git_exp(repo_dir, "gc")
        assert result.returncode == 0, result.stderr
    else:
        third = start_git_exp(repo_dir, "rerun", run_id)
        wait_for(lambda: abandoned not in temporary_worktrees(repo_dir), timeout=30)
    assert not Path(abandoned).exists()
    assert abandoned not in temporary_worktrees(repo_dir)
    assert in_use in temporary_worktrees(repo_dir) and Path(in_use).is_dir()
    assert (tmp_path / "mine").is_dir() and (tmp_path / "locked").is_dir()
    go.touch()
    assert live.wait(timeout=60) == 0
    if pruner == "rerun":
        assert third.wait(timeout=60) == 0
    assert temporary_worktrees(repo_dir) == set()
    assert len(git(repo_dir, "worktree", "list").splitlines()) == 3  # main, mine, locked
    fsck(repo_dir)


# --- a checkout that cannot finish ---------------------------------------------------------


def hash_object(repo: Path, data: bytes, kind: str = "blob") -> str:
    result = subprocess.run(
        ["git", "hash-object", "-w", "--literally", "-t", kind, "--stdin"],
        cwd=repo,
        input=data,
        capture_output=True,
        check=True,
    )
    return result.stdout.decode().strip()


def tree_bytes(*entries: tuple[str, str, str]) -> bytes:
    """A raw tree object of (mode, name, hex id) entries, in the order given."""
    return b"".join(
        f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid) for mode, name, oid in entries
    )


@pytest.mark.parametrize("flaw", ["duplicate", "dot-git", "missing"])
@pytest.mark.parametrize("force", [False, True], ids=["safe", "force"])
def test_a_checkout_of_a_malformed_tree_leaves_the_working_tree_as_it_was(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch, flaw: str, force: bool
) -> None:
    (repo_dir / "notes.txt").write_text("mine, untracked\n")
    changed = hash_object(repo_dir, b"changed by the snapshot\n")
    new_file = hash_object(repo_dir, b"new in the snapshot\n")
    last = {
        "duplicate": ("100644", "zz", new_file),
        "dot-git": ("100644", ".git", new_file),
        "missing": ("100644", "zz", "1" * 40),
    }[flaw]
    entries = [("100644", "README", changed), ("100644", "added", new_file), last]
    if flaw == "duplicate":
        entries.append(last)
    subtree = hash_object(repo_dir, tree_bytes(*entries), "tree")
    tree = hash_object(
        repo_dir, tree_bytes(("100644", "README", changed), ("40000", "sub", subtree)), "tree"
    )
    commit = git(repo_dir, "commit-tree", tree, "-p", "HEAD", "-m", "exp: bad").strip()
    run_id = "20261120.001.bbbb"
    git(repo_dir, "update-ref", f"refs/experiments/bad/{run_id}", commit)
    record = finished_record("bad", run_id, commit=commit)
    git(repo_dir, "notes", "--ref", "experiments", "add", "-m", record.decode(), commit)
    before = repo_state(repo_dir)

    code, _, stderr = invoke_main(monkeypatch, "checkout", *(["--force"] if force else []), run_id)

    assert code == 1, stderr
    message = assert_one_error_line(stderr.decode())
    assert message.startswith(f"cannot check out bad/{run_id}: its snapshot has ")
    assert repo_state(repo_dir) == before

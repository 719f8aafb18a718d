"""End to end: the installed `git-exp` on PATH, called through the real git as a user would."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shutil
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import git
from helpers_e2e import (
    BIN_DIR,
    IDENTITY_VARIABLES,
    add_all_tree,
    assert_one_error_line,
    copy_example,
    fsck,
    git_exp,
    ls_tree,
    make_messy_repo,
    note,
    notes_ref,
    only_run,
    read_json_file,
    repo_state,
    run_refs,
    start_git_exp,
    user_env,
    wait_for,
    write_program,
)

# Reports its pid, its parent's (the supervising `git-exp`) and the run directory to
# argv[1], counts the SIGINTs it gets, writes the count to argv[2] once no more can come
# (gitexp's duplicate window is 1 s), and exits 130.
SIGNAL_COUNTER = """
import json, os, signal, sys, time
count = 0
def on_sigint(signum, frame):
    global count
    count += 1
signal.signal(signal.SIGINT, on_sigint)
info = {"pid": os.getpid(), "ppid": os.getppid(), "run_dir": os.environ["GITEXP_RUN_DIR"]}
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(info, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
deadline = time.monotonic() + 20
while not count and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(1.5)
with open(sys.argv[2], "w") as f:
    f.write(str(count))
sys.exit(130)
"""

# Prints a line, reports like SIGNAL_COUNTER, then sleeps (argv[2] seconds) with SIGTERM
# handled as argv[3] says: "default" or "ignore".
SLEEPER = """
import json, os, signal, sys, time
if sys.argv[3] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("partial output before the wait", flush=True)
info = {"pid": os.getpid(), "ppid": os.getppid(), "run_dir": os.environ["GITEXP_RUN_DIR"]}
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(info, f)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(float(sys.argv[2]))
"""

ARGV_PRINTER = "import json, os, sys\nprint(json.dumps([os.getcwd(), *sys.argv[1:]]))\n"


def commit_all(repo: Path, message: str = "work") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


def supervisor_of(info: dict[str, Any]) -> int:
    """The pid of the `git-exp` process supervising the program that wrote `info`."""
    supervisor = psutil.Process(info["ppid"])
    assert any("git-exp" in part for part in supervisor.cmdline()), supervisor.cmdline()
    return int(info["ppid"])


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    def gone() -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, timeout)


# --- the user's repository is never touched ------------------------------------------------


def test_run_log_show_leave_the_repository_alone(repo_dir: Path, tmp_path: Path) -> None:
    make_messy_repo(repo_dir)
    head = git(repo_dir, "rev-parse", "HEAD").strip()
    oracle = add_all_tree(repo_dir, tmp_path / "oracle")
    before = repo_state(repo_dir)

    run = git_exp(repo_dir, "run", "noop.py", "--lr", "0.1")
    assert run.returncode == 0, run.stderr
    assert repo_state(repo_dir) == before
    for args in (["log"], ["log", "--json"], ["show", "@"], ["show", "--json", "@"]):
        result = git_exp(repo_dir, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert repo_state(repo_dir) == before, args

    _, commit, record = only_run(repo_dir)
    assert ls_tree(repo_dir, commit) == ls_tree(repo_dir, oracle)
    assert git(repo_dir, "rev-parse", f"{commit}^@").split() == [head]
    assert git(repo_dir, "stash", "list") != ""
    assert record["status"] == "succeeded"
    assert record["params"] == {"lr": 0.1}
    assert json.loads(git_exp(repo_dir, "show", "--json", "@").stdout) == record
    fsck(repo_dir)


def test_sixteen_runs_at_once(repo_dir: Path) -> None:
    write_program(
        repo_dir / "count.py",
        "import gitexp, os\ngitexp.log(step=1, value=1.5, pid=os.getpid())\n",
    )
    commit_all(repo_dir)
    env = user_env()

    processes = [start_git_exp(repo_dir, "run", "count.py", env=env) for _ in range(16)]
    outcomes = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0] * 16, outcomes
    refs = run_refs(repo_dir)
    assert len(refs) == 16
    records = [note(repo_dir, commit) for commit in refs.values()]
    assert sorted(record["ref"] for record in records) == sorted(refs)
    assert {record["status"] for record in records} == {"succeeded"}
    assert all(record["metrics"]["value"]["last"] == 1.5 for record in records)
    assert len({record["metrics"]["pid"]["last"] for record in records}) == 16
    assert len({record["id"] for record in records}) == 16
    counts = sorted(record["id"].split(".")[1] for record in records)
    assert counts == [f"{n:03d}" for n in range(1, 17)]
    listed = json.loads(git_exp(repo_dir, "log", "--json").stdout)
    assert sorted(item["id"] for item in listed) == sorted(record["id"] for record in records)
    fsck(repo_dir)


# --- the shipped examples ------------------------------------------------------------------


def test_train_logreg_example(repo_dir: Path) -> None:
    copy_example(repo_dir, "train_logreg.py")
    commit_all(repo_dir)
    args = ("run", "train_logreg.py", "--lr", "0.5", "--epochs", "3", "--n", "200")

    first = git_exp(repo_dir, *args, text=False)

    assert first.returncode == 0, first.stderr
    _, _, record = only_run(repo_dir)
    assert record["status"] == "succeeded"
    assert record["params"] == {
        "lr": 0.5,
        "epochs": 3,
        "n": 200,
        "seed": 0,
        "dim": 8,
        "out": "checkpoints",
    }
    assert set(record["metrics"]) == {"train_loss", "val_loss", "val_acc"}
    for summary in record["metrics"].values():
        assert (summary["count"], summary["step"]) == (3, 3)
        assert summary["min"] <= summary["last"] <= summary["max"]
    assert record["git"]["untracked"] == []
    assert "gitexp" in record["packages"]
    log = (Path(record["run_dir"]) / "output.log").read_bytes()
    assert b"\repoch 1 [" in log
    assert first.stdout.count(b"\r") == log.count(b"\r") > 3
    assert log == first.stdout + first.stderr.splitlines(keepends=True)[1]
    assert first.stderr.splitlines()[1].startswith(b"best val_acc=")

    second = git_exp(repo_dir, *args)
    assert second.returncode == 0, second.stderr
    records = sorted(
        (note(repo_dir, commit) for commit in run_refs(repo_dir).values()),
        key=lambda r: r["id"],
    )
    later = records[1]
    assert later["git"]["untracked"] == ["checkpoints/best.json", "checkpoints/last.json"]
    files = [line.split("\t")[1] for line in ls_tree(repo_dir, later["commit"])]
    assert {"checkpoints/best.json", "checkpoints/last.json"} <= set(files)
    assert git(repo_dir, "status", "--porcelain").splitlines() == ["?? checkpoints/"]


def test_crash_midway_example(repo_dir: Path) -> None:
    copy_example(repo_dir, "crash_midway.py")
    commit_all(repo_dir)

    result = git_exp(repo_dir, "run", "crash_midway.py", "--fail-at", "3")

    assert result.returncode == 1
    _, _, record = only_run(repo_dir)
    assert record["status"] == "failed"
    assert (record["exit_code"], record["signal"]) == (1, None)
    assert record["error"]["type"] == "RuntimeError"
    assert record["error"]["message"] == "CUDA out of memory (simulated) at epoch 3"
    assert record["metrics"]["loss"]["count"] == 3
    assert record["metrics"]["loss"]["last"] == pytest.approx(1 / 3)
    assert record["params"] == {"fail_at": 3}
    log = (Path(record["run_dir"]) / "output.log").read_text()
    assert "epoch 2 loss=0.500\n" in log
    assert "Traceback (most recent call last):" in log
    assert "RuntimeError: CUDA out of memory (simulated) at epoch 3" in log
    assert "Traceback (most recent call last):" in result.stderr
    last_line = result.stderr.splitlines()[-1]
    assert last_line.startswith(f"gitexp: {record['id']} failed in ")
    assert last_line.endswith("RuntimeError: CUDA out of memory (simulated) at epoch 3")
    show = git_exp(repo_dir, "show", "@")
    assert "error     RuntimeError: CUDA out of memory (simulated) at epoch 3" in show.stdout


def test_shell_example_reports_through_the_metrics_file(repo_dir: Path, tmp_path: Path) -> None:
    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip("no system python3 to tell apart from the test environment's")
    other_bin = tmp_path / "other-bin"
    other_bin.mkdir()
    (other_bin / "python").symlink_to(system_python)
    copy_example(repo_dir, "train.sh")
    commit_all(repo_dir)
    env = user_env(path_first=[other_bin])

    result = git_exp(repo_dir, "run", "./train.sh", "4", env=env)

    assert result.returncode == 0, result.stderr
    assert "step 4 loss 0.2500" in result.stdout
    _, _, record = only_run(repo_dir)
    assert record["name"] == "train"
    assert record["status"] == "succeeded"
    assert record["metrics"]["loss"] == {
        "last": 0.25,
        "min": 0.25,
        "max": 1.0,
        "count": 4,
        "step": 4,
    }
    # The packages are those of the `python` on PATH, not of the Python running gitexp.
    probed = subprocess.run(
        [str(other_bin / "python"), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert record["python"]["version"] == probed
    assert record["python"]["executable"] != str(BIN_DIR / "python")
    assert "gitexp" not in record["packages"]


# --- exit statuses and signals -------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "status", "exit_code", "signum"),
    [
        ("import sys\nsys.exit(3)\n", 3, 3, None),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 137, None, 9),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", 139, None, 11),
    ],
)
def test_exit_status_passes_through(
    repo_dir: Path, source: str, status: int, exit_code: int | None, signum: int | None
) -> None:
    write_program(repo_dir / "prog.py", source)

    result = git_exp(repo_dir, "run", "prog.py")

    assert result.returncode == status, result.stderr
    _, _, record = only_run(repo_dir)
    assert record["status"] == "failed"
    assert (record["exit_code"], record["signal"]) == (exit_code, signum)


def test_sigint_to_the_supervisor_reaches_the_program_once(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "counter.py", SIGNAL_COUNTER)
    info_file, count_file = tmp_path / "info.json", tmp_path / "count"
    process = start_git_exp(repo_dir, "run", "counter.py", str(info_file), str(count_file))

    info = wait_for(lambda: read_json_file(info_file))
    os.kill(supervisor_of(info), signal.SIGINT)
    process.communicate(timeout=30)

    assert count_file.read_text() == "1"
    assert process.returncode == 130
    _, _, record = only_run(repo_dir)
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.SIGINT
    assert record["exit_code"] == 130
    shown = git_exp(repo_dir, "show", "@").stdout.splitlines()
    assert shown[1] == "status    interrupted (by SIGINT, exit 130)"


def test_ctrl_c_at_a_terminal_is_one_interrupt(repo_dir: Path, tmp_path: Path) -> None:
    """The terminal signals the whole group and git forwards it again: one SIGINT arrives."""
    write_program(repo_dir / "counter.py", SIGNAL_COUNTER)
    info_file, count_file = tmp_path / "info.json", tmp_path / "count"
    master, slave = pty.openpty()

    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        ["git", "exp", "run", "counter.py", str(info_file), str(count_file)],
        cwd=repo_dir,
        env=user_env(),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_terminal,
    )
    os.close(slave)
    received = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for(lambda: read_json_file(info_file))
        os.write(master, b"\x03")
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(5)
        os.close(master)

    assert count_file.read_text() == "1", bytes(received)
    _, _, record = only_run(repo_dir)
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.SIGINT


def test_sigterm_is_forwarded(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "sleeper.py", SLEEPER)
    info_file = tmp_path / "info.json"
    process = start_git_exp(repo_dir, "run", "sleeper.py", str(info_file), "20", "default")

    info = wait_for(lambda: read_json_file(info_file))
    os.kill(supervisor_of(info), signal.SIGTERM)
    process.communicate(timeout=30)

    assert process.returncode == 128 + signal.SIGTERM
    _, _, record = only_run(repo_dir)
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.SIGTERM
    assert (record["exit_code"], record["signal"]) == (None, signal.SIGTERM)
    assert record["duration_s"] < 10
    shown = git_exp(repo_dir, "show", "@").stdout.splitlines()
    assert shown[1] == "status    interrupted (by SIGTERM, signal 15)"


def test_a_program_ignoring_sigterm_is_killed_after_the_grace(
    repo_dir: Path, tmp_path: Path
) -> None:
    git(repo_dir, "config", "exp.killGrace", "1")
    write_program(repo_dir / "sleeper.py", SLEEPER)
    info_file = tmp_path / "info.json"
    process = start_git_exp(repo_dir, "run", "sleeper.py", str(info_file), "20", "ignore")

    info = wait_for(lambda: read_json_file(info_file))
    sent = time.monotonic()
    os.kill(supervisor_of(info), signal.SIGTERM)
    process.communicate(timeout=30)
    waited = time.monotonic() - sent

    assert 0.9 <= waited < 8
    assert process.returncode == 128 + signal.SIGKILL
    _, _, record = only_run(repo_dir)
    assert record["status"] == "interrupted"
    assert record["interrupted_by"] == signal.SIGTERM
    assert record["signal"] == signal.SIGKILL
    shown = git_exp(repo_dir, "show", "@").stdout.splitlines()
    assert shown[1] == "status    interrupted (by SIGTERM, signal 9)"


def test_a_killed_supervisor_leaves_a_crashed_run(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "sleeper.py", SLEEPER)
    write_program(repo_dir / "ok.py", "print('fine')\n")
    info_file = tmp_path / "info.json"
    process = start_git_exp(repo_dir, "run", "sleeper.py", str(info_file), "30", "default")
    info = wait_for(lambda: read_json_file(info_file))
    output_log = Path(info["run_dir"]) / "output.log"
    wait_for(lambda: output_log.exists() and b"partial output" in output_log.read_bytes())
    assert json.loads(git_exp(repo_dir, "log", "--json").stdout)[0]["status"] == "running"

    os.kill(supervisor_of(info), signal.SIGKILL)
    process.communicate(timeout=30)
    os.kill(info["pid"], signal.SIGKILL)
    wait_gone(info["pid"])

    ref, _, record = only_run(repo_dir)
    assert record["status"] == "running"  # the record itself is never rewritten by readers
    listed = json.loads(git_exp(repo_dir, "log", "--json").stdout)
    assert [(item["ref"], item["status"]) for item in listed] == [(ref, "crashed")]
    assert json.loads(git_exp(repo_dir, "show", "--json", "@").stdout)["status"] == "crashed"
    shown = git_exp(repo_dir, "show", "@").stdout.splitlines()
    assert shown[1] == "status    crashed (its supervising process is gone)"
    crashed_only = git_exp(repo_dir, "log", "--status", "crashed").stdout.splitlines()
    assert [line.split()[0] for line in crashed_only] == [record["id"]]
    assert output_log.read_text() == "partial output before the wait\n"

    later = git_exp(repo_dir, "run", "ok.py")
    assert later.returncode == 0, later.stderr
    statuses = [item["status"] for item in json.loads(git_exp(repo_dir, "log", "--json").stdout)]
    assert statuses == ["succeeded", "crashed"]
    fsck(repo_dir)


# --- output --------------------------------------------------------------------------------


def test_stdout_and_stderr_reach_the_terminal_and_the_log(repo_dir: Path) -> None:
    write_program(
        repo_dir / "both.py",
        """
        import os, sys, time
        os.write(1, b"half of a std")
        time.sleep(0.2)
        print("to stderr", file=sys.stderr, flush=True)
        time.sleep(0.2)
        os.write(1, b"out line\\n")
        """,
    )

    result = git_exp(repo_dir, "run", "both.py")

    assert result.returncode == 0
    assert result.stdout == "half of a stdout line\n"
    lines = result.stderr.splitlines()
    assert lines[0].startswith("gitexp: ") and lines[0].endswith(")")
    assert lines[1] == "to stderr"
    assert lines[2].startswith("gitexp: ")
    _, _, record = only_run(repo_dir)
    log = (Path(record["run_dir"]) / "output.log").read_text()
    assert log == "to stderr\nhalf of a stdout line\n"


def test_carriage_returns_and_raw_bytes_are_kept_exactly(repo_dir: Path) -> None:
    write_program(
        repo_dir / "progress.py",
        """
        import os, time
        for i in range(1, 4):
            os.write(1, b"\\rtraining [%s%s] %d/3" % (b"#" * i, b"." * (3 - i), i))
            time.sleep(0.02)
        os.write(1, b"\\r\\n\\xff\\xfe not utf-8 \\x1b[1mbold\\x1b[0m\\r\\n")
        """,
    )
    expected = (
        b"\rtraining [#..] 1/3\rtraining [##.] 2/3\rtraining [###] 3/3"
        b"\r\n\xff\xfe not utf-8 \x1b[1mbold\x1b[0m\r\n"
    )

    result = git_exp(repo_dir, "run", "progress.py", text=False)

    assert result.returncode == 0
    assert result.stdout == expected
    _, _, record = only_run(repo_dir)
    assert (Path(record["run_dir"]) / "output.log").read_bytes() == expected


def test_a_closed_stdout_does_not_stop_the_recording(repo_dir: Path) -> None:
    write_program(
        repo_dir / "chatty.py",
        """
        import time
        print("first line", flush=True)
        time.sleep(0.3)
        for i in range(2000):
            print(f"line {i}", flush=True)
        """,
    )
    process = start_git_exp(repo_dir, "run", "chatty.py")
    assert process.stdout is not None
    assert process.stdout.read(10) == b"first line"
    process.stdout.close()  # what `| head -c 10` does
    _, stderr = process.communicate(timeout=60)

    assert process.returncode == 0, stderr
    _, _, record = only_run(repo_dir)
    assert record["status"] == "succeeded"
    log = (Path(record["run_dir"]) / "output.log").read_text().splitlines()
    assert log == ["first line", *(f"line {i}" for i in range(2000))]


# --- what PROGRAM can be -------------------------------------------------------------------


def test_program_forms(repo_dir: Path, tmp_path: Path) -> None:
    write_program(repo_dir / "sub" / "train.py", ARGV_PRINTER)
    write_program(repo_dir / "top.py", ARGV_PRINTER)
    write_program(repo_dir / "script.sh", '#!/bin/sh\necho "sh:$*"\n', executable=True)
    write_program(repo_dir / "pkg" / "__init__.py", "")
    write_program(repo_dir / "pkg" / "train.py", ARGV_PRINTER)
    tools = tmp_path / "tools"
    write_program(tools / "mytool", '#!/bin/sh\necho "tool:$*"\n', executable=True)
    env = user_env(path_first=[tools])
    sub = repo_dir / "sub"

    def run(cwd: Path, *args: str) -> tuple[str, dict[str, Any]]:
        result = git_exp(cwd, "run", *args, env=env)
        assert result.returncode == 0, result.stderr
        run_id = result.stderr.splitlines()[0].split()[1]
        return result.stdout, json.loads(git_exp(repo_dir, "show", "--json", run_id).stdout)

    out, record = run(sub, "train.py", "--lr", "0.1")
    assert json.loads(out) == [str(sub), "--lr", "0.1"]
    assert (record["name"], record["cwd"], record["params"]) == ("train", "sub", {"lr": 0.1})

    out, record = run(sub, "../top.py")
    assert json.loads(out) == [str(sub)]
    assert (record["name"], record["cwd"]) == ("top", "sub")

    out, record = run(repo_dir, "./script.sh", "--k", "2")
    assert out == "sh:--k 2\n"
    assert (record["name"], record["params"]) == ("script", {"k": 2})

    out, record = run(sub, "mytool", "x=1")
    assert out == "tool:x=1\n"
    assert (record["name"], record["cwd"], record["params"]) == ("mytool", "sub", {"x": 1})

    out, record = run(repo_dir, "python", "-m", "pkg.train", "--lr", "2")
    assert json.loads(out) == [str(repo_dir), "--lr", "2"]
    assert (record["name"], record["params"]) == ("train", {"lr": 2})
    assert record["command"] == ["python", "-m", "pkg.train", "--lr", "2"]

    out, record = run(repo_dir, "--", "top.py", "-n", "5", "--help", "-t", "x")
    assert json.loads(out) == [str(repo_dir), "-n", "5", "--help", "-t", "x"]
    assert (record["name"], record["tags"]) == ("top", [])

    out, record = run(repo_dir, "top.py", "-n", "5", "--help")
    assert json.loads(out) == [str(repo_dir), "-n", "5", "--help"]
    assert record["name"] == "top"

    out, record = run(
        repo_dir,
        *("-n", "base", "-m", "lower lr", "-t", "a", "--tag", "b", "-t", "a", "top.py"),
        *("--lr", "0.01", "--epochs=3", "--amp", "--opt", "adam", "seed=7"),
    )
    assert record["name"] == "base"
    assert record["message"] == "lower lr"
    assert record["tags"] == ["a", "b"]
    assert record["params"] == {"lr": 0.01, "epochs": 3, "amp": True, "opt": "adam", "seed": 7}
    assert [type(value) for value in record["params"].values()] == [float, int, bool, str, int]
    tagged = json.loads(git_exp(repo_dir, "log", "--json", "--tag", "b").stdout)
    assert [item["id"] for item in tagged] == [record["id"]]


def test_no_identity_configured_anywhere(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"
    home.mkdir()
    repo = tmp_path / "anon"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    write_program(repo / "train.py", "print('ok')\n")
    env = user_env({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    for name in IDENTITY_VARIABLES:
        env.pop(name, None)
    for key in ("user.name", "user.email"):
        lookup = ["git", "config", key]
        assert subprocess.run(lookup, cwd=repo, env=env, check=False).returncode == 1

    result = git_exp(repo, "run", "train.py", env=env)

    assert result.returncode == 0, result.stderr
    _, commit, record = only_run(repo)
    assert record["status"] == "succeeded"
    who = git(repo, "log", "-1", "--format=%an <%ae>", commit).strip()
    assert who == "gitexp <gitexp@localhost>"


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "missing.py"], "program not found: missing.py"),
        (
            ["run", "./plain.sh"],
            "program is not executable: ./plain.sh (chmod +x it, or name its interpreter first)",
        ),
        (["run", "-n", "../heads/main", "ok.py"], None),
        (["run", "-n", "a..b", "ok.py"], None),
        (["run", "-n", "x.lock", "ok.py"], None),
        (["run", "-n", "has space", "ok.py"], None),
        (
            ["run", "-t", "has space", "ok.py"],
            "invalid tag 'has space': no spaces, commas or control characters, "
            "at most 100 characters",
        ),
        (["show", "nope"], "unknown run 'nope' (git exp log lists runs)"),
        (["show", "@"], "unknown run '@': there are only 0 runs"),
    ],
)
def test_errors_are_one_line_and_write_nothing(
    repo_dir: Path, args: list[str], message: str | None
) -> None:
    write_program(repo_dir / "plain.sh", "#!/bin/sh\n")
    write_program(repo_dir / "ok.py", "pass\n")
    before = repo_state(repo_dir)

    result = git_exp(repo_dir, *args)

    assert result.returncode == 1
    assert result.stdout == ""
    text = assert_one_error_line(result.stderr, message)
    if message is None:
        assert text.startswith(f"invalid experiment name '{args[2]}': use letters")
    assert run_refs(repo_dir) == {}
    assert notes_ref(repo_dir) is None
    assert repo_state(repo_dir) == before


def test_errors_outside_a_repository_and_in_a_bare_one(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for args in (["run", "train.py"], ["log"], ["show", "@"]):
        result = git_exp(outside, *args)
        assert (result.returncode, result.stdout) == (1, "")
        assert_one_error_line(
            result.stderr, f"not a git repository (or any of the parent directories): {outside}"
        )

    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    result = git_exp(bare, "run", "train.py")
    assert result.returncode == 1
    assert_one_error_line(
        result.stderr, f"this operation needs a working tree, but {bare} is a bare repository"
    )
    assert git(bare, "for-each-ref") == ""


def test_ambiguous_run(repo_dir: Path) -> None:
    write_program(repo_dir / "ok.py", "pass\n")
    assert git_exp(repo_dir, "run", "ok.py").returncode == 0
    _, commit, record = only_run(repo_dir)
    run_id = record["id"].split("/")[1]
    git(repo_dir, "update-ref", f"refs/experiments/copy/{run_id}", commit)
    notes_before = notes_ref(repo_dir)

    result = git_exp(repo_dir, "show", run_id)

    assert result.returncode == 1
    text = assert_one_error_line(result.stderr)
    assert text.startswith(f"ambiguous run '{run_id}': it matches ")
    assert sorted(text.split(" matches ")[1].split(", ")) == [f"copy/{run_id}", record["id"]]
    assert notes_ref(repo_dir) == notes_before


def test_version() -> None:
    from importlib.metadata import version

    result = git_exp(Path.cwd(), "--version")
    assert result.returncode == 0
    assert result.stdout == f"git exp, version {version('gitexp')}\n"

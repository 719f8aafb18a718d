"""Hostile input: names and specs that try to leave the namespace, records that arrive from
someone else's remote with anything in them, and secrets in the environment and the argv.

Unit-level checks live elsewhere (tests/test_ids.py, tests/test_listing.py,
tests/commands/test_artifact.py); here every command is driven through the real entry point.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from helpers_e2e import assert_one_error_line, fsck, git_exp, only_run, user_env, write_program
from helpers_e2e import invoke_main_bytes as invoke_main
from helpers_guarantees import HOST_NAME, fake_run

from gitexp.record import dump_record, new_record

GOOD_ID = "20261120.001.good"
PWNED = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
HOSTILE_TEXT = f"{PWNED}{CLEAR}\r\b\x9b31m\u202eevil\x00"

# Names, specs, tags, branch and artifact names that must never reach a ref or a path.
HOSTILE_NAMES = [
    "../heads/main",
    "refs/heads/main",
    "refs/experiments/../heads/main",
    "train/../../heads/main",
    "@{1}",
    "@{-1}",
    "-rf",
    "--upload-pack=touch pwned",
    "a b",
    "tab\there",
    "x.lock",
    PWNED,
    "line\nbreak",
    "x" * 10_000,
    "",
]
# Tags are data inside the record, never a ref or a path: only what would break a listing or
# a terminal is refused (`../heads/main` is a valid, harmless tag).
HOSTILE_TAGS = ["a b", "a,b", "tab\there", PWNED, "line\nbreak", "x" * 10_000, ""]
TAG_POSITIONS = {("run", "-t"), ("tag", "@"), ("tag", "-d"), ("rerun", "-t")}

# Each command with `V` where the hostile value goes. Read-only listings may succeed.
COMMANDS = [
    ["run", "-n", "V", "--", sys.executable, "-c", "open('ran', 'w')"],
    ["run", "-t", "V", "--", sys.executable, "-c", "open('ran', 'w')"],
    ["show", "V"],
    ["note", "V", "a message"],
    ["tag", "V", "best"],
    ["tag", "@", "V"],
    ["tag", "-d", "@", "V"],
    ["rm", "V"],
    ["restore", "V"],
    ["diff", "V"],
    ["diff", "@", "V"],
    ["checkout", "V"],
    ["checkout", "@", "-b", "V"],
    ["rerun", "V"],
    ["rerun", "-n", "V", "@"],
    ["rerun", "-t", "V", "@"],
    ["artifact", "V"],
    ["artifact", "@", "V"],
    ["compare", "V"],
    ["log", "V"],
    ["log", "-t", "V"],
    ["export", "V", "-o", "out.tar.gz"],
    ["push", "origin", "V"],
    ["push", "V"],
    ["fetch", "V"],
    ["pull", "V"],
]
READ_ONLY_SUCCESS_ALLOWED = {"log", "diff"}


def finished(name: str, run_id: str, **fields: Any) -> dict[str, Any]:
    record = new_record(
        id=f"{name}/{run_id}",
        name=name,
        ref=f"refs/experiments/{name}/{run_id}",
        status="succeeded",
        command=["train.py", "--lr", "0.1"],
        cwd=".",
        started_at="2026-11-20T10:00:00.000+00:00",
        ended_at="2026-11-20T10:01:00.000+00:00",
        duration_s=60.0,
        exit_code=0,
        params={"lr": 0.1},
        metrics={"loss": {"last": 0.5, "min": 0.4, "max": 0.9, "count": 3, "step": 2}},
    )
    record.update(fields)
    return record


def written_state(repo: Path) -> dict[str, Any]:
    """Every ref (notes and runs included), HEAD, the index, and every file in the work tree
    and the run directories, hashed: what a refused command must leave as it was."""
    files = {}
    for root, dirs, names in os.walk(repo):
        # A listing cache may be refreshed by any read; objects are covered by the refs.
        dirs[:] = [d for d in dirs if d not in ("objects", "logs", ".cache")]
        for name in names:
            path = Path(root) / name
            if path.is_file() and not path.is_symlink():
                files[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "symbolic-ref", "-q", "HEAD", check=False),
        "files": files,
    }


def valid_branch_name(repo: Path, name: str) -> bool:
    result = subprocess.run(
        ["git", "check-ref-format", "--branch", name], cwd=repo, capture_output=True, check=False
    )
    return result.returncode == 0


@pytest.fixture
def one_run(repo_dir: Path, tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo_dir, "remote", "add", "origin", str(remote))
    fake_run(repo_dir, "train", GOOD_ID, dump_record(finished("train", GOOD_ID)))
    return repo_dir


# --- names and specs -----------------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(c[:3]).replace("/", "_"))
def test_hostile_names_are_refused_before_anything_is_written(
    one_run: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    before = written_state(one_run)
    values = HOSTILE_TAGS if tuple(command[:2]) in TAG_POSITIONS else HOSTILE_NAMES
    if command[:3] == ["checkout", "@", "-b"]:
        # Branch names follow git's own rules (`refs/heads/x` is a legal, if odd, branch).
        values = [v for v in values if not valid_branch_name(one_run, v)]
    if command[0] in ("fetch", "pull") or command == ["push", "V"]:
        values = [v for v in values if v]  # an empty REMOTE means the default one
    for value in values:
        args = [value if part == "V" else part for part in command]
        code, stdout, stderr = invoke_main(monkeypatch, *args)
        text = stderr.decode(errors="replace")
        shown = repr(value[:40])
        assert "Traceback" not in text and "internal error" not in text, (shown, text)
        if command[0] not in READ_ONLY_SUCCESS_ALLOWED:
            assert code in (1, 2), (shown, code, text)
        if code == 1:
            message = assert_one_error_line(text)
            assert len(message) < 500, shown
            assert message.isprintable(), (shown, message)
        assert b"\x1b" not in stdout + stderr, shown
        assert written_state(one_run) == before, (args[:4], shown)
        assert not (one_run / "ran").exists()
    fsck(one_run)


# --- records are data ----------------------------------------------------------------------

ODD_RECORDS: dict[str, Any] = {
    "status-number": {"status": 7},
    "status-hostile": {"status": HOSTILE_TEXT},
    "tags-string": {"tags": "a,b"},
    "tags-objects": {"tags": [{"x": 1}, None, 3]},
    "metrics-list": {"metrics": [1, 2, 3]},
    "metrics-odd-summaries": {"metrics": {"loss": [1], "acc": {"last": "high"}, "n": None}},
    "host-list": {"status": "running", "host": ["a", "b"]},
    "host-here-bad-pid": {"status": "running", "host": {"hostname": HOST_NAME, "pid": "1"}},
    "started-garbage": {"started_at": "yesterday at noon"},
    "started-number": {"started_at": 12},
    "params-null": {"params": None},
    "params-list": {"params": [1, 2]},
    "command-string": {"command": "rm -rf /"},
    "command-mixed": {"command": ["a", 1, None, {"b": 2}]},
    "message-object": {"message": {"text": "hi"}},
    "annotations-string": {"annotations": "oops"},
    "annotations-odd": {"annotations": [1, None, {"text": 3}]},
    "artifacts-object": {"artifacts": {"name": "x"}},
    "artifacts-escape": {"artifacts": [{"name": "../../etc/passwd", "path": "../../etc/passwd"}]},
    "git-list": {"git": [1]},
    "git-odd": {"git": {"skipped": "x", "untracked": 5, "untracked_count": "many"}},
    "error-string": {"status": "failed", "error": "boom"},
    "error-odd": {"status": "failed", "error": {"type": 1, "traceback": ["x"]}},
    "env-list": {"env": ["A=1"]},
    "packages-list": {"packages": ["torch"]},
    "gpus-object": {"gpus": {"name": "x"}},
    "resources-list": {"resources": [1]},
    "duration-string": {"duration_s": "long"},
    "exit-string": {"exit_code": "x", "signal": "KILL", "interrupted_by": "me"},
    "deleted-number": {"deleted": 5},
    "reruns-string": {"reruns": "x"},
    "problems-string": {"problems": "disk"},
    "schema-future": {"schema": 99, "new_field": {"x": [1]}},
    "python-string": {"python": "3.12"},
    "run-dir-number": {"run_dir": 5},
    "huge-numbers": {"duration_s": 1e308, "exit_code": 2**62, "params": {"lr": -1e-308}},
    "message-10mb": {"message": "m" * 10_000_000},
}
INVALID_NOTES: dict[str, bytes] = {
    "not-json": b"{not json",
    "a-list": b"[1, 2, 3]\n",
    "not-utf8": b"\xff\xfe\x00",
    "null": b"null",
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "nul-bytes": b'{"status": "succeeded"\x00}',
}


# The odd records whose lists and flags `tag`, `note --append` and `rm` change.
ANNOTATED_ODD_RECORDS = [
    "tags-string",
    "tags-objects",
    "annotations-string",
    "annotations-odd",
    "deleted-number",
    "status-number",
    "schema-future",
    "huge-numbers",
]


def hostile_record(run_id: str) -> dict[str, Any]:
    """Escape sequences in every string a listing shows, and in keys."""
    h = HOSTILE_TEXT
    return finished(
        "train",
        run_id,
        status="running",  # and on this host, with a dead pid: shown by `status` as crashed
        command=[f"train{h}.py", f"--lr{h}", h],
        cwd=h,
        message=f"{h} first line\n{h} second",
        tags=[h, f"ok{h}"],
        params={h: h, "lr": h, "nested": {h: [h]}},
        metrics={
            h: {"last": 1.0, "min": 0.0, "max": 2.0, "count": 2, "step": 1},
            "loss": {"last": h, "min": h, "max": h, "count": h, "step": h},
        },
        annotations=[{"time": h, "author": h, "text": h}],
        host={"hostname": HOST_NAME, "user": h, "pid": 2**22 + 12345, "platform": h},
        python={"version": h, "executable": h},
        packages={h: h},
        env={h: h},
        gpus=[{"name": h}],
        git={"head": h, "branch": h, "dirty": True, "untracked": [h], "untracked_count": 1},
        error={"type": h, "message": h, "traceback": f"{h}\n{h}"},
        artifacts=[{"name": h, "path": h, "size": h, "sha256": h}],
        problems=[h],
        rerun_of=h,
        reruns=[h],
        run_dir=h,
        started_at="2026-11-20T11:00:00.000+00:00",
    )


@pytest.fixture
def odd_repo(repo_dir: Path) -> dict[str, str]:
    """A repository whose records are every kind of odd; name -> run spec (the id's suffix)."""
    fake_run(repo_dir, "train", GOOD_ID, dump_record(finished("train", GOOD_ID)))
    specs = {"good": "good"}
    count = 100
    for label, fields in ODD_RECORDS.items():
        count += 1
        run_id = f"20261120.{count:03d}.x{count % 1000:03d}"
        record = finished("odd", run_id)
        record.update(fields)
        fake_run(repo_dir, "odd", run_id, json.dumps(record).encode())  # json: 2**62, 1e308
        specs[label] = f"odd/{run_id}"
    for label, data in INVALID_NOTES.items():
        count += 1
        run_id = f"20261120.{count:03d}.x{count % 1000:03d}"
        fake_run(repo_dir, "bad", run_id, data)
        specs[label] = f"bad/{run_id}"
    fake_run(repo_dir, "train", "20261120.002.evil", dump_record(hostile_record("evil")))
    specs["hostile"] = "train/20261120.002.evil"
    return specs


LISTINGS = [
    ["log"],
    ["log", "--all"],
    ["log", "--json"],
    ["log", "--csv"],
    ["log", "--md"],
    ["log", "--where", "metrics.loss.last > 0.1 or params.lr exists"],
    ["log", "--sort", "params.lr", "-r"],
    ["log", "--sort", "metrics.loss.last"],
    ["log", "-t", "best", "--status", "failed", "--status", "unreadable"],
    ["log", "--since", "1000d"],
    ["compare"],
    ["compare", "--all-columns"],
    ["compare", "--csv"],
    ["compare", "--md"],
    ["compare", "--json"],
    ["compare", "--metric-stat", "max"],
    ["status"],
    ["status", "--json"],
]
PER_RUN = [
    ["show", "S"],
    ["show", "--json", "S"],
    ["note", "S"],
    ["tag", "S"],
    ["artifact", "S"],
    ["diff", "good", "S", "--no-code"],
    ["diff", "S", "good", "--json"],
    ["compare", "good", "S"],
]
# Bytes a terminal acts on: C0 controls except newline and tab, DEL, C1 controls, and the
# bidi overrides that reorder what is shown (all in UTF-8).
TERMINAL_CONTROL = re.compile(
    rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]"
)


def assert_shown_safely(code: int, stdout: bytes, stderr: bytes, what: object) -> None:
    text = stderr.decode(errors="replace")
    assert code in (0, 1), (what, code, text[:500])
    assert "Traceback" not in text and "internal error" not in text, (what, text[:500])
    if code == 1:
        assert_one_error_line(text)
    found = TERMINAL_CONTROL.search(stdout) or TERMINAL_CONTROL.search(stderr)
    assert found is None, (what, stdout[max(0, found.start() - 80) : found.end() + 80])


def test_every_listing_survives_every_odd_record(
    odd_repo: dict[str, str], repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = git(repo_dir, "for-each-ref")
    for args in LISTINGS:
        code, stdout, stderr = invoke_main(monkeypatch, *args)
        assert_shown_safely(code, stdout, stderr, args)
        if args[0] == "log" and len(args) <= 2 and "-t" not in args:
            assert f"train/{GOOD_ID}".encode() in stdout, args
    listed = json.loads(invoke_main(monkeypatch, "log", "--json", "--all")[1])
    statuses = {item["id"]: item["status"] for item in listed}
    assert statuses[f"train/{GOOD_ID}"] == "succeeded"
    assert len(statuses) == len(odd_repo)  # every run lists, the unreadable ones too
    for label in INVALID_NOTES:
        assert statuses[odd_repo[label]] == "unreadable", label
    for label, spec in odd_repo.items():
        for args in PER_RUN:
            args = [spec if part == "S" else part for part in args]
            code, stdout, stderr = invoke_main(monkeypatch, *args)
            assert_shown_safely(code, stdout, stderr, (label, args))
    assert git(repo_dir, "for-each-ref") == before


def test_annotating_an_odd_record_never_breaks_it(
    odd_repo: dict[str, str], repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = [*INVALID_NOTES, *ANNOTATED_ODD_RECORDS]
    refs = [f"refs/experiments/{odd_repo[label]}" for label in INVALID_NOTES]
    unreadable = {git(repo_dir, "rev-parse", ref) for ref in refs}
    unreadable_notes = {
        line
        for line in git(repo_dir, "notes", "--ref", "experiments", "list").splitlines()
        if line.split()[1] + "\n" in unreadable
    }
    assert len(unreadable_notes) == len(INVALID_NOTES)
    for label, spec in odd_repo.items():
        if label not in chosen:
            continue
        for args in (["tag", spec, "seen"], ["note", spec, "--append", "seen"], ["rm", spec]):
            code, stdout, stderr = invoke_main(monkeypatch, *args)
            assert_shown_safely(code, stdout, stderr, (label, args))
            if label in INVALID_NOTES:
                assert code == 1  # an unreadable record is never overwritten
    listed = json.loads(invoke_main(monkeypatch, "log", "--json", "--all")[1])
    assert len(listed) == len(odd_repo)
    after = set(git(repo_dir, "notes", "--ref", "experiments", "list").splitlines())
    assert unreadable_notes <= after  # never rewritten: the same blobs on the same commits
    fsck(repo_dir)


def read_through_a_terminal(repo: Path, *args: str) -> bytes:
    """`git exp ARGS` with stdout on a pseudo-terminal (colour on), all bytes it wrote."""
    master, slave = pty.openpty()
    env = user_env({"TERM": "xterm", "COLUMNS": "200"})
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        ["git", "exp", *args], cwd=repo, env=env, stdout=slave, stderr=subprocess.PIPE
    )
    os.close(slave)
    received = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        received.extend(chunk)
    os.close(master)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert b"Traceback" not in stderr
    return bytes(received)


# gitexp's own colours: SGR sequences with numeric parameters only.
OWN_COLOUR = re.compile(rb"\x1b\[[0-9;]*m")


def test_escape_sequences_reach_a_terminal_escaped(repo_dir: Path) -> None:
    fake_run(repo_dir, "train", GOOD_ID, dump_record(finished("train", GOOD_ID)))
    fake_run(repo_dir, "train", "20261120.002.evil", dump_record(hostile_record("evil")))
    for args in (["show", "evil"], ["log"], ["status"], ["compare"], ["note", "evil"]):
        output = read_through_a_terminal(repo_dir, *args)
        without_colour = OWN_COLOUR.sub(b"", output).replace(b"\r\n", b"\n")
        found = TERMINAL_CONTROL.search(without_colour)
        assert found is None, (args, without_colour[max(0, found.start() - 80) : found.end() + 80])
        assert b"\\x1b]0;pwned\\x07" in output or b"\\x1b" in output, args


# --- secrets -------------------------------------------------------------------------------

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-secret-1a2b3c",
    "HF_TOKEN": "hf_token_4d5e6f",
    "WANDB_API_KEY": "wandb-key-7g8h9i",
    "DB_PASSWORD": "db-password-0j1k",
}
ARGV_SECRETS = {
    "--api-key": "cli-api-key-2l3m",
    "--token": "cli-token-4n5o",
    "password": "cli-password-6p7q",
    "--db-pwd": "cli-pwd-8r9s",
}
SECRET_PROGRAM = """
import argparse, os, gitexp
parser = argparse.ArgumentParser()
for flag in ("--api-key", "--token", "--db-pwd", "--lr"):
    parser.add_argument(flag)
args, rest = parser.parse_known_args()
gitexp.params({**vars(args), "hf_token": os.environ["HF_TOKEN"], "seed": 1})
gitexp.log(step=1, loss=0.5)
print("trained")
"""


def test_no_secret_reaches_the_repository_or_the_output(repo_dir: Path) -> None:
    write_program(repo_dir / "train.py", SECRET_PROGRAM)
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-q", "-m", "train")
    env = user_env(SECRETS)
    argv = [
        "--api-key",
        ARGV_SECRETS["--api-key"],
        f"--token={ARGV_SECRETS['--token']}",
        f"password={ARGV_SECRETS['password']}",
        "--db-pwd",
        ARGV_SECRETS["--db-pwd"],
        "--lr",
        "0.1",
    ]
    result = git_exp(repo_dir, "run", "-m", "secret test", "train.py", *argv, env=env)
    assert result.returncode == 0, result.stderr
    _, commit, record = only_run(repo_dir)
    assert record["params"]["lr"] == "0.1" and record["params"]["seed"] == 1
    assert record["params"]["api_key"] == "***" and record["params"]["hf_token"] == "***"
    assert record["command"][1:3] == ["--api-key", "***"]

    views = {
        "run output": result.stdout + result.stderr,
        "refs": git(repo_dir, "for-each-ref"),
        "commit message": git(repo_dir, "log", "-1", "--format=%B", commit),
        "git log --all -p": git(repo_dir, "log", "--all", "-p", "--notes=experiments"),
        "notes list": git(repo_dir, "notes", "--ref", "experiments", "list"),
        "notes show": git(repo_dir, "notes", "--ref", "experiments", "show", commit),
    }
    for args in (["show", "@"], ["show", "--json", "@"], ["log", "--json"], ["compare", "--json"]):
        views[" ".join(args)] = git_exp(repo_dir, *args, env=env).stdout
    objects = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"],
        cwd=repo_dir,
        capture_output=True,
        check=True,
    ).stdout
    views["every object in the repository"] = objects.decode(errors="replace")
    # The run directory travels in export archives: params.json and the archive too.
    views["params.json"] = (Path(record["run_dir"]) / "params.json").read_text()
    exported = git_exp(repo_dir, "export", "@", "-o", "-", env=env, text=False)
    assert exported.returncode == 0, exported.stderr
    views["export archive"] = gzip.decompress(exported.stdout).decode(errors="replace")
    for where, text in views.items():
        for secret in [*SECRETS.values(), *ARGV_SECRETS.values()]:
            assert secret not in text, f"{secret} leaked into {where}"
    fsck(repo_dir)

"""The `git exp` command line in-process: exit codes, exact messages, stdout vs stderr."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from conftest import git
from helpers_e2e import (
    assert_one_error_line,
    invoke_main,
    note,
    notes_ref,
    only_run,
    run_refs,
    write_program,
)

from gitexp.cli import cli

ARGV_PRINTER = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"


def assert_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, repo: Path, args: tuple[str, ...], message: str
) -> None:
    refs_before = git(repo, "for-each-ref") if (repo / ".git").exists() else None
    code, stdout, stderr = invoke_main(monkeypatch, *args)
    assert code == 1
    assert stdout == ""
    assert_one_error_line(stderr, message)
    if refs_before is not None:
        assert git(repo, "for-each-ref") == refs_before


def test_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "Record every experiment run inside your git repository." in result.output
    for command in ("run", "log", "show"):
        assert f"  {command} " in result.output
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"git exp, version {version('gitexp')}\n"
    result = runner.invoke(cli, ["run", "--help"])
    assert result.exit_code == 0
    assert "git exp run train.py --lr 0.1 --epochs 20" in result.output


def test_python_dash_m_gitexp(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gitexp", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: git exp [OPTIONS] COMMAND [ARGS]...")
    result = subprocess.run(
        [sys.executable, "-m", "gitexp", "log"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert_one_error_line(
        result.stderr, f"not a git repository (or any of the parent directories): {tmp_path}"
    )


@pytest.mark.parametrize("name", ["../heads/main", "a..b", "x.lock", "has space"])
def test_invalid_name(monkeypatch: pytest.MonkeyPatch, repo_dir: Path, name: str) -> None:
    write_program(repo_dir / "train.py", "pass\n")
    assert_fails_cleanly(
        monkeypatch,
        repo_dir,
        ("run", "-n", name, "train.py"),
        f"invalid experiment name '{name}': use letters, digits, '.', '_' and '-', starting "
        "with a letter or digit, without '..' and not ending in '.lock'",
    )
    assert notes_ref(repo_dir) is None


def test_invalid_tag(monkeypatch: pytest.MonkeyPatch, repo_dir: Path) -> None:
    write_program(repo_dir / "train.py", "pass\n")
    assert_fails_cleanly(
        monkeypatch,
        repo_dir,
        ("run", "-t", "good", "-t", "a,b", "train.py"),
        "invalid tag 'a,b': no spaces, commas or control characters, at most 100 characters",
    )
    assert notes_ref(repo_dir) is None


def test_program_problems(monkeypatch: pytest.MonkeyPatch, repo_dir: Path) -> None:
    write_program(repo_dir / "plain.sh", "#!/bin/sh\n")
    assert_fails_cleanly(
        monkeypatch, repo_dir, ("run", "missing.py"), "program not found: missing.py"
    )
    assert_fails_cleanly(
        monkeypatch,
        repo_dir,
        ("run", "./plain.sh"),
        "program is not executable: ./plain.sh (chmod +x it, or name its interpreter first)",
    )
    assert notes_ref(repo_dir) is None


def test_outside_a_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    monkeypatch.chdir(outside)
    expected = f"not a git repository (or any of the parent directories): {outside}"
    for args in (("run", "train.py"), ("log",), ("show", "@")):
        assert_fails_cleanly(monkeypatch, outside, args, expected)


def test_bare_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    monkeypatch.chdir(bare)
    assert_fails_cleanly(
        monkeypatch,
        bare,
        ("run", "train.py"),
        f"this operation needs a working tree, but {bare} is a bare repository",
    )
    assert git(bare, "for-each-ref") == ""
    code, stdout, _ = invoke_main(monkeypatch, "log")
    assert (code, stdout) == (0, "")


def test_run_lines_on_stderr_and_exit_status(
    monkeypatch: pytest.MonkeyPatch, repo_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_program(
        repo_dir / "train.py",
        """
        import sys, gitexp
        print("to stdout")
        gitexp.log(step=1, val_loss=0.5)
        sys.exit(3)
        """,
    )
    code, stdout, stderr = invoke_main(monkeypatch, "run", "-m", "msg", "train.py")
    program_output = capfd.readouterr()

    _, commit, record = only_run(repo_dir)
    run_id = record["id"]
    assert code == 3
    assert stdout == ""
    assert program_output.out == "to stdout\n"
    lines = stderr.splitlines()
    assert lines[0] == f"gitexp: {run_id} started (snapshot {commit[:7]})"
    assert lines[1].startswith(f"gitexp: {run_id} failed in ")
    assert lines[1].endswith("s · val_loss=0.5")
    assert len(lines) == 2
    assert record["exit_code"] == 3
    assert record["message"] == "msg"


def test_program_options_belong_to_the_program(
    monkeypatch: pytest.MonkeyPatch, repo_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_program(repo_dir / "show_args.py", ARGV_PRINTER)

    code, _, _ = invoke_main(monkeypatch, "run", "show_args.py", "-n", "5", "--help", "-t", "x")
    assert code == 0
    assert orjson.loads(capfd.readouterr().out) == ["-n", "5", "--help", "-t", "x"]
    _, _, record = only_run(repo_dir)
    assert record["name"] == "show_args"
    assert record["tags"] == []

    code, _, _ = invoke_main(monkeypatch, "run", "-n", "n1", "-t", "a", "--", "show_args.py", "--")
    assert code == 0
    assert orjson.loads(capfd.readouterr().out) == ["--"]
    assert {ref.split("/")[2] for ref in run_refs(repo_dir)} == {"show_args", "n1"}


def test_log_and_show(
    monkeypatch: pytest.MonkeyPatch, repo_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_program(repo_dir / "ok.py", "import gitexp\ngitexp.log(step=1, acc=0.5)\n")
    write_program(repo_dir / "bad.py", "raise KeyError('missing column')\n")
    assert invoke_main(monkeypatch, "run", "-t", "first", "ok.py")[0] == 0
    assert invoke_main(monkeypatch, "run", "bad.py", "--lr", "0.5")[0] == 1
    capfd.readouterr()
    records = sorted(
        (note(repo_dir, commit) for commit in run_refs(repo_dir).values()),
        key=lambda record: record["started_at"],
        reverse=True,
    )

    code, stdout, stderr = invoke_main(monkeypatch, "log")
    assert (code, stderr) == (0, "")
    lines = stdout.splitlines()
    assert [line.split()[0] for line in lines] == [r["id"] for r in records]
    assert lines[0].split()[1] == "failed"
    assert lines[1].split()[1] == "succeeded"
    assert lines[1].endswith("acc=0.5  [first]")

    code, stdout, _ = invoke_main(monkeypatch, "log", "--json", "-n", "1", "--status", "failed")
    assert code == 0
    assert orjson.loads(stdout) == [records[0]]
    code, stdout, _ = invoke_main(monkeypatch, "log", "--json", "--tag", "first", "ok")
    assert [r["id"] for r in orjson.loads(stdout)] == [records[1]["id"]]
    code, stdout, _ = invoke_main(monkeypatch, "log", "-n", "0")
    assert (code, stdout) == (0, "")
    code, _, stderr = invoke_main(monkeypatch, "log", "--status", "bogus")
    assert code == 2
    assert "Invalid value for '--status'" in stderr

    code, stdout, _ = invoke_main(monkeypatch, "show", "@")
    assert code == 0
    assert "error     KeyError: 'missing column'" in stdout.splitlines()
    assert "  lr  0.5" in stdout.splitlines()
    code, stdout, _ = invoke_main(monkeypatch, "show", "--json", "@~1")
    assert orjson.loads(stdout) == records[1]


def test_show_unknown_and_ambiguous(
    monkeypatch: pytest.MonkeyPatch, repo_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    write_program(repo_dir / "ok.py", "pass\n")
    assert invoke_main(monkeypatch, "run", "ok.py")[0] == 0
    capfd.readouterr()
    _, commit, record = only_run(repo_dir)
    run_id = record["id"].split("/")[1]
    git(repo_dir, "update-ref", f"refs/experiments/copy/{run_id}", commit)
    refs = git(repo_dir, "for-each-ref")

    assert_fails_cleanly(
        monkeypatch, repo_dir, ("show", "nope"), "unknown run 'nope' (git exp log lists runs)"
    )
    code, stdout, stderr = invoke_main(monkeypatch, "show", run_id)
    assert (code, stdout) == (1, "")
    message = assert_one_error_line(stderr)
    assert message.startswith(f"ambiguous run '{run_id}': it matches ")
    assert sorted(message.split(" matches ")[1].split(", ")) == [f"copy/{run_id}", record["id"]]
    assert git(repo_dir, "for-each-ref") == refs


@pytest.mark.parametrize(
    "args",
    [
        ("log", "--md", "--csv"),
        ("log", "--json", "--md"),
        ("compare", "--csv", "--json"),
        ("log", "--json", "--csv", "--md"),
    ],
)
def test_conflicting_output_formats_are_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, repo_dir: Path, args: tuple[str, ...]
) -> None:
    code, stdout, stderr = invoke_main(monkeypatch, *args)

    assert (code, stdout) == (2, "")
    assert stderr.splitlines()[-1] == "Error: choose one of --json, --csv and --md"


def test_every_json_flag_is_the_shared_option() -> None:
    # `diff` keeps its own --json: its CLI module belongs to the diff rewrite.
    for name, command in cli.commands.items():
        flags = {flag for param in command.params for flag in param.opts}
        if "--json" in flags and name != "diff":
            json_param = next(param for param in command.params if "--json" in param.opts)
            assert json_param.name == "as_json", name
            assert ("--csv" in flags) == ("--md" in flags), name
            assert command.callback is not None and hasattr(command.callback, "__wrapped__"), name


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("init", "--hooks", "--uninstall-hooks"), "--hooks and --uninstall-hooks cannot be used"),
        (("export", "-o", "x.tar.gz"), "name the runs to export (RUN...), or use --all or --where"),
        (("gc", "--older-than", "soon"), "invalid --older-than 'soon': use a duration"),
        (("log", "--where", "("), "invalid --where expression: "),
        (("compare", "--where", "a =="), "invalid --where expression: "),
    ],
)
def test_usage_errors_exit_2(
    monkeypatch: pytest.MonkeyPatch, repo_dir: Path, args: tuple[str, ...], message: str
) -> None:
    code, stdout, stderr = invoke_main(monkeypatch, *args)

    assert (code, stdout) == (2, "")
    assert assert_one_error_line(stderr).startswith(message)

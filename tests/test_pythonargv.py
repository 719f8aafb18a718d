"""One parser of a python command line, checked against CPython itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gitexp import ids
from gitexp.launch import program_args
from gitexp.pythonargv import PythonCommand, is_python_launcher, parse_python_command

SHOW_ARGV = "import sys; print(repr(sys.argv[1:]))"

# Each line once split two different ways: ids.default_name and run.program_args disagreed.
CASES = [
    (["-uBm", "pkg.train", "--lr", "1"], PythonCommand("module", "pkg.train", ["--lr", "1"])),
    (["-uc", SHOW_ARGV, "a", "b"], PythonCommand("code", SHOW_ARGV, ["a", "b"])),
    (["-uW", "ignore", "train.py", "x"], PythonCommand("script", "train.py", ["x"])),
    (["-Wignore", "-Xdev", "train.py"], PythonCommand("script", "train.py", [])),
    (["-X", "dev", "-m", "pkg.train"], PythonCommand("module", "pkg.train", [])),
    (["-mpkg.train", "-m", "x"], PythonCommand("module", "pkg.train", ["-m", "x"])),
    (
        ["--check-hash-based-pycs", "always", "train.py", "-c"],
        PythonCommand("script", "train.py", ["-c"]),
    ),
    (["-E", "--", "train.py", "--", "y"], PythonCommand("script", "train.py", ["--", "y"])),
    (["-u", "-", "a"], PythonCommand("stdin", "", ["a"])),
    (["-u", "-O"], PythonCommand("", "", [])),
    (["-c"], PythonCommand("code", "", [])),
]


@pytest.mark.parametrize(("args", "expected"), CASES)
def test_parse_python_command(args: list[str], expected: PythonCommand) -> None:
    assert parse_python_command(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["-uBm", "pkg.train", "--lr", "1", "-c", "x"],
        ["-uW", "ignore", "train.py", "--lr", "2"],
        ["-uc", SHOW_ARGV, "a", "-m", "b"],
        ["-X", "dev", "-Wd", "-m", "pkg.train", "--", "z"],
        ["--check-hash-based-pycs", "never", "-s", "train.py", "-u"],
        ["-E", "--", "train.py", "--", "y"],
        ["-sSI", "train.py", "q"],
    ],
)
def test_program_args_are_what_cpython_gives_the_program(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "train.py").write_text(SHOW_ARGV + "\n")
    (tmp_path / "train.py").write_text(SHOW_ARGV + "\n")
    shown = subprocess.run(
        [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout

    assert shown.strip() == repr(program_args(["python3", *args]))


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["python", "-uBm", "pkg.train"], "train"),
        (["python", "-uW", "ignore", "train.py"], "train"),
        (["python", "-uc", "print(1)"], "python"),
        (["python", "--check-hash-based-pycs", "always", "eval.py"], "eval"),
    ],
)
def test_default_name_uses_the_same_split(command: list[str], expected: str) -> None:
    assert ids.default_name(command) == expected


def test_is_python_launcher() -> None:
    assert is_python_launcher("/usr/bin/python3.11")
    assert is_python_launcher("python.exe")
    assert not is_python_launcher("pythonista")
    assert not is_python_launcher("ipython")

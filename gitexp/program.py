"""Finding what to execute for `git exp run PROGRAM ARGS...` — never through a shell."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitexp.errors import GitExpError
from gitexp.ids import printable
from gitexp.pythonargv import is_python_launcher


@dataclass
class Launch:
    """How to start a program, and which Python's packages describe its environment."""

    argv: list[str]
    executable: str
    python: str
    is_python: bool


def resolve_program(
    command: Sequence[str], cwd: Path, path_env: str | None, fallback_python: str
) -> Launch:
    """`*.py` runs under the `python` on PATH (else `fallback_python`); anything else runs as is.

    A bare name is looked up on PATH first, then in `cwd` (so `git exp run train.sh` works);
    a name with a slash is a path relative to `cwd`.
    """
    program, args = command[0], list(command[1:])
    python_on_path = shutil.which("python", path=path_env) or fallback_python
    if program.endswith(".py"):
        if not (cwd / program).is_file():
            raise GitExpError(f"program not found: {printable(program)}")
        return Launch([python_on_path, program, *args], python_on_path, python_on_path, True)
    executable = _find_executable(program, cwd, path_env)
    is_python = is_python_launcher(executable)
    python = executable if is_python else python_on_path
    return Launch([program, *args], executable, python, is_python)


def _find_executable(program: str, cwd: Path, path_env: str | None) -> str:
    shown = printable(program)
    if "/" not in program:
        found = shutil.which(program, path=path_env)
        if found:
            return found
    candidate = cwd / program
    if not candidate.is_file():
        raise GitExpError(
            f"program not found: {shown}"
            + ("" if "/" in program else " (not on PATH and not a file here)")
        )
    if not os.access(candidate, os.X_OK):
        raise GitExpError(
            f"program is not executable: {shown} (chmod +x it, or name its interpreter first)"
        )
    return str(candidate)

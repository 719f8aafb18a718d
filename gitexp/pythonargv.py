"""What a `python [options] (-m MOD | -c CODE | SCRIPT | -) [args]` command line runs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

PYTHON_LAUNCHER = re.compile(r"python(\d+(\.\d+)*)?(\.exe)?\Z")
# CPython's own option table (Python/getopt.c): the short options, `:` after one that takes
# a value (attached, `-Wignore`, or the next argument), and the long options with a value.
# Short flags combine (`-uBm pkg.train`); `-c` and `-m` end the interpreter's options.
SHORT_OPTIONS = "bBc:dEhiIJm:OPqRsStuvVW:xX:?"
LONG_OPTIONS_WITH_VALUE = frozenset({"--check-hash-based-pycs"})


@dataclass(frozen=True)
class PythonCommand:
    """The parts of an interpreter's command line, after the interpreter itself."""

    kind: str  # "module", "code", "script", "stdin" or "" (only options: the REPL)
    target: str  # the module name, the code or the script path; "" for stdin and the REPL
    args: list[str]  # the program's own arguments: `sys.argv[1:]`


def is_python_launcher(executable: str) -> bool:
    """Whether `executable` names a Python interpreter (`python`, `python3.11`, a path)."""
    return bool(PYTHON_LAUNCHER.match(PurePath(executable).name))


def parse_python_command(args: Sequence[str]) -> PythonCommand:
    """Split the arguments after `python` as CPython does."""
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "-" or not arg.startswith("-"):
            break
        index += 1
        if arg == "--":
            break
        if arg.startswith("--"):
            if arg in LONG_OPTIONS_WITH_VALUE:
                index += 1
            continue
        kind, target, index = _short_options(arg[1:], args, index)
        if kind:
            return PythonCommand(kind, target, list(args[index:]))
    if index >= len(args):
        return PythonCommand("", "", [])
    rest = list(args[index + 1 :])
    if args[index] == "-":
        return PythonCommand("stdin", "", rest)
    return PythonCommand("script", args[index], rest)


def _short_options(flags: str, args: Sequence[str], index: int) -> tuple[str, str, int]:
    """Walk one `-xyz` argument whose next argument is `args[index]`: ("module" or "code",
    its target, the index after it) if it ends the options, else ("", "", the index after
    any value an option in it took)."""
    for position, flag in enumerate(flags):
        spec = SHORT_OPTIONS.find(flag)
        if spec < 0 or not SHORT_OPTIONS.startswith(":", spec + 1):
            continue
        value = flags[position + 1 :]
        if not value:
            value = args[index] if index < len(args) else ""
            index += 1
        if flag == "m":
            return "module", value, index
        if flag == "c":
            return "code", value, index
        return "", "", index
    return "", "", index

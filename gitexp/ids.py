"""Experiment names, run ids and the ref names built from them (see docs/format.md)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from pathlib import PurePath

from gitexp.errors import InvalidNameError
from gitexp.pythonargv import is_python_launcher, parse_python_command

REF_PREFIX = "refs/experiments/"
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
RUN_ID_PATTERN = re.compile(r"(?P<date>\d{8})\.(?P<count>\d{3,})\.(?P<rand>[0-9a-z]{4})\Z")
MAX_NAME_LENGTH = 100
RAND_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
FALLBACK_NAME = "run"


def validate_name(name: str) -> str:
    """Return `name` if it is a valid experiment name, else raise InvalidNameError."""
    shown = printable(name)
    if not name:
        raise InvalidNameError("invalid experiment name '': it must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"invalid experiment name '{shown[:40]}...': longer than {MAX_NAME_LENGTH} characters"
        )
    if not NAME_PATTERN.match(name) or ".." in name or name.endswith(".lock"):
        raise InvalidNameError(
            f"invalid experiment name '{shown}': use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, without '..' and not ending in '.lock'"
        )
    return name


def printable(text: str, limit: int | None = None) -> str:
    """`text` with control characters escaped, safe to print on a terminal; with `limit`,
    cut to that many characters (then `...`), so a 10 KB argument keeps an error one line."""
    if limit is not None and len(text) > limit:
        return printable(text[:limit]) + "..."
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def default_name(command: Sequence[str]) -> str:
    """The experiment name a command gets by default: its script's file name, no extension.

    `train.py` -> `train`, `./train.sh` -> `train`, `python -m pkg.train` -> `train`,
    `python -u scripts/train.py` -> `train`, `train.v2.py` -> `train.v2`; `run` when nothing
    usable is left.
    """
    if not command:
        return FALLBACK_NAME
    target = command[0]
    if is_python_launcher(target):
        target = _python_target(command[1:]) or target
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePath(target).stem)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("-.")[:MAX_NAME_LENGTH]
    while cleaned.endswith(".lock"):
        cleaned = cleaned[: -len(".lock")].rstrip("-.")
    return cleaned if cleaned and NAME_PATTERN.match(cleaned) else FALLBACK_NAME


def _python_target(args: Sequence[str]) -> str:
    """What `python ARGS` runs, as a name: the script, or a module's last part; "" for
    `-c`, stdin and the REPL."""
    python = parse_python_command(args)
    if python.kind == "module":
        return python.target.rsplit(".", 1)[-1]
    return python.target if python.kind == "script" else ""


def random_suffix() -> str:
    """Four characters from a private RNG: a program's `random.seed` cannot repeat them."""
    return "".join(secrets.choice(RAND_ALPHABET) for _ in range(4))


def format_run_id(day: dt.date, count: int, rand: str) -> str:
    return f"{day:%Y%m%d}.{count:03d}.{rand}"


def run_ref(name: str, run_id: str) -> str:
    return f"{REF_PREFIX}{name}/{run_id}"


def parse_run_ref(ref: str) -> tuple[str, str] | None:
    """Split `refs/experiments/<name>/<id>` into (name, id); None for anything else."""
    if not ref.startswith(REF_PREFIX):
        return None
    parts = ref[len(REF_PREFIX) :].split("/")
    if len(parts) != 2 or not NAME_PATTERN.match(parts[0]) or not RUN_ID_PATTERN.match(parts[1]):
        return None
    return parts[0], parts[1]

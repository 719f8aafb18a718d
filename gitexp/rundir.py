"""The run directory: where a run's bulky output lives, outside git."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pygit2

from gitexp.child import is_artifact_name
from gitexp.ids import parse_run_ref, run_ref
from gitexp.repository import common_dir, config_value

OUTPUT_LOG = "output.log"
METRICS_FILE = "metrics.jsonl"
PARAMS_FILE = "params.json"
ERROR_FILE = "error.json"
ARTIFACTS_FILE = "artifacts.jsonl"
EXIT_FILE = "exit.json"
EXIT_FILE_ROOM = 1024  # bytes of exit.json taken when the run starts
EXIT_FILE_MAX = 64 * 1024  # larger is not ours: never read whole
ARTIFACT_FIELDS = ("name", "path", "size", "sha256", "source", "logged_at")
USAGE_ERROR_LINE = re.compile(r"(?:\S+: error: |Error: )(.+)\Z")
EXCEPTION_LINE = re.compile(
    r"([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Warning|[A-Z]\w*))(?::\s?(.*))?\Z"
)


def logdir_root(repo: pygit2.Repository, env_logdir: str | None) -> Path:
    """Run directories go under $GITEXP_LOGDIR, else exp.logdir, else <common dir>/experiments."""
    configured = env_logdir or config_value(repo, "exp.logdir")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_absolute() and repo.workdir:
            path = Path(repo.workdir) / path
        return path
    return common_dir(repo) / "experiments"


def run_directory(root: Path, name: str, run_id: str) -> Path:
    return root / name / run_id


def recorded_here(record: Mapping[str, Any], root: Path, hostname: str) -> bool:
    """Whether `record` is of a run this clone recorded: it ran on this machine and its run
    directory is this clone's `<root>/<name>/<id>` (a record from another clone names that
    clone's directory, or another host)."""
    host, run_dir, ref = record.get("host"), record.get("run_dir"), record.get("ref")
    if not isinstance(host, dict) or host.get("hostname") != hostname:
        return False
    parsed = parse_run_ref(ref) if isinstance(ref, str) else None
    if parsed is None or not isinstance(run_dir, str) or not run_dir:
        return False
    return os.path.realpath(run_dir) == os.path.realpath(run_directory(root, *parsed))


def run_dir_here(root: Path, name: str, run_id: str) -> Path | None:
    """This clone's directory of the run `<name>/<id>`, or None when it has none.

    The only place a run's directory is looked for is `<root>/<name>/<id>` (`root`:
    logdir_root), whatever a record's `run_dir` says: records come from other people's
    remotes and archives, so a path in one is data, never a place to read, pack or delete.
    """
    if parse_run_ref(run_ref(name, run_id)) is None:
        return None  # not a valid name and id: it could climb out of the logdir
    path = run_directory(root, name, run_id)
    return path if path.is_dir() and not path.is_symlink() else None


def locate_run_dir(
    repo: pygit2.Repository, name: str, run_id: str, env_logdir: str | None
) -> Path | None:
    """This clone's directory of the run `<name>/<id>` (see run_dir_here), or None."""
    return run_dir_here(logdir_root(repo, env_logdir), name, run_id)


def names_other_dir(record: dict[str, object] | None, run_dir: Path) -> str | None:
    """The record's `run_dir` when it names a directory other than `run_dir`, else None."""
    recorded = (record or {}).get("run_dir")
    if not isinstance(recorded, str) or not recorded or recorded == str(run_dir):
        return None
    return recorded


def reserve_exit_file(run_dir: Path) -> None:
    """Make exit.json, blank, taking its room now: when the run ends it is rewritten in
    place, which needs no new space on a disk that has filled up meanwhile."""
    # The final record does not depend on it: it only helps when that cannot be written.
    with contextlib.suppress(OSError):
        (run_dir / EXIT_FILE).write_bytes(b" " * (EXIT_FILE_ROOM - 1) + b"\n")


def write_exit_file(run_dir: Path, facts: dict[str, object]) -> bool:
    """Overwrite exit.json with `facts` (padded to its reserved room); False if it failed."""
    data = orjson.dumps(facts)
    data += b" " * (EXIT_FILE_ROOM - 1 - len(data)) + b"\n"
    try:
        fd = os.open(run_dir / EXIT_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return False
    try:
        return os.pwrite(fd, data, 0) == len(data)
    except OSError:
        return False
    finally:
        os.close(fd)


def remove_exit_file(run_dir: Path) -> None:
    """Remove exit.json once the final record holds what it said."""
    with contextlib.suppress(OSError):
        (run_dir / EXIT_FILE).unlink()


def read_exit_file(run_dir: Path) -> dict[str, object] | None:
    """What the supervisor wrote into exit.json when the program ended, if it did."""
    # Records come from other people's remotes too: `run_dir` may name any path.
    try:
        with open(run_dir / EXIT_FILE, "rb") as file:
            data = file.read(EXIT_FILE_MAX + 1)
        value = orjson.loads(data) if len(data) <= EXIT_FILE_MAX else None
    except (OSError, ValueError):  # ValueError: a NUL in the path, or not JSON
        return None
    return value if isinstance(value, dict) else None


def read_params(run_dir: Path) -> dict[str, object]:
    """Params the program gave through `gitexp.params(...)`, if any."""
    value = _read_json(run_dir / PARAMS_FILE)
    return value if isinstance(value, dict) else {}


def read_error(run_dir: Path) -> dict[str, object] | None:
    """The uncaught exception recorded by the child's hook, if any."""
    value = _read_json(run_dir / ERROR_FILE)
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None
    return {key: value.get(key) for key in ("type", "message", "traceback")}


def traceback_from_log(log_path: Path, tail_bytes: int = 65536) -> dict[str, object] | None:
    """The exception named on the last line of a Python traceback at the end of output.log.

    Used when the hook could not run (a program that replaced sys.excepthook, say).
    """
    tail = _log_tail(log_path, tail_bytes)
    start = tail.rfind("Traceback (most recent call last):")
    if start < 0:
        return None
    for line in tail[start:].splitlines()[1:]:
        match = EXCEPTION_LINE.match(line)
        if match:
            return {"type": match.group(1), "message": match.group(2) or "", "traceback": None}
    return None


def usage_error_from_log(log_path: Path) -> dict[str, object] | None:
    """The complaint of a command-line parser on the last line of output.log.

    argparse (and click, optparse) end with `<prog>: error: <message>` and exit 2.
    """
    lines = [line for line in _log_tail(log_path, 4096).splitlines() if line.strip()]
    match = USAGE_ERROR_LINE.match(lines[-1]) if lines else None
    if match is None:
        return None
    return {"type": "UsageError", "message": match.group(1).strip(), "traceback": None}


def _log_tail(log_path: Path, tail_bytes: int) -> str:
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, 2) - tail_bytes))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def read_artifacts(run_dir: Path) -> tuple[list[dict[str, object]], int]:
    """The entries of artifacts.jsonl, the last one of each name winning; and how many lines
    were unreadable (not a JSON object, or without a valid `name` and `path`).

    Names keep the position of their first entry. Only the documented fields are kept.
    """
    try:
        lines = (run_dir / ARTIFACTS_FILE).read_bytes().splitlines()
    except OSError:
        return [], 0
    entries: dict[str, dict[str, object]] = {}
    bad = 0
    for line in lines:
        if not line.strip():
            continue
        entry = _artifact_entry(line)
        if entry is None:
            bad += 1
            continue
        entries[str(entry["name"])] = entry
    return list(entries.values()), bad


def artifact_file(run_dir: Path, relative: object) -> Path | None:
    """Where an artifact entry's `path` points, or None when it would leave the run directory
    (an absolute path, `..`, or a symlink on the way that points out of it).

    Entries come from the program and from records fetched from other people's remotes.
    """
    if not is_relative_path(relative):
        return None
    path = run_dir.joinpath(*str(relative).split("/"))
    base = os.path.realpath(run_dir)
    if os.path.commonpath([base, os.path.realpath(path)]) != base:
        return None
    return path


def is_relative_path(relative: object) -> bool:
    """Whether `relative` is a plain path below a directory: no absolute path, `.` or `..`."""
    if not isinstance(relative, str) or not relative or "\0" in relative:
        return False
    parts = relative.split("/")
    return not relative.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def _artifact_entry(line: bytes) -> dict[str, object] | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not is_artifact_name(value.get("name")):
        return None
    if not is_relative_path(value.get("path")):
        return None
    return {key: value.get(key) for key in ARTIFACT_FIELDS}


def _read_json(path: Path) -> object:
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None

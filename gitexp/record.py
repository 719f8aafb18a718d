"""The run record: the JSON object stored as a git note on a run's snapshot commit.

The schema is a public contract, documented field by field in docs/format.md.
"""

from __future__ import annotations

import datetime as dt
import socket
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

import orjson
import pygit2

from gitexp import store
from gitexp.argparams import redact_remembered_secrets
from gitexp.errors import GitExpError

SCHEMA_VERSION = 1
STATUSES = ("running", "succeeded", "failed", "interrupted", "crashed", "saved")
FINISHED_STATUSES = ("succeeded", "failed", "interrupted", "crashed", "saved")
MAX_PID = 2**31 - 1  # psutil refuses anything beyond a C int (or below 1)


class RunRecord(TypedDict, total=False):
    """The record as docs/format.md documents it, field by field.

    Every field of RECORD_FIELDS is in a record gitexp writes (null until known); the others
    only when they apply. A record read back (`load_record`) stays a plain dict: it may come
    from other people's remotes or be edited by hand, so code reading one checks each value.
    """

    schema: int
    id: str
    name: str
    ref: str
    commit: str
    status: str
    command: list[str]
    cwd: str | None
    run_dir: str | None
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    exit_code: int | None
    signal: int | None
    interrupted_by: int  # only when `git exp run` itself got SIGINT, SIGTERM or SIGHUP
    host: dict[str, Any] | None
    python: dict[str, Any] | None
    packages: dict[str, str]
    gpus: list[dict[str, Any]]
    env: dict[str, str]
    git: dict[str, Any] | None
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    resources: dict[str, Any] | None
    message: str | None
    message_at: str | None
    tags: list[str]
    annotations: list[dict[str, Any]]
    deleted: str | None
    rerun_of: str | None
    reruns: list[str]
    outputs_dir: str | None  # only in a run made by `git exp rerun` without `--here`
    artifacts: list[dict[str, Any]]
    error: dict[str, Any] | None
    problems: list[str]  # only when something went wrong in recording itself


RECORD_FIELDS: tuple[str, ...] = (
    "schema", "id", "name", "ref", "commit", "status", "command", "cwd", "run_dir",
    "started_at", "ended_at", "duration_s", "exit_code", "signal", "host", "python",
    "packages", "gpus", "env", "git", "params", "metrics", "resources", "message",
    "message_at", "tags", "annotations", "deleted", "rerun_of", "reruns", "artifacts", "error",
)  # fmt: skip
# Fields gitexp derives and reads back (ids, refs, its own paths and times): secret values are
# never searched for there, so a short one cannot garble a run's identity.
IDENTITY_FIELDS = frozenset(
    {"schema", "id", "name", "ref", "commit", "status", "run_dir", "started_at", "ended_at",
     "message_at", "deleted", "rerun_of", "reruns"}
)  # fmt: skip


def now_iso(seconds: float | None = None) -> str:
    """The local time (now, or Unix time `seconds`) with its UTC offset, to the millisecond."""
    when = dt.datetime.now() if seconds is None else dt.datetime.fromtimestamp(seconds)
    return when.astimezone().isoformat(timespec="milliseconds")


def new_record(**fields: Any) -> RunRecord:
    """A record with every field of RECORD_FIELDS present (null until known), in a stable
    order."""
    record: Any = dict.fromkeys(RECORD_FIELDS)
    record.update(
        schema=SCHEMA_VERSION,
        status="running",
        params={},
        metrics={},
        tags=[],
        annotations=[],
        reruns=[],
        artifacts=[],
        packages={},
        gpus=[],
        env={},
        deleted=None,
    )
    record.update(fields)
    return record  # type: ignore[no-any-return]


def dump_record(record: Mapping[str, Any]) -> bytes:
    """Pretty-printed JSON with a final newline, as `git notes show` prints it.

    This is the one way a record reaches git, so the secret values this process knows
    (`gitexp.argparams.remember_secrets`) are replaced by `***` here, in every string of every
    field but the `IDENTITY_FIELDS`: an error message or traceback, a message, an
    annotation. Text that is not valid Unicode (a command-line argument with bytes that are
    not UTF-8 arrives as lone surrogates) is stored with backslash escapes (`\\udcff`).
    """
    record = {
        key: value if key in IDENTITY_FIELDS else redact_remembered_secrets(value)
        for key, value in record.items()
    }
    options = orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
    try:
        return orjson.dumps(record, option=options) + b"\n"
    except TypeError:
        return orjson.dumps(valid_unicode(record), option=options) + b"\n"


def valid_unicode(value: Any) -> Any:
    """`value` with every string (and key) made encodable as UTF-8, recursively."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {valid_unicode(key): valid_unicode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [valid_unicode(item) for item in value]
    return value


def load_record(data: bytes) -> dict[str, Any]:
    """Parse a note; raises ValueError when it is not a JSON object."""
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("the record is not a JSON object")
    return value


def effective_status(record: dict[str, Any], hostname: str | None = None) -> str:
    """The status to show: a `running` run whose supervisor is gone is `crashed`.

    Liveness is only known on the host that started the run: there, the supervisor's pid
    must exist and have the recorded start time (a reused pid has another).
    """
    status = record.get("status")
    if status != "running":
        return status if isinstance(status, str) else "unknown"
    host = record.get("host")
    if not isinstance(host, dict) or host.get("hostname") != (hostname or socket.gethostname()):
        return "running"
    return "running" if process_alive(host.get("pid"), host.get("pid_started_at")) else "crashed"


def process_alive(pid: object, started_at: object) -> bool:
    """Whether process `pid` exists and was started at Unix time `started_at` (to a second)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or not 0 < pid <= MAX_PID:
        return True  # nothing to check against (a hand-edited record?): do not guess
    import psutil  # only for running runs: listings of finished ones never load it

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
        return False
    return not isinstance(started_at, (int, float)) or abs(created - started_at) < 1.0


def list_field(record: dict[str, Any], key: str) -> list[Any]:
    """A copy of a list field of `record`, or [] when it is missing or not a list."""
    value = record.get(key)
    return list(value) if isinstance(value, list) else []


def write_first_record(
    repo: pygit2.Repository,
    ref: str,
    commit: str,
    record: RunRecord,
    signature: pygit2.Signature,
) -> None:
    """Write the record of a run whose ref was just created; if that fails in any way,
    delete the ref again, so no run is ever left without a record."""
    try:
        store.update_note(repo, commit, lambda _old: dump_record(record), signature)
    except BaseException:
        store.delete_ref(repo, ref)
        raise


def update_record(
    repo: pygit2.Repository,
    commit: str,
    mutate: Callable[[dict[str, Any]], None],
    signature: pygit2.Signature,
) -> dict[str, Any]:
    """Change a run's record in place with `mutate`, atomically; returns the saved record.

    `mutate` runs on the latest record on every compare-and-swap attempt, so an annotation
    made while the run is going and the run's own final update never lose each other.
    A missing or unreadable record raises GitExpError; nothing is written then.
    """

    def change(old: bytes | None) -> bytes:
        if old is None:
            raise ValueError("the run has no record")
        record = load_record(old)
        mutate(record)
        return dump_record(record)

    try:
        return load_record(store.update_note(repo, commit, change, signature))
    except ValueError as exc:
        raise GitExpError(f"cannot change the record of {commit[:12]}: {exc}") from None

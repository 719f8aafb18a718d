"""The API a training program uses while it runs under ``git exp run``.

``log`` appends JSON lines to ``$GITEXP_METRICS``; ``params`` merges values into
``$GITEXP_RUN_DIR/params.json``; ``artifact`` copies a file into
``$GITEXP_RUN_DIR/artifacts/`` and appends its entry to ``artifacts.jsonl``. Outside a run
every call is a cheap no-op.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time

# Not imported from typing: typing alone takes several times this module's import time.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping
    from pathlib import Path
    from typing import Any

__all__ = ["artifact", "current_run", "flush", "log", "params"]

FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 1.0
ARTIFACTS_DIR = "artifacts"
ARTIFACTS_FILE = "artifacts.jsonl"
COPY_CHUNK = 1024 * 1024

# Taken only to write the buffer out, never to add to it: log() appends without a lock
# (bytearray.extend of bytes is one atomic step under the GIL) and writers only ever remove
# what they copied from the front. Re-entrant: a signal handler may flush while its thread
# holds the lock.
_lock = threading.RLock()
# Separate from _lock: copying a large checkpoint must not block log() in other threads.
_artifact_lock = threading.Lock()
_resolved = False
_metrics_path: str | None = None
_run_dir: str | None = None
_run_name: str | None = None
_fd: int | None = None
_buffer = bytearray()
# Monotonic time by which buffered points are due on disk (checked by the next log call).
_deadline = 0.0
_monotonic = time.monotonic
# True once resolved inside a run whose points need no extra field: log()'s short path.
_fast = False
# The thread writing the buffer out, while it does; and a SIGTERM that arrived meanwhile.
_flushing_thread: int | None = None
_deferred_signal = 0
_atexit_registered = False
# Bound on first use inside a run, so that importing gitexp outside one never loads orjson.
_dumps: Callable[..., bytes]
_line_options = 0
# Added to every point when non-zero ranks log too (GITEXP_ALL_RANKS=1).
_rank_field: dict[str, int] = {}
# torchrun and accelerate set RANK; SLURM, MPI launchers set the others.
RANK_VARIABLES = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK")


def _resolve() -> None:
    """Read the run's environment once; later calls use the cached values."""
    global _resolved, _metrics_path, _run_dir, _run_name, _deadline, _atexit_registered
    global _dumps, _line_options, _fast
    with _lock:
        if _resolved:
            return
        _metrics_path = os.environ.get("GITEXP_METRICS") or None
        _run_dir = os.environ.get("GITEXP_RUN_DIR") or None
        _run_name = os.environ.get("GITEXP_RUN") or None
        rank = _distributed_rank()
        if rank:
            # Under torchrun/accelerate/SLURM every process runs this code: only rank 0
            # records, unless asked otherwise; then each point says which rank logged it.
            _run_dir = None
            if os.environ.get("GITEXP_ALL_RANKS") == "1":
                _rank_field["_rank"] = rank
            else:
                _metrics_path = None
        if _metrics_path is not None:
            import orjson

            _dumps = orjson.dumps
            _line_options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE
            _deadline = _monotonic() + FLUSH_SECONDS
            if not _atexit_registered:
                atexit.register(flush)
                _flush_on_sigterm()
                _atexit_registered = True
        _resolved = True
        # Last: another thread may take the short path as soon as this is True.
        _fast = _metrics_path is not None and not _rank_field


def _flush_on_sigterm() -> None:
    """Flush buffered points when SIGTERM kills the program (atexit does not run then).

    Only where SIGTERM still has its default action, and only from the main thread (where
    Python allows installing handlers): the process then dies of SIGTERM as it would have.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def flush_then_die(signum: int, _frame: object) -> None:
        global _deferred_signal
        if _flushing_thread == threading.get_ident():
            # This handler interrupted this thread's own write of the buffer: dying now would
            # lose the points being written. That write finishes, then dies of the signal.
            _deferred_signal = signum
            return
        flush()
        _die_of(signum)

    signal.signal(signal.SIGTERM, flush_then_die)


def _die_of(signum: int) -> None:
    import signal

    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _distributed_rank() -> int:
    """This process's global rank in a distributed job (0 when not distributed)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.strip().isdigit():
            return int(value)
    return 0


def _reset_for_tests() -> None:
    """Drop buffered points and cached paths so the next call re-reads the environment."""
    global _resolved, _metrics_path, _run_dir, _run_name, _fd, _fast
    with _lock:
        _fast = False
        if _fd is not None:
            os.close(_fd)
        _fd = None
        _buffer.clear()
        _resolved = False
        _metrics_path = _run_dir = _run_name = None
        _rank_field.clear()


def _after_fork_in_child() -> None:
    # The parent still owns its buffered points and writes them itself; a lock that another
    # parent thread held at fork time would never be released here.
    global _lock, _artifact_lock, _deadline, _flushing_thread, _deferred_signal
    _lock = threading.RLock()
    _artifact_lock = threading.Lock()
    _buffer.clear()
    _flushing_thread = None
    _deferred_signal = 0
    _deadline = _monotonic() + FLUSH_SECONDS


os.register_at_fork(after_in_child=_after_fork_in_child)


def _to_json_value(value: Any) -> Any:
    """Turn a tensor-like or number-like object into something JSON can hold."""
    item = getattr(value, "item", None)
    if item is not None:
        try:
            return item()
        except Exception:
            pass
    try:
        return float(value)
    except Exception:
        return str(value)


def _encode_slow(record: Mapping[Any, Any]) -> bytes:
    """Encode a record the fast path rejected (non-string keys, ints beyond 64 bits, ...)."""
    cleaned = {str(key): value for key, value in record.items()}
    try:
        return _dumps(cleaned, default=_to_json_value, option=_line_options)
    except TypeError:
        return _dumps(
            {key: _to_json_value(value) for key, value in cleaned.items()},
            default=str,
            option=_line_options,
        )


def log(data: Mapping[str, Any] | None = None, /, **metrics: Any) -> None:
    """Record one point, e.g. ``log(step=3, loss=0.2)`` or ``log({"loss": 0.2}, step=3)``.

    ``step`` (an int, or None for none) is written first; a ``step=`` keyword wins over a
    ``"step"`` key in ``data``.
    """
    # The hot path of a training loop, so _append is inlined. `step` is not a parameter of
    # its own: in log(step=3, loss=0.2) the keyword dict, already in the order to write, is
    # the point (copying it to put step first cost about a sixth of the call).
    if data is None and _fast:
        for first in metrics:
            # The dict is the point when step came first with a value, or not at all.
            if (metrics[first] is None) if first == "step" else ("step" in metrics):
                _log_general(None, metrics)
                return
            break
        try:
            # default and option passed by position: parsing them as keywords costs a third
            # of what orjson takes to encode a small point.
            line = _dumps(metrics, _to_json_value, _line_options)
        except TypeError:  # orjson.JSONEncodeError
            line = _encode_slow(metrics)
        _buffer.extend(line)
        if len(_buffer) >= FLUSH_BYTES or _monotonic() >= _deadline:
            _flush_due()
    else:
        _log_general(data, metrics)


def _log_general(data: Mapping[str, Any] | None, metrics: dict[str, Any]) -> None:
    """log() for the calls its short path leaves: outside a run, with ``data``, ranks, ..."""
    if not _resolved:
        _resolve()
    if _metrics_path is None:
        return
    step = metrics.pop("step", None)
    if data is None:
        record = metrics if step is None else {"step": step, **metrics}
    else:
        record = {} if step is None else {"step": step}
        record.update(data)
        record.update(metrics)
        if step is not None:
            record["step"] = step  # the keyword wins over a "step" inside data
    if _rank_field:
        record = {**record, **_rank_field}
    try:
        line = _dumps(record, _to_json_value, _line_options)
    except TypeError:  # orjson.JSONEncodeError
        line = _encode_slow(record)
    _append(line)


def _append(line: bytes) -> None:
    """Buffer one encoded point; write the buffer out when it is full or due."""
    _buffer.extend(line)
    if len(_buffer) >= FLUSH_BYTES or _monotonic() >= _deadline:
        _flush_due()


def _flush_due() -> None:
    with _lock:
        _write_buffer_locked()


def flush() -> None:
    """Write buffered points to the metrics file now (also done at exit)."""
    if not _resolved:
        _resolve()
    if _metrics_path is None:
        return
    with _lock:
        _write_buffer_locked()


def _write_buffer_locked() -> None:
    """Write out the buffer; the caller holds ``_lock``."""
    global _flushing_thread, _deadline
    if _flushing_thread is not None:
        # A signal handler in the thread that is writing: the points it added stay buffered
        # for the next write (copying now would write the outer write's bytes twice).
        return
    _flushing_thread = threading.get_ident()
    try:
        _deadline = _monotonic() + FLUSH_SECONDS
        _write_buffered_points()
        if _deferred_signal:
            _write_buffered_points()  # what signal handlers logged during the write
    finally:
        _flushing_thread = None
        if _deferred_signal:
            _die_of(_deferred_signal)


def _write_buffered_points() -> None:
    global _fd, _metrics_path, _fast
    if not _buffer:
        return
    # Copy, then remove that many bytes from the front: points other threads (or a signal
    # handler) append meanwhile stay, and the bytes written are never resized under os.write.
    data = bytes(_buffer)
    del _buffer[: len(data)]
    if _metrics_path is None:
        return
    try:
        if _fd is None:
            # O_APPEND keeps writes from this process, forked children and programs in
            # other languages from overwriting each other's lines.
            _fd = os.open(_metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        written = 0
        while written < len(data):
            written += os.write(_fd, data[written:])
    except OSError as exc:
        # Losing metrics must not kill a training job that may have run for days.
        print(
            f"gitexp: cannot write metrics to {_metrics_path}: {exc}; further points are dropped",
            file=sys.stderr,
        )
        _fast = False
        _metrics_path = None


def params(values: Mapping[str, Any] | argparse.Namespace) -> None:
    """Merge hyperparameters (a mapping or an argparse Namespace) into the run's params."""
    if not _resolved:
        _resolve()
    if _run_dir is None:
        return
    import argparse

    import orjson

    from gitexp.argparams import redact_params

    new = vars(values) if isinstance(values, argparse.Namespace) else dict(values)
    # params.json travels with the run directory (`git exp export`): no secrets in it either.
    new = redact_params(new)
    path = os.path.join(_run_dir, "params.json")
    with _lock:
        merged = _read_params(path)
        for key, value in new.items():
            merged[str(key)] = _params_value(value)
        data = orjson.dumps(
            merged,
            default=str,
            option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2,
        )
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as file:
                file.write(data + b"\n")
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _params_value(value: Any) -> Any:
    """``value`` if orjson can write it (maybe via ``str`` inside), else ``str(value)``."""
    import orjson

    try:
        orjson.dumps(
            value, default=str, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
        )
    except TypeError:
        return str(value)
    return value


def _read_params(path: str) -> dict[str, Any]:
    import orjson

    try:
        with open(path, "rb") as file:
            existing = orjson.loads(file.read())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return existing if isinstance(existing, dict) else {}


def current_run() -> str | None:
    """The running experiment's ``<name>/<id>``, or None outside a run."""
    if not _resolved:
        _resolve()
    return _run_name


def artifact(path: str | os.PathLike[str], name: str | None = None) -> Path | None:
    """Record the file at ``path`` (a checkpoint, say) as an artifact of the run.

    The file is copied to ``$GITEXP_RUN_DIR/artifacts/<name>`` (``name`` defaults to the
    file's base name), so the program may overwrite ``path`` later without changing what was
    recorded; its size and sha256 go into the record. Recording a name again replaces it.
    Returns the stored copy's path, or None outside a run. A name that is empty, ``.``,
    ``..`` or contains ``/`` or NUL raises ValueError; reading or writing raises OSError.
    """
    source = os.fsdecode(path)
    stored_name = _artifact_name(source, name)
    if not _resolved:
        _resolve()
    if _run_dir is None:
        return None
    import datetime
    import pathlib

    import orjson

    directory = os.path.join(_run_dir, ARTIFACTS_DIR)
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, stored_name)
    tmp = os.path.join(directory, f".tmp.{os.getpid()}.{threading.get_ident()}")
    try:
        size, sha256 = _copy_hashing(source, tmp)
        entry = {
            "name": stored_name,
            "path": f"{ARTIFACTS_DIR}/{stored_name}",
            "size": size,
            "sha256": sha256,
            "source": source,
            "logged_at": datetime.datetime.now().astimezone().isoformat(timespec="milliseconds"),
        }
        # Rename and entry under one lock: the last entry of a name describes the file there.
        with _artifact_lock:
            os.replace(tmp, target)
            _append_line(
                os.path.join(_run_dir, ARTIFACTS_FILE),
                orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE),
            )
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return pathlib.Path(target)


def _artifact_name(source: str, name: str | None) -> str:
    """The name to store ``source`` under; refuses anything that could leave the run dir."""
    if not source or "\0" in source:
        raise ValueError(f"gitexp.artifact: invalid path {source!r}")
    candidate = os.path.basename(source) if name is None else name
    if not is_artifact_name(candidate):
        raise ValueError(
            f"gitexp.artifact: invalid artifact name {candidate!r}: use a plain file name "
            "(not empty, '.' or '..', without '/' or NUL)"
        )
    return candidate


def is_artifact_name(name: object) -> bool:
    """A plain file name: not empty, ``.`` or ``..``, without ``/`` or NUL."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\0" not in name
        and (os.altsep is None or os.altsep not in name)
    )


def _copy_hashing(source: str, copy: str) -> tuple[int, str]:
    """Copy ``source`` to ``copy``, hashing on the way; (size, sha256) of what was copied.

    A copy, not a hard link: a program that rewrites its checkpoint in place would otherwise
    change the recorded artifact too.
    """
    import hashlib

    digest = hashlib.sha256()
    size = 0
    with open(source, "rb") as src, open(copy, "wb") as dst:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _append_line(path: str, line: bytes) -> None:
    # O_APPEND and one write per entry: lines from threads, forked workers and programs in
    # other languages never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)

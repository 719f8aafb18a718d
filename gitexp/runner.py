"""Supervising the program of a run: stream its output, forward signals, measure it.

The program runs in our process group, so the terminal's job control (Ctrl-Z, window size,
reading stdin) works as it would without gitexp. That also means a Ctrl-C typed at the
terminal reaches the program directly; we must not forward that one again, or a Python
program would see a second KeyboardInterrupt in the middle of its clean-up. Telling a
terminal's signal (si_code SI_KERNEL) from a `kill` needs siginfo, hence `sigtimedwait`.
Through `git exp`, git forwards the same Ctrl-C to us a second time: one interrupt.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

SI_KERNEL = 0x80
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WAITED = {*FORWARDED, signal.SIGCHLD}
DUPLICATE_WINDOW_S = 1.0
SAMPLE_INTERVAL_S = 1.0
# After the program exits, its pipes are drained while bytes keep moving (a slow terminal
# showing the last megabytes), but not forever: a background grandchild may hold them open.
PIPE_DRAIN_S = 2.0
PIPE_DRAIN_MAX_S = 10.0
DRAIN_BACKLOG = 64 * 1024
# The stdout pipe is enlarged to a whole read (where the kernel lets us) so that a fast
# writer hands over a megabyte per wake-up instead of 64 KiB. Only stdout: enlarged pipes
# count against the user's pipe quota (fs.pipe-user-pages-soft, 64 MiB by default), past
# which every new pipe of that user, in any program, is cut to a page or two; 1 MiB per run
# leaves room for 64 runs at once, and stderr rarely carries volume.
PIPE_SIZE = 1024 * 1024
READ_SIZE = 1024 * 1024
HELD_LINE_MAX = 64 * 1024
TERMINAL_WRITE = 64 * 1024  # small enough that a slow terminal still shows progress


@dataclass
class ProcessOutcome:
    """How the program ended and what it cost."""

    exit_code: int | None
    signal: int | None
    interrupted_by: int | None
    duration_s: float
    peak_rss_bytes: int
    cpu_seconds: float
    output_error: str | None = None
    ended_at: float = 0.0  # Unix time the program ended (before its output was drained)

    @property
    def exit_status(self) -> int:
        """What a shell reports: the exit code, or 128+N for death by signal N."""
        if self.signal is not None:
            return 128 + self.signal
        return self.exit_code if self.exit_code is not None else 1


class OutputTee:
    """Copies the program's output to our terminal and to output.log, whatever fails."""

    def __init__(self, log_path: Path) -> None:
        self._lock = threading.Lock()
        self.error: str | None = None
        self.moved = 0  # bytes read or shown so far: how draining tells progress from a hang
        try:
            self._log_fd: int | None = os.open(
                log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            self._log_fd = None
            self.error = f"cannot write {log_path}: {exc.strerror}"

    def pump(self, source_fd: int, terminal_fd: int) -> None:
        """Read `source_fd` to its end; a dead terminal or a full disk stops only that copy."""
        # One preallocated buffer, read into and written from in place: no copy per chunk
        # beyond the kernel's. An unfinished line is kept at its start until its end arrives.
        buffer = bytearray(HELD_LINE_MAX + READ_SIZE)
        view = memoryview(buffer)
        held = 0
        terminal_ok = True
        while True:
            try:
                count = os.readv(source_fd, [view[held:]])
            except OSError:
                break
            if not count:
                break
            self.moved += count
            end = held + count
            if terminal_ok:
                terminal_ok = self._show(terminal_fd, view[held:end])
            # The log gets whole lines (or \r-ended progress updates) of each stream: an
            # unbuffered Python prints text and newline in two writes, and the other
            # stream's line must not land between them.
            cut = _line_end(buffer, held, end)
            if end - cut > HELD_LINE_MAX:
                cut = end
            if cut:
                self._log(view[:cut])
                rest = bytes(view[cut:end])
                view[: len(rest)] = rest
                held = len(rest)
            else:
                held = end
        if held:
            self._log(view[:held])
        view.release()

    def _show(self, terminal_fd: int, data: memoryview) -> bool:
        """Copy to the terminal; False once it is gone (EPIPE, EIO): the log still gets all."""
        for start in range(0, len(data), TERMINAL_WRITE):
            if not _write_all(terminal_fd, data[start : start + TERMINAL_WRITE]):
                return False
            self.moved += min(TERMINAL_WRITE, len(data) - start)
        return True

    def _log(self, chunk: bytes | memoryview) -> None:
        with self._lock:
            if self._log_fd is None:
                return
            try:
                _write_all(self._log_fd, chunk, raise_errors=True)
            except OSError as exc:
                # A full or read-only disk must not stop the program: keep the terminal copy.
                self.error = f"output.log stopped: {exc.strerror or exc}"
                os.close(self._log_fd)
                self._log_fd = None

    def close(self) -> None:
        with self._lock:
            if self._log_fd is not None:
                os.close(self._log_fd)
                self._log_fd = None


def supervise(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    on_started: Callable[[int], None] | None = None,
    kill_grace_s: float = 10.0,
    executable: str | None = None,
) -> ProcessOutcome:
    """Run `argv` to its end, teeing stdout/stderr into `log_path`. Never uses a shell."""
    pending: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda signum, _frame: pending.append(signum)) for sig in WAITED
    }
    tee = OutputTee(log_path)
    started = time.monotonic()
    try:
        process, sources = _spawn(argv, cwd, env, executable)
    except BaseException:
        tee.close()
        _restore(previous)
        raise
    signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    try:
        streams = list(zip(sources, (1, 2), strict=True))
        pumps = [_start_pump(tee, source, fd) for source, fd in streams]
        if on_started is not None:
            on_started(process.pid)
        watcher = _Watcher(process, kill_grace_s)
        for signum in pending:
            watcher.handle(signum, origin_kernel=False)
        status, usage = watcher.wait()
        ended, ended_at = time.monotonic(), time.time()
        _drain(pumps, tee)
        for pump, (source, _) in zip(pumps, streams, strict=False):
            if not pump.is_alive():
                os.close(source)
    finally:
        tee.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WAITED)
        _restore(previous)
    code = os.waitstatus_to_exitcode(status)
    return ProcessOutcome(
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        interrupted_by=watcher.interrupted_by,
        duration_s=round(ended - started, 3),
        peak_rss_bytes=max(watcher.peak_rss, usage.ru_maxrss * 1024),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        output_error=tee.error,
        ended_at=ended_at,
    )


class _Watcher:
    """Waits for the program while handling signals and sampling its memory."""

    def __init__(self, process: subprocess.Popen[bytes], kill_grace_s: float) -> None:
        self.process = process
        self.kill_grace_s = kill_grace_s
        self.interrupted_by: int | None = None
        self.peak_rss = 0
        self._last_terminal_interrupt = -1e9
        self._kill_at: float | None = None

    def wait(self) -> tuple[int, resource.struct_rusage]:
        next_sample = time.monotonic()
        while True:
            pid, status, usage = os.wait4(self.process.pid, os.WNOHANG)
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                return status, usage
            now = time.monotonic()
            if now >= next_sample:
                self._sample()
                next_sample = now + SAMPLE_INTERVAL_S
            if self._kill_at is not None and now >= self._kill_at:
                self._send(signal.SIGKILL)
                self._kill_at = None
            info = signal.sigtimedwait(WAITED, min(0.5, max(0.0, next_sample - now)))
            if info is not None and info.si_signo != signal.SIGCHLD:
                self.handle(info.si_signo, origin_kernel=info.si_code == SI_KERNEL)

    def handle(self, signum: int, origin_kernel: bool) -> None:
        if signum == signal.SIGCHLD:
            return
        self.interrupted_by = self.interrupted_by or signum
        now = time.monotonic()
        if origin_kernel:
            # The terminal sent it to the whole process group: the program has it already.
            self._last_terminal_interrupt = now
        elif now - self._last_terminal_interrupt > DUPLICATE_WINDOW_S:
            self._send(signum)
        if signum != signal.SIGINT and self._kill_at is None:
            self._kill_at = now + self.kill_grace_s

    def _send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signum)

    def _sample(self) -> None:
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0
        for proc in tree:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        self.peak_rss = max(self.peak_rss, total)


def _spawn(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], executable: str | None
) -> tuple[subprocess.Popen[bytes], list[int]]:
    """Start the program with stdout and stderr on two pipes; returns the pipes' read ends."""
    # Our own pipes rather than Popen's: they are enlarged before the program's first write.
    fds: list[int] = []
    try:
        for _ in range(2):
            fds.extend(os.pipe())
        _enlarge_pipe(fds[1])
        process = subprocess.Popen(
            list(argv), executable=executable, cwd=cwd, env=dict(env), stdout=fds[1], stderr=fds[3]
        )
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    os.close(fds[1])  # the program holds the write ends now: its exit is our end of file
    os.close(fds[3])
    return process, [fds[0], fds[2]]


def _drain(pumps: Sequence[threading.Thread], tee: OutputTee) -> None:
    """Wait for the pumps to reach end of file while a backlog drains (up to a limit).

    Each wait lasts PIPE_DRAIN_S; another follows only when that one moved at least
    DRAIN_BACKLOG bytes (a slow terminal showing the last megabytes), so a background process
    the program left behind, printing a line now and then, holds the run only PIPE_DRAIN_S.
    """
    deadline = time.monotonic() + PIPE_DRAIN_MAX_S
    while True:
        before = tee.moved
        stop = time.monotonic() + PIPE_DRAIN_S
        for pump in pumps:
            pump.join(max(0.0, stop - time.monotonic()))
        if not any(pump.is_alive() for pump in pumps):
            return
        if tee.moved - before < DRAIN_BACKLOG or time.monotonic() >= deadline:
            return


def _start_pump(tee: OutputTee, source_fd: int, terminal_fd: int) -> threading.Thread:
    thread = threading.Thread(target=tee.pump, args=(source_fd, terminal_fd), daemon=True)
    thread.start()
    return thread


def _line_end(buffer: bytearray, start: int, end: int) -> int:
    """Where the last line or progress update (\\r) in `buffer[start:end]` ends; 0 if none."""
    newline = buffer.rfind(b"\n", start, end)
    # Look for \r only after that newline: a chunk without any must not be scanned twice.
    carriage = buffer.rfind(b"\r", max(newline + 1, start), end)
    return max(newline, carriage) + 1


def _enlarge_pipe(fd: int) -> None:
    """Grow a pipe to PIPE_SIZE; refused (pipe-max-size, the user's pipe quota) is fine."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, PIPE_SIZE)


def _write_all(fd: int, data: bytes | memoryview, raise_errors: bool = False) -> bool:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            # A terminal left non-blocking (by another program sharing it) is full for now.
            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            if raise_errors:
                raise
            return False  # the terminal is gone (EPIPE, EIO): the log still gets everything
        view = view[written:]
    return True


def _restore(previous: Mapping[signal.Signals, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]

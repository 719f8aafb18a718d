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
import os
import resource
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
PIPE_DRAIN_S = 2.0
CHUNK = 64 * 1024


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
        try:
            self._log_fd: int | None = os.open(
                log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
        except OSError as exc:
            self._log_fd = None
            self.error = f"cannot write {log_path}: {exc.strerror}"

    def pump(self, source_fd: int, terminal_fd: int) -> None:
        """Read `source_fd` to its end; a dead terminal or a full disk stops only that copy."""
        terminal_ok = True
        partial = b""
        while True:
            try:
                chunk = os.read(source_fd, CHUNK)
            except OSError:
                break
            if not chunk:
                break
            if terminal_ok:
                terminal_ok = _write_all(terminal_fd, chunk)
            # The log gets whole lines (or \r-ended progress updates) of each stream: an
            # unbuffered Python prints text and newline in two writes, and the other
            # stream's line must not land between them.
            data = partial + chunk
            cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
            if len(data) - cut > CHUNK:
                cut = len(data)
            partial = data[cut:]
            if cut:
                self._log(data[:cut])
        if partial:
            self._log(partial)

    def _log(self, chunk: bytes) -> None:
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
        process = subprocess.Popen(
            list(argv),
            executable=executable,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except BaseException:
        tee.close()
        _restore(previous)
        raise
    signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    try:
        streams = [(process.stdout, 1), (process.stderr, 2)]
        pumps = [_start_pump(tee, stream.fileno(), fd) for stream, fd in streams]  # type: ignore[union-attr]
        if on_started is not None:
            on_started(process.pid)
        watcher = _Watcher(process, kill_grace_s)
        for signum in pending:
            watcher.handle(signum, origin_kernel=False)
        status, usage = watcher.wait()
        for pump, (stream, _) in zip(pumps, streams, strict=False):
            # A background grandchild may hold the pipe open forever: stop waiting for it.
            pump.join(PIPE_DRAIN_S)
            if not pump.is_alive():
                stream.close()  # type: ignore[union-attr]
    finally:
        tee.close()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, WAITED)
        _restore(previous)
    code = os.waitstatus_to_exitcode(status)
    return ProcessOutcome(
        exit_code=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        interrupted_by=watcher.interrupted_by,
        duration_s=round(time.monotonic() - started, 3),
        peak_rss_bytes=max(watcher.peak_rss, usage.ru_maxrss * 1024),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 3),
        output_error=tee.error,
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


def _start_pump(tee: OutputTee, source_fd: int, terminal_fd: int) -> threading.Thread:
    thread = threading.Thread(target=tee.pump, args=(source_fd, terminal_fd), daemon=True)
    thread.start()
    return thread


def _write_all(fd: int, data: bytes, raise_errors: bool = False) -> bool:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except InterruptedError:
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

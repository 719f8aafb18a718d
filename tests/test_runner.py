"""The supervisor's output pass-through: every byte to the terminal and to output.log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from gitexp import runner

# Lines from empty to several reads long, \r progress updates, and writes of any size that
# end wherever they end, so lines and updates straddle reads and the held-back line.
MIXED_OUTPUT = """
import os, random
rng = random.Random(7)
parts = []
for _ in range(400):
    kind = rng.random()
    if kind < 0.04:
        body = b"L" * rng.randrange(60_000, 1_200_000)
    elif kind < 0.25:
        body = b"".join(b"\\rstep %d" % i for i in range(rng.randrange(1, 5000)))
    else:
        body = bytes(rng.randrange(32, 127) for _ in range(rng.randrange(0, 200)))
    parts.append(body + rng.choice([b"\\n", b"\\r", b"\\r\\n", b""]))
data = b"".join(parts) + b"no newline at the end"
open(os.environ["EXPECTED"], "wb").write(data)
view = memoryview(data)
while view:
    size = rng.choice([1, 17, 4096, 65536, 300_000, 3_000_000])
    written = os.write(1, view[:size])
    view = view[written:]
"""


def supervise_program(tmp_path: Path, source: str) -> tuple[runner.ProcessOutcome, Path]:
    program = tmp_path / "program.py"
    program.write_text(textwrap.dedent(source))
    env = {**os.environ, "EXPECTED": str(tmp_path / "expected.bin")}
    log = tmp_path / "output.log"
    outcome = runner.supervise([sys.executable, str(program)], tmp_path, env, log)
    return outcome, log


def assert_same_bytes(actual: bytes, expected: bytes) -> None:
    """Equality that reports where megabytes differ instead of printing them."""
    if actual != expected:
        first = next(
            (i for i, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
            min(len(actual), len(expected)),
        )
        pytest.fail(f"{len(actual)} bytes, expected {len(expected)}; first difference at {first}")


def test_every_byte_reaches_the_terminal_and_the_log_in_order(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    outcome, log = supervise_program(tmp_path, MIXED_OUTPUT)

    assert outcome.exit_code == 0 and outcome.output_error is None
    expected = (tmp_path / "expected.bin").read_bytes()
    assert len(expected) > 10 * runner.READ_SIZE
    shown = capfdbinary.readouterr()
    assert_same_bytes(shown.out, expected)
    assert shown.err == b""
    assert_same_bytes(log.read_bytes(), expected)


def test_a_line_held_across_big_reads_is_not_split_by_the_other_stream(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    lines = b"".join(b"line %d\n" % i for i in range(300_000))  # several reads' worth
    outcome, log = supervise_program(
        tmp_path,
        f"""
        import os, time
        os.write(1, {lines!r} + b"half of a std")
        time.sleep(0.3)
        os.write(2, b"to stderr\\n")
        time.sleep(0.3)
        os.write(1, b"out line\\n")
        """,
    )

    assert outcome.exit_code == 0
    assert_same_bytes(log.read_bytes(), lines + b"to stderr\nhalf of a stdout line\n")
    shown = capfdbinary.readouterr()
    assert_same_bytes(shown.out, lines + b"half of a stdout line\n")
    assert shown.err == b"to stderr\n"


def pipe_size_allowed() -> bool:
    limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    return os.geteuid() == 0 or limit >= runner.PIPE_SIZE


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not pipe_size_allowed(),
    reason="pipes cannot be enlarged here",
)
def test_the_programs_stdout_pipe_is_enlarged_before_it_starts(
    tmp_path: Path, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    outcome, log = supervise_program(
        tmp_path,
        """
        import fcntl
        print(fcntl.fcntl(1, fcntl.F_GETPIPE_SZ), fcntl.fcntl(2, fcntl.F_GETPIPE_SZ))
        """,
    )

    assert outcome.exit_code == 0
    # stderr keeps the default size: enlarged pipes count against the user's pipe quota.
    stdout_size, stderr_size = map(int, log.read_text().split())
    assert stdout_size == runner.PIPE_SIZE
    assert stderr_size < runner.PIPE_SIZE
    assert capfdbinary.readouterr().out == log.read_bytes()


def test_a_program_that_cannot_start_leaves_no_descriptor_open(tmp_path: Path) -> None:
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        runner.supervise([str(tmp_path / "missing")], tmp_path, os.environ, tmp_path / "log")
    assert set(os.listdir("/proc/self/fd")) == before


def test_a_line_ends_at_the_last_newline_or_carriage_return() -> None:
    buffer = bytearray(b"x" * 10 + b"\n" + b"y" * 5 + b"\r" + b"z" * 3)
    assert runner._line_end(buffer, 0, len(buffer)) == 17
    assert runner._line_end(buffer, 0, 11) == 11
    assert runner._line_end(buffer, 17, len(buffer)) == 0


# Supervises argv[1] with its terminal on our stdout, then writes what ended where to argv[2].
SUPERVISOR = """
import json, os, sys
from pathlib import Path
from gitexp import runner
runner.PIPE_DRAIN_S = 0.2
log = Path(sys.argv[2]) / "output.log"
outcome = runner.supervise([sys.executable, sys.argv[1]], Path(sys.argv[2]), os.environ, log)
Path(sys.argv[2], "outcome.json").write_text(json.dumps(outcome.exit_code))
Path(sys.argv[2], "timing.json").write_text(json.dumps([outcome.duration_s, outcome.ended_at]))
"""


def start_supervisor(tmp_path: Path, program: str) -> subprocess.Popen[bytes]:
    (tmp_path / "program.py").write_text(textwrap.dedent(program))
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path / "program.py"), str(tmp_path)],
        stdout=subprocess.PIPE,
    )


def test_a_slow_terminal_still_gets_and_logs_everything_after_the_program_exits(
    tmp_path: Path,
) -> None:
    block = b"".join(b"%07d\n" % i for i in range(8192))  # 64 KiB
    supervisor = start_supervisor(
        tmp_path, f"import os\nfor _ in range(48):\n    os.write(1, {block!r})\n"
    )
    assert supervisor.stdout is not None
    shown = bytearray()
    while chunk := supervisor.stdout.read1(65536):  # far slower than the program writes
        shown += chunk
        time.sleep(0.02)
    assert supervisor.wait(timeout=60) == 0

    assert json.loads((tmp_path / "outcome.json").read_text()) == 0
    assert_same_bytes(bytes(shown), block * 48)
    assert_same_bytes((tmp_path / "output.log").read_bytes(), block * 48)


def test_a_silent_grandchild_holding_the_pipes_does_not_keep_the_run_open(tmp_path: Path) -> None:
    supervisor = start_supervisor(
        tmp_path,
        """
        import subprocess, sys
        print("started", subprocess.Popen(["sleep", "60"]).pid, flush=True)
        """,
    )
    stdout, _ = supervisor.communicate(timeout=60)
    sleeper = int(stdout.split()[1])
    try:
        assert psutil.pid_exists(sleeper)  # the run ended while the pipes were still open
        assert json.loads((tmp_path / "outcome.json").read_text()) == 0
        assert (tmp_path / "output.log").read_bytes() == stdout
    finally:
        os.kill(sleeper, signal.SIGKILL)


def test_a_grandchild_printing_now_and_then_holds_the_run_briefly_and_is_not_timed(
    tmp_path: Path,
) -> None:
    # Like a program that starts a server and exits: the server keeps the pipes, printing.
    supervisor = start_supervisor(
        tmp_path,
        """
        import subprocess, sys
        loop = "for i in $(seq 300); do echo still here $(date +%s.%N); sleep 0.1; done"
        print("started", subprocess.Popen(["sh", "-c", loop]).pid, flush=True)
        """,
    )
    assert supervisor.stdout is not None
    printer = int(supervisor.stdout.readline().split()[1])
    try:
        supervisor.wait(timeout=60)
        assert psutil.pid_exists(printer)  # still printing: the run did not wait for it
        logged = (tmp_path / "output.log").read_text().splitlines()
        times = [float(line.split()[2]) for line in logged if line.startswith("still here")]
        assert 0 < len(times) < 30  # a drain window's worth, not 30 s of it
        _, ended_at = json.loads((tmp_path / "timing.json").read_text())
        assert ended_at < max(times)  # when the program ended, not when the drain did
    finally:
        os.kill(printer, signal.SIGKILL)


def test_a_non_blocking_terminal_that_fills_up_still_gets_everything(tmp_path: Path) -> None:
    # Some programs sharing a terminal leave it O_NONBLOCK: a full one answers EAGAIN.
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    data = b"".join(b"%07d\n" % i for i in range(200_000))  # far more than the pipe holds
    (tmp_path / "program.py").write_text(
        "import sys\nsys.stdout.buffer.write(b''.join(b'%07d\\n' % i for i in range(200_000)))\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path / "program.py"), str(tmp_path)],
        stdout=write_end,
    )
    os.close(write_end)
    shown = bytearray()
    while chunk := os.read(read_end, 65536):
        shown += chunk
        time.sleep(0.001)  # a reader slower than the program
    os.close(read_end)
    assert supervisor.wait(timeout=60) == 0
    assert_same_bytes(bytes(shown), data)
    assert_same_bytes((tmp_path / "output.log").read_bytes(), data)

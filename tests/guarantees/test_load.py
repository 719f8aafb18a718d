"""Load: many runs and annotations at once, huge output, millions of metric points.

Memory is measured, never time: the bounds are generous so that only holding the whole
output or the whole metric series in memory fails them.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from conftest import git
from helpers_e2e import BIN_DIR, fsck, git_exp, note, only_run, run_refs, user_env, write_program

MIB = 1024 * 1024
SUPERVISOR_RSS_LIMIT = 200 * MIB
PROGRAM_RSS_LIMIT = 200 * MIB

# 200 MiB of numbered 64 KiB blocks, then a million `\r` progress updates (about 20 MB).
HUGE_OUTPUT = """
import os
block = bytearray(b"y" * 65536)
for i in range(3200):
    block[:8] = b"%07d\\n" % i
    os.write(1, block)
progress = b"".join(b"\\rstep %7d/1000000" % i for i in range(1_000_000))
for start in range(0, len(progress), 1 << 20):
    os.write(1, progress[start : start + (1 << 20)])
os.write(1, b"\\n")
"""

# A metric every step for two million steps, through the child API.
LONG_RUN = """
import gitexp
log = gitexp.log
for step in range(2_000_000):
    log(step=step, loss=1.0 / (step + 1))
"""


def expected_huge_output() -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    block = bytearray(b"y" * 65536)
    for i in range(3200):
        block[:8] = b"%07d\n" % i
        digest.update(block)
        size += len(block)
    progress = b"".join(b"\rstep %7d/1000000" % i for i in range(1_000_000)) + b"\n"
    digest.update(progress)
    return size + len(progress), digest.hexdigest()


class PeakRss:
    """Samples a process's resident memory in a thread until it exits."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while True:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
                self.samples += 1
            except psutil.Error:
                return
            time.sleep(0.02)

    def join(self) -> int:
        self._thread.join(30)
        return self.peak


def run_supervised(repo: Path, *args: str) -> tuple[subprocess.CompletedProcess[bytes], int]:
    """`git-exp run ARGS` (the process git starts for `git exp`), its stdout discarded as a
    terminal would show it; returns the result and the supervisor's peak RSS."""
    process = subprocess.Popen(
        [str(BIN_DIR / "git-exp"), "run", *args],
        cwd=repo,
        env=user_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sampler = PeakRss(process.pid)
    _, stderr = process.communicate(timeout=300)
    peak = sampler.join()
    assert sampler.samples > 0
    return subprocess.CompletedProcess(process.args, process.returncode, b"", stderr), peak


@pytest.mark.slow
def test_huge_output_is_logged_whole_with_flat_supervisor_memory(repo_dir: Path) -> None:
    write_program(repo_dir / "huge.py", HUGE_OUTPUT)

    result, peak = run_supervised(repo_dir, "huge.py")

    assert result.returncode == 0, result.stderr
    _, _, record = only_run(repo_dir)
    log = Path(record["run_dir"]) / "output.log"
    size, digest = expected_huge_output()
    assert log.stat().st_size == size
    with log.open("rb") as handle:
        assert hashlib.file_digest(handle, "sha256").hexdigest() == digest
    assert "problems" not in record
    assert peak < SUPERVISOR_RSS_LIMIT, f"supervisor peak RSS {peak / MIB:.0f} MiB"


@pytest.mark.slow
def test_millions_of_metric_points_keep_both_sides_bounded(repo_dir: Path) -> None:
    write_program(repo_dir / "long.py", LONG_RUN)

    result, peak = run_supervised(repo_dir, "long.py")

    assert result.returncode == 0, result.stderr
    _, _, record = only_run(repo_dir)
    loss = record["metrics"]["loss"]
    assert loss["count"] == 2_000_000
    assert loss["step"] == 1_999_999
    assert loss["max"] == 1.0 and loss["last"] == 1.0 / 2_000_000
    lines = (Path(record["run_dir"]) / "metrics.jsonl").read_bytes().count(b"\n")
    assert lines == 2_000_000
    program_peak = record["resources"]["peak_rss_bytes"]
    assert program_peak < PROGRAM_RSS_LIMIT, f"program peak RSS {program_peak / MIB:.0f} MiB"
    assert peak < SUPERVISOR_RSS_LIMIT, f"supervisor peak RSS {peak / MIB:.0f} MiB"


WORKER = """
import sys, time, gitexp
gitexp.log(step=1, worker=float(sys.argv[1]))
time.sleep(1)
"""


@pytest.mark.slow
def test_32_runs_with_annotations_and_listings_at_the_same_time(repo_dir: Path) -> None:
    write_program(repo_dir / "worker.py", WORKER)
    git(repo_dir, "add", "worker.py")
    git(repo_dir, "commit", "-q", "-m", "worker")
    env = user_env()
    runs = [
        subprocess.Popen(
            ["git", "exp", "run", "worker.py", str(n)],
            cwd=repo_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for n in range(32)
    ]
    expected: dict[str, tuple[str, str]] = {}  # ref -> ("tag" or "note", value)
    listings: list[subprocess.CompletedProcess[str]] = []
    rng = random.Random(5)

    def annotate(ref: str) -> subprocess.CompletedProcess[str]:
        run = ref.removeprefix("refs/experiments/")
        if rng.random() < 0.5:
            expected[ref] = ("tag", f"t{rng.randrange(10**6)}")
            return git_exp(repo_dir, "tag", run, expected[ref][1], env=env)
        expected[ref] = ("note", f"seen while running {run}")
        return git_exp(repo_dir, "note", run, "--append", expected[ref][1], env=env)

    with ThreadPoolExecutor(4) as pool:
        futures = []
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        while len(seen) < 32 and time.monotonic() < deadline:
            for ref in sorted(set(run_refs(repo_dir)) - seen):
                seen.add(ref)
                futures.append(pool.submit(annotate, ref))
            listings.append(git_exp(repo_dir, "log", "--json", env=env))
        outcomes = [run.communicate(timeout=180) for run in runs]
        annotations = [future.result() for future in futures]

    assert [run.returncode for run in runs] == [0] * 32, outcomes
    assert all(result.returncode == 0 for result in annotations), [
        result.stderr for result in annotations if result.returncode
    ]
    for listing in listings:
        assert listing.returncode == 0, listing.stderr
        assert isinstance(json.loads(listing.stdout), list)
    refs = run_refs(repo_dir)
    assert len(refs) == 32 and set(refs) == set(expected)
    workers = set()
    for ref, commit in refs.items():
        record = note(repo_dir, commit)
        kind, value = expected[ref]
        assert record["status"] == "succeeded"
        assert record["ended_at"] is not None
        if kind == "tag":
            assert record["tags"] == [value], ref
        else:
            assert [entry["text"] for entry in record["annotations"]] == [value], ref
        workers.add(record["metrics"]["worker"]["last"])
    assert workers == {float(n) for n in range(32)}
    fsck(repo_dir)

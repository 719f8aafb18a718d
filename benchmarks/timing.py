"""Timing helpers: run commands, take the median of interleaved repetitions."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil


class BenchmarkError(Exception):
    """A step of the benchmark failed (a command exited non-zero, a tool misbehaved)."""


@dataclass
class Command:
    """A command line to time, run from `cwd` with `env`, output discarded or sent to a file."""

    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str] | None = None
    stdout_path: Path | None = None
    before: Callable[[], None] | None = None  # untimed preparation before every repetition

    def run(self) -> float:
        """Seconds the command took, wall clock; raises BenchmarkError when it fails."""
        if self.before is not None:
            self.before()
        with open(self.stdout_path or os.devnull, "wb") as out:
            start = time.perf_counter()
            result = subprocess.run(
                list(self.argv),
                cwd=self.cwd,
                env=dict(self.env) if self.env is not None else None,
                stdout=out,
                stderr=subprocess.PIPE,
                check=False,
            )
            elapsed = time.perf_counter() - start
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise BenchmarkError(f"{' '.join(self.argv)} exited {result.returncode}: {message}")
        return elapsed


@dataclass
class Samples:
    """Repeated measurements of one thing; the median is what the table shows."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def interleaved(
    subjects: Mapping[str, Callable[[], float]], repetitions: int, warmup: int = 1
) -> dict[str, Samples]:
    """Run every subject once per round, `repetitions` rounds, after `warmup` untimed rounds.

    Interleaving spreads the machine's noise (other tenants, frequency changes) over all
    subjects alike instead of penalising whichever ran during a slow spell.
    """
    for _ in range(warmup):
        for measure in subjects.values():
            measure()
    samples = {name: Samples() for name in subjects}
    for _ in range(repetitions):
        for name, measure in subjects.items():
            samples[name].values.append(measure())
    return samples


def peak_rss_while(process: subprocess.Popen[bytes], interval: float = 0.01) -> Callable[[], int]:
    """Sample the resident memory of `process` alone (not its children) until it exits.

    Returns a function giving the peak seen, in bytes; call it after `process.wait()`.
    """
    peak = [0]
    watched = psutil.Process(process.pid)

    def sample() -> None:
        while process.poll() is None:
            try:
                peak[0] = max(peak[0], watched.memory_info().rss)
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                return
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def result() -> int:
        sampler.join()
        return peak[0]

    return result

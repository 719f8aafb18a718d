"""`git exp run`: snapshot the working tree, record the run, supervise the program.

The pipeline is gitexp.launch, which `git exp rerun` runs too.
"""

from __future__ import annotations

from gitexp.launch import RunRequest, RunResult, run_experiment

__all__ = ["RunRequest", "RunResult", "run_experiment"]

"""`git exp show`: one run's whole record."""

from __future__ import annotations

import pygit2

from gitexp.listing import Run, list_runs, resolve_run_spec


def show_run(repo: pygit2.Repository, spec: str) -> Run:
    """The run `spec` names, with its record."""
    return resolve_run_spec(list_runs(repo), spec)

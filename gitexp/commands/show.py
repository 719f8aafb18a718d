"""`git exp show`: one run's whole record."""

from __future__ import annotations

import pygit2

from gitexp.listing import Run
from gitexp.runspec import find_run


def show_run(repo: pygit2.Repository, spec: str) -> Run:
    """The run `spec` names, with its record."""
    return find_run(repo, spec)

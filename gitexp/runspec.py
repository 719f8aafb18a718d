"""Run specs: what users type to name one run (`<name>/<id>`, an id or a suffix, `@~N`)."""

from __future__ import annotations

import re

import pygit2

from gitexp.errors import GitExpError, InvalidNameError, UnknownRunError
from gitexp.ids import printable
from gitexp.listing import Run, list_runs

MAX_SPEC_LENGTH = 256
RELATIVE_SPEC = re.compile(r"@(?:~(?P<back>\d+))?\Z")
SPEC_CHARACTERS = re.compile(r"[A-Za-z0-9._/@~-]+\Z")


def find_run(repo: pygit2.Repository, spec: str) -> Run:
    """The run `spec` names in `repo`."""
    return resolve_run_spec(list_runs(repo), spec)


def resolve_run_spec(runs: list[Run], spec: str) -> Run:
    """The one run `spec` names (see docs/format.md for the forms); `runs` newest first.

    `@` and `@~N` count the runs `git exp log` shows, so deleted runs are skipped; an id names
    a deleted run too.
    """
    _check_spec(spec)
    relative = RELATIVE_SPEC.match(spec)
    if relative:
        back = int(relative.group("back") or 0)
        runs = [run for run in runs if not run.deleted]
        if back >= len(runs):
            total = f"{len(runs)} run" + ("" if len(runs) == 1 else "s")
            raise UnknownRunError(f"unknown run '{spec}': there are only {total}")
        return runs[back]
    matches = _matching(runs, spec)
    if not matches:
        raise UnknownRunError(f"unknown run '{spec}' (git exp log lists runs)")
    if len(matches) > 1:
        shown = ", ".join(run.id for run in matches[:10])
        more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
        raise GitExpError(f"ambiguous run '{spec}': it matches {shown}{more}")
    return matches[0]


def _matching(runs: list[Run], spec: str) -> list[Run]:
    if spec.startswith("refs/"):
        return [run for run in runs if run.ref == spec]
    if "/" in spec:
        name, _, rest = spec.partition("/")
        exact = [run for run in runs if run.name == name and run.run_id == rest]
        return exact or [run for run in runs if run.name == name and run.run_id.endswith(rest)]
    exact = [run for run in runs if run.run_id == spec]
    return exact or [run for run in runs if run.run_id.endswith(spec)]


def _check_spec(spec: str) -> None:
    if not spec or len(spec) > MAX_SPEC_LENGTH or not SPEC_CHARACTERS.match(spec):
        shown = printable(spec[:60]) + ("..." if len(spec) > 60 else "")
        raise InvalidNameError(
            f"invalid run '{shown}': name a run by <name>/<id>, <id>, a suffix of it, @ or @~N"
        )

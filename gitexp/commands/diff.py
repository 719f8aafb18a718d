"""`git exp diff`: what differs between two runs (or revisions, or the working tree).

The code part is git's own `git diff` of the two sides' trees, so the user's diff config
(algorithm, colours, textconv drivers, renames, quoting) and git's pathspec magic apply; the
record part compares params, metric summaries and the environment, and only exists when both
sides are runs with a record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import pygit2

from gitexp.gitcmd import GitResult, run_git
from gitexp.listing import list_runs
from gitexp.revisions import Side, resolve_side, worktree_side

SUMMARY_STATS = ("last", "min", "max")
PYTHON_FIELDS = ("version", "implementation", "executable")
HOST_FIELDS = ("hostname", "platform", "cpu_count", "memory_bytes")
DELTA_DIGITS = 12  # round away float noise such as 0.30000000000000004
STATUS_NAMES = {
    "A": "added",
    "D": "deleted",
    "M": "modified",
    "R": "renamed",
    "C": "copied",
    "T": "type-changed",
}
DIFFERS = 1  # `git diff --exit-code`: the trees differ
CodeFormat = Literal["patch", "stat", "name-only"]


@dataclass
class RunDiff:
    """The two sides and the record part; a section is None when it was not compared."""

    a: Side
    b: Side
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    environment: dict[str, Any] | None

    def record_differs(self) -> bool:
        """Whether a param, a metric summary or the environment differs."""
        if self.params is None or self.environment is None:
            return False
        return (
            _any_change(self.params)
            or any(metric_changed(entry) for entry in (self.metrics or {}).values())
            or any(_any_change(section) for section in self.environment.values())
        )

    def as_json(self, code: list[FileChange] | None) -> dict[str, Any]:
        """The diff as `git exp diff --json` prints it, with the code part `code`."""
        return {
            "a": self.a.as_json(),
            "b": self.b.as_json(),
            "code": None if code is None else [change.as_json() for change in code],
            "params": self.params,
            "metrics": self.metrics,
            "environment": self.environment,
            "skipped": self.b.skipped,
        }


@dataclass(frozen=True)
class FileChange:
    """One file's change as `git diff --raw --numstat` reports it (paths are git's bytes)."""

    status: str
    old_path: bytes | None
    new_path: bytes | None
    old_mode: str | None
    new_mode: str | None
    old_id: str | None
    new_id: str | None
    similarity: int | None
    binary: bool
    additions: int
    deletions: int

    def as_json(self) -> dict[str, Any]:
        """The change as `git exp diff --json` prints it; bytes that are not UTF-8 as `\\xNN`."""
        return {
            "status": STATUS_NAMES.get(self.status, self.status),
            "old_path": _json_path(self.old_path),
            "new_path": _json_path(self.new_path),
            "old_mode": self.old_mode,
            "new_mode": self.new_mode,
            "old_id": self.old_id,
            "new_id": self.new_id,
            "similarity": self.similarity,
            "binary": self.binary,
            "additions": self.additions,
            "deletions": self.deletions,
        }


@dataclass(frozen=True)
class CodeText:
    """git's own output for the code part, and whether the trees differ there."""

    output: bytes
    differs: bool


def _any_change(section: Any) -> bool:
    """Whether a section (a mapping diff, changed fields, or the GPUs) reports anything."""
    if isinstance(section, dict) and set(section) == {"changed", "added", "removed"}:
        return any(section.values())
    return bool(section)


def diff_runs(
    repo: pygit2.Repository,
    a_spec: str,
    b_spec: str | None,
    environ: Mapping[str, str],
) -> RunDiff:
    """Compare `a_spec` with `b_spec` (runs or revisions), or with the working tree when None
    (snapshotted by git, run with `environ`)."""
    runs = list_runs(repo)
    a = resolve_side(repo, runs, a_spec)
    b = resolve_side(repo, runs, b_spec) if b_spec is not None else worktree_side(repo, environ)
    old, new = a.record, b.record
    if old is None or new is None:
        return RunDiff(a, b, None, None, None)
    return RunDiff(
        a,
        b,
        params=diff_mapping(_mapping(old, "params"), _mapping(new, "params")),
        metrics=diff_metrics(_mapping(old, "metrics"), _mapping(new, "metrics")),
        environment=diff_environment(old, new),
    )


def code_text(
    repo: pygit2.Repository,
    diff: RunDiff,
    paths: Sequence[str],
    environ: Mapping[str, str],
    *,
    cwd: str | None = None,
    code_format: CodeFormat = "patch",
    colour: bool = False,
    stat_width: int | None = None,
) -> CodeText:
    """`git diff` of the two sides' trees as git prints it, under the user's diff config.

    `paths` are pathspecs as typed in `cwd` (git's own magic applies); `colour` is whether
    git colours (decide with `git_colours`), `stat_width` overrides git's `--stat` width.
    """
    options = ["--color=always" if colour else "--no-color"]
    if code_format == "stat":
        options.append(f"--stat-width={stat_width}" if stat_width else "--stat")
    elif code_format == "name-only":
        options.append("--name-only")
    result = _git_diff(repo, diff, [*options, "--exit-code"], paths, environ, cwd)
    return CodeText(result.stdout_bytes, result.returncode == DIFFERS)


def code_changes(
    repo: pygit2.Repository,
    diff: RunDiff,
    paths: Sequence[str],
    environ: Mapping[str, str],
    *,
    cwd: str | None = None,
) -> list[FileChange]:
    """The changed files, in git's order, from `git diff --raw -z --numstat -M`."""
    options = ["--raw", "-z", "--numstat", "-M", "--no-abbrev"]
    return parse_raw_numstat(_git_diff(repo, diff, options, paths, environ, cwd).stdout_bytes)


def git_colours(repo: pygit2.Repository, environ: Mapping[str, str], stdout_is_tty: bool) -> bool:
    """Whether `git diff` would colour its output on this stdout (`color.diff`, `color.ui`,
    `auto` on a terminal or in git's pager, TERM=dumb): git's own decision."""
    args = ["config", "--get-colorbool", "color.diff", "true" if stdout_is_tty else "false"]
    return run_git(repo, args, environ).stdout.strip() == "true"


def _git_diff(
    repo: pygit2.Repository,
    diff: RunDiff,
    options: list[str],
    paths: Sequence[str],
    environ: Mapping[str, str],
    cwd: str | None,
) -> GitResult:
    trees = [str(diff.a.tree.id), str(diff.b.tree.id)]
    return run_git(
        repo,
        ["diff", *options, *trees, "--", *paths],
        environ,
        allowed_codes=(0, DIFFERS),
        work_tree=repo.workdir is not None,  # .gitattributes (textconv) as `git diff` reads it
        cwd=cwd,
    )


def parse_raw_numstat(output: bytes) -> list[FileChange]:
    """Files from `git diff --raw -z --numstat`: the raw records, then one numstat each."""
    fields = output.split(b"\0")
    raw: list[tuple[list[str], list[bytes]]] = []
    position = 0
    while position < len(fields) and fields[position].startswith(b":"):
        meta = fields[position][1:].decode("ascii").split(" ")
        count = 2 if meta[4][0] in "RC" else 1
        raw.append((meta, fields[position + 1 : position + 1 + count]))
        position += 1 + count
    changes = []
    for meta, names in raw:
        added, deleted, _ = fields[position].split(b"\t", 2)
        position += 3 if len(names) == 2 else 1  # a rename's numstat: "a\td\t", old, new
        changes.append(_file_change(meta, names, added, deleted))
    return changes


def _file_change(meta: list[str], names: list[bytes], added: bytes, deleted: bytes) -> FileChange:
    old_mode, new_mode, old_id, new_id, status = meta
    letter, score = status[0], status[1:]
    old_path = None if letter == "A" else names[0]
    new_path = None if letter == "D" else names[-1]
    binary = added == b"-"
    return FileChange(
        status=letter,
        old_path=old_path,
        new_path=new_path,
        old_mode=None if old_path is None else old_mode,
        new_mode=None if new_path is None else new_mode,
        old_id=None if old_path is None else old_id,
        new_id=None if new_path is None else new_id,
        similarity=int(score) if score else None,
        binary=binary,
        additions=0 if binary else int(added),
        deletions=0 if binary else int(deleted),
    )


def _json_path(path: bytes | None) -> str | None:
    return None if path is None else path.decode("utf-8", "backslashreplace")


def diff_mapping(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """`changed` ({key: {a, b}}), `added` and `removed` keys between two flat mappings."""
    changed = {
        key: {"a": old[key], "b": new[key]}
        for key in old
        if key in new and not same_value(old[key], new[key])
    }
    return {
        "changed": changed,
        "added": {key: value for key, value in new.items() if key not in old},
        "removed": {key: value for key, value in old.items() if key not in new},
    }


def same_value(a: Any, b: Any) -> bool:
    """Equal as JSON: `1`, `1.0` and `true` differ (Python's == says they are equal)."""
    try:
        return orjson.dumps(a, option=orjson.OPT_SORT_KEYS) == orjson.dumps(
            b, option=orjson.OPT_SORT_KEYS
        )
    except TypeError:
        return bool(a == b)


def diff_metrics(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Per metric (A's order, then B's new ones): both summaries and the delta B−A."""
    result: dict[str, Any] = {}
    for name in [*old, *(name for name in new if name not in old)]:
        a, b = _summary(old.get(name)), _summary(new.get(name))
        delta = None
        if a is not None and b is not None:
            delta = {stat: _delta(a[stat], b[stat]) for stat in SUMMARY_STATS}
        result[name] = {"a": a, "b": b, "delta": delta}
    return result


def metric_changed(entry: Mapping[str, Any]) -> bool:
    """Whether a metric's summaries differ between the sides (or it is on one side only)."""
    a, b = entry.get("a"), entry.get("b")
    if a is None or b is None:
        return True
    return any(not same_value(a[stat], b[stat]) for stat in SUMMARY_STATS)


def diff_environment(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Python, packages, allowlisted variables, GPUs and host: only what differs."""
    return {
        "python": _changed_fields(_mapping(old, "python"), _mapping(new, "python"), PYTHON_FIELDS),
        "packages": diff_mapping(_mapping(old, "packages"), _mapping(new, "packages")),
        "env": diff_mapping(_mapping(old, "env"), _mapping(new, "env")),
        "gpus": _diff_gpus(old.get("gpus"), new.get("gpus")),
        "host": _changed_fields(_mapping(old, "host"), _mapping(new, "host"), HOST_FIELDS),
    }


def _changed_fields(
    old: Mapping[str, Any], new: Mapping[str, Any], fields: tuple[str, ...]
) -> dict[str, Any]:
    return {
        name: {"a": old.get(name), "b": new.get(name)}
        for name in fields
        if not same_value(old.get(name), new.get(name))
    }


def _diff_gpus(old: Any, new: Any) -> dict[str, Any] | None:
    # A GPU's uuid is unique to the card: what matters is which models and drivers were used.
    if same_value(_gpu_models(old), _gpu_models(new)):
        return None
    return {"a": old if isinstance(old, list) else [], "b": new if isinstance(new, list) else []}


def _gpu_models(gpus: Any) -> list[Any]:
    if not isinstance(gpus, list):
        return []
    return [
        {key: gpu.get(key) for key in ("name", "memory_total_mib", "driver_version")}
        for gpu in gpus
        if isinstance(gpu, dict)
    ]


def _mapping(record: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = record.get(key)
    return value if isinstance(value, dict) else {}


def _summary(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        return None
    return {stat: value.get(stat) for stat in SUMMARY_STATS}


def _delta(a: Any, b: Any) -> float | int | None:
    if not _is_number(a) or not _is_number(b):
        return None
    delta = b - a
    if isinstance(delta, float):
        if not math.isfinite(delta):
            return None
        return float(f"{delta:.{DELTA_DIGITS}g}")
    return int(delta)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

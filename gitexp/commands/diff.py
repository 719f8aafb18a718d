"""`git exp diff`: what differs between two runs (or revisions, or the working tree).

The code part is `git diff` of the two snapshots; the record part compares params, metric
summaries and the environment, and only exists when both sides are runs with a record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import pygit2

from gitexp.listing import list_runs
from gitexp.revisions import Side, resolve_side, worktree_side
from gitexp.treediff import FileChange, Pathspec, diff_trees

SUMMARY_STATS = ("last", "min", "max")
PYTHON_FIELDS = ("version", "implementation", "executable")
HOST_FIELDS = ("hostname", "platform", "cpu_count", "memory_bytes")
DELTA_DIGITS = 12  # round away float noise such as 0.30000000000000004


@dataclass
class RunDiff:
    """Everything `git exp diff` reports; a section is None when it was not compared."""

    a: Side
    b: Side
    code: list[FileChange] | None
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    environment: dict[str, Any] | None

    @property
    def compared_records(self) -> bool:
        """Whether both sides had a record to compare."""
        return self.params is not None

    def has_differences(self) -> bool:
        """Whether anything reported differs (what `--exit-code` tells)."""
        if self.code:
            return True
        if self.params is None or self.environment is None:
            return False
        return (
            _any_change(self.params)
            or any(metric_changed(entry) for entry in (self.metrics or {}).values())
            or any(_any_change(section) for section in self.environment.values())
        )

    def as_json(self) -> dict[str, Any]:
        """The diff as `git exp diff --json` prints it."""
        return {
            "a": self.a.as_json(),
            "b": self.b.as_json(),
            "code": None if self.code is None else [change.as_json() for change in self.code],
            "params": self.params,
            "metrics": self.metrics,
            "environment": self.environment,
            "skipped": self.b.skipped,
        }


def _any_change(section: Any) -> bool:
    """Whether a section (a mapping diff, changed fields, or the GPUs) reports anything."""
    if isinstance(section, dict) and set(section) == {"changed", "added", "removed"}:
        return any(section.values())
    return bool(section)


def diff_runs(
    repo: pygit2.Repository,
    a_spec: str,
    b_spec: str | None,
    pathspec: Pathspec | None = None,
    code: bool = True,
    environ: Mapping[str, str] | None = None,
) -> RunDiff:
    """Compare `a_spec` with `b_spec` (runs or revisions), or with the working tree when None
    (snapshotted by git run with `environ`, which that case needs)."""
    runs = list_runs(repo)
    a = resolve_side(repo, runs, a_spec)
    if b_spec is not None:
        b = resolve_side(repo, runs, b_spec)
    elif environ is None:
        raise TypeError("diff_runs needs `environ` to snapshot the working tree")
    else:
        b = worktree_side(repo, environ)
    changes = diff_trees(repo, a.tree, b.tree, pathspec) if code else None
    old, new = a.record, b.record
    if old is None or new is None:
        return RunDiff(a, b, changes, None, None, None)
    return RunDiff(
        a,
        b,
        changes,
        params=diff_mapping(_mapping(old, "params"), _mapping(new, "params")),
        metrics=diff_metrics(_mapping(old, "metrics"), _mapping(new, "metrics")),
        environment=diff_environment(old, new),
    )


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

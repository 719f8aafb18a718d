"""The human-readable record part of `git exp diff` (git prints the code part itself)."""

from __future__ import annotations

from typing import Any

import click
import orjson

from gitexp.cli.tables import render_table
from gitexp.commands.diff import RunDiff, metric_changed

MARKS = {"changed": ("~", "yellow"), "added": ("+", "green"), "removed": ("-", "red")}


def record_lines(diff: RunDiff) -> list[str]:
    """The record part: params, metric summaries, environment (empty when neither is a run)."""
    if diff.a.kind != "run" and diff.b.kind != "run":
        return []
    if diff.params is None:
        return [_not_compared(diff)]
    lines = [
        f"A: {click.style(diff.a.label, fg='yellow')}   B: {click.style(diff.b.label, fg='yellow')}"
    ]
    lines += _mapping_section("params", {"": diff.params})
    lines += _metrics_section(diff.metrics or {})
    lines += _environment_section(diff.environment or {})
    return lines


def _not_compared(diff: RunDiff) -> str:
    for letter, side in (("A", diff.a), ("B", diff.b)):
        if side.kind == "run" and side.record is None:
            return f"record: {letter} ({side.label}) has no readable record; only the code differs"
    for letter, side in (("A", diff.a), ("B", diff.b)):
        if side.kind == "worktree":
            return f"record: {letter} is the working tree, not a run: only the code is compared"
        if side.kind == "revision":
            return (
                f"record: {letter} ({side.label}) is a git revision, not a run: "
                "only the code is compared"
            )
    return "record: not compared"


def _mapping_section(title: str, groups: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for group, changes in groups.items():
        prefix = f"{group}." if group else ""
        for key, change in changes.get("changed", {}).items():
            lines.append(_mark("changed", f"{prefix}{key}: {_arrow(change['a'], change['b'])}"))
        for key, value in changes.get("added", {}).items():
            lines.append(_mark("added", f"{prefix}{key}: {_text(value)}"))
        for key, value in changes.get("removed", {}).items():
            lines.append(_mark("removed", f"{prefix}{key}: {_text(value)}"))
    return [f"{title}:" + ("" if lines else " same"), *lines]


def _mark(kind: str, text: str) -> str:
    symbol, colour = MARKS[kind]
    return f"  {click.style(symbol, fg=colour)} {text}"


def _arrow(a: Any, b: Any) -> str:
    return f"{_text(a)} → {_text(b)}"


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _metrics_section(metrics: dict[str, Any]) -> list[str]:
    if not metrics:
        return ["metrics: none"]
    rows = []
    for name, entry in metrics.items():
        for index, stat in enumerate(("last", "min", "max")):
            a, b, delta = ((entry.get(side) or {}).get(stat) for side in ("a", "b", "delta"))
            label = name if index == 0 else ""
            rows.append([label, stat, _number(a), _number(b), _signed(delta)])
            if entry.get("a") is None or entry.get("b") is None:
                break  # on one side only: its last value says it
    table = render_table(["metric", "stat", "A", "B", "B−A"], rows, "text")
    unchanged = "" if any(metric_changed(entry) for entry in metrics.values()) else " same"
    return [f"metrics:{unchanged}", *("  " + line for line in table.split("\n"))]


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return _text(value)


def _signed(value: Any) -> str:
    if value == 0 and not isinstance(value, bool):
        return "0"
    if isinstance(value, float):
        return f"{value:+.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:+d}"
    return "-"


def _environment_section(environment: dict[str, Any]) -> list[str]:
    lines = []
    for group in ("python", "host"):
        for key, change in environment.get(group, {}).items():
            lines.append(_mark("changed", f"{group}.{key}: {_arrow(change['a'], change['b'])}"))
    lines += _mapping_section("", {"packages": environment.get("packages", {})})[1:]
    lines += _mapping_section("", {"env": environment.get("env", {})})[1:]
    gpus = environment.get("gpus")
    if gpus:
        lines.append(_mark("changed", f"gpus: {_gpus(gpus['a'])} → {_gpus(gpus['b'])}"))
    return ["environment:" + ("" if lines else " same"), *lines]


def _gpus(gpus: list[Any]) -> str:
    if not gpus:
        return "none"
    names = [str(gpu.get("name")) if isinstance(gpu, dict) else "?" for gpu in gpus]
    counted = {name: names.count(name) for name in names}
    return ", ".join(f"{count}× {name}" for name, count in counted.items())

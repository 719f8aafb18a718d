"""Summaries of a run's ``metrics.jsonl``: one JSON object per line, such as
``{"step": 3, "loss": 0.2}``, appended by ``gitexp.log`` or by programs in any language.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# Indexes into the per-metric list that summarize_metrics updates in its hot loop.
_LAST, _MIN, _MAX, _COUNT, _STEP = range(5)


@dataclass
class MetricsSummary:
    """Per metric, in order of first appearance: ``last``, ``min``, ``max``, ``count``, ``step``.

    ``bad_lines`` counts lines that were not a JSON object (e.g. torn by a killed program).
    """

    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_lines: int = 0


MetricPoint = tuple[int | float | None, dict[str, Any]]


def read_metric_points(path: Path) -> Iterator[MetricPoint | None]:
    """Each non-blank line of ``path`` as ``(step, point)``, or None for a line that is not
    a JSON object (torn by a killed program, say); a missing file has no lines.

    ``step`` is the point's own step when it is a finite number, else None (the point then
    takes the number of earlier points of each metric: docs/format.md, Metrics). The one
    reader of ``metrics.jsonl``: summaries, series, plots and the dashboard all go through it.
    """
    # Written for speed: `summarize_metrics` reads a 1,000,000-line file in about 1.5 s.
    loads, decode_error, isfinite = orjson.loads, orjson.JSONDecodeError, math.isfinite
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return
    with file:
        for line in file:
            try:
                point = loads(line)
            except decode_error:
                if line.isspace():
                    continue
                point = _parse_leniently(line)
            if type(point) is not dict:
                yield None
                continue
            step = point.get("step")
            if not (type(step) is int or (type(step) is float and isfinite(step))):
                step = None
            yield step, point


def _parse_leniently(line: bytes) -> Any:
    """The JSON value on a line orjson refused, or None when it is not valid JSON."""
    # orjson is strict; Python's json module writes NaN/Infinity literals and orjson
    # also refuses integers beyond 64 bits, so give such lines a second chance.
    try:
        return json.loads(line)
    except ValueError:
        return None


def summarize_metrics(path: Path) -> MetricsSummary:
    """Summarize ``path``; a missing file gives an empty summary."""
    stats: dict[str, list[Any]] = {}
    bad_lines = 0
    isfinite = math.isfinite
    for item in read_metric_points(path):
        if item is None:
            bad_lines += 1
            continue
        step, point = item
        for name, value in point.items():
            if name == "step" or name.startswith("_"):
                continue  # `_rank` and other `_` keys describe the point, they are not metrics
            value_type = type(value)
            if value_type is float:
                finite = isfinite(value)
            elif value_type is int:
                finite = True
            elif value is None:
                finite = False
            else:
                continue  # strings, bools, lists: not numbers to summarize
            entry = stats.get(name)
            if entry is None:
                entry = stats[name] = [None, None, None, 0, None]
            entry[_STEP] = entry[_COUNT] if step is None else step
            entry[_COUNT] += 1
            if finite:
                entry[_LAST] = value
                if entry[_MIN] is None or value < entry[_MIN]:
                    entry[_MIN] = value
                if entry[_MAX] is None or value > entry[_MAX]:
                    entry[_MAX] = value
            else:
                entry[_LAST] = None
    metrics = {
        name: {
            "last": entry[_LAST],
            "min": entry[_MIN],
            "max": entry[_MAX],
            "count": entry[_COUNT],
            "step": entry[_STEP],
        }
        for name, entry in stats.items()
    }
    return MetricsSummary(metrics=metrics, bad_lines=bad_lines)

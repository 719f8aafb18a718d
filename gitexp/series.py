"""A run's metric series, read back from ``metrics.jsonl`` for plots, notebooks and the dashboard.

The points follow the rules of the summaries in the record (docs/format.md, Metrics): a point
without ``step`` takes the number of earlier points of that metric; only numbers count. Reading
a running run's file is safe: a line still being written is skipped, so the series is what the
program has logged so far.
"""

from __future__ import annotations

import math
from pathlib import Path

from gitexp import rundir
from gitexp.metrics import read_metric_points

Point = tuple[float, float]
Series = dict[str, list[Point]]
# Enough to draw a curve as wide as a screen; more points only slow the plotting libraries.
DEFAULT_MAX_POINTS = 2000


def metric_series(run_dir: Path | None, rank: int = 0) -> Series:
    """Each metric's ``(step, value)`` points, metrics in order of first appearance.

    Only the points of process ``rank`` count (points without ``_rank`` are rank 0's, see
    GITEXP_ALL_RANKS). A value logged as null, NaN or infinite becomes NaN, a gap in a curve.
    A missing directory or file gives no series.
    """
    series: Series = {}
    if run_dir is None:
        return series
    isfinite = math.isfinite
    for item in read_metric_points(run_dir / rundir.METRICS_FILE):
        if item is None:
            continue  # counted in the record's `problems` when the run ended
        step, point = item
        if point.get("_rank", 0) != rank:
            continue
        for name, value in point.items():
            if name == "step" or name.startswith("_"):
                continue
            value_type = type(value)
            if value_type is int or value_type is float:
                number = float(value) if isfinite(value) else math.nan
            elif value is None:
                number = math.nan
            else:
                continue  # strings, bools, lists: not numbers to plot
            points = series.get(name)
            if points is None:
                points = series[name] = []
            points.append((len(points) if step is None else step, number))
    return series


def downsample(points: list[Point], max_points: int = DEFAULT_MAX_POINTS) -> list[Point]:
    """At most about ``max_points`` points, keeping each bucket's lowest and highest value.

    Keeping both extremes (not every n-th point) keeps spikes visible; the first and last
    points are always kept.
    """
    if len(points) <= max_points or max_points < 4:
        return points
    buckets = max_points // 2
    size = len(points) / buckets
    kept: list[Point] = []
    for index in range(buckets):
        bucket = points[int(index * size) : int((index + 1) * size)]
        finite = [point for point in bucket if not math.isnan(point[1])]
        if not finite:
            kept.append(bucket[0])
            continue
        low = min(finite, key=lambda point: point[1])
        high = max(finite, key=lambda point: point[1])
        kept.extend(sorted({low, high}, key=bucket.index))
    if kept[0] != points[0]:
        kept.insert(0, points[0])
    if kept[-1] != points[-1]:
        kept.append(points[-1])
    return kept

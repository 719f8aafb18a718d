"""Turning records into short human text: durations, times, values, headline metrics."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

HEADLINE_LIMIT = 3
PREFERRED_PREFIXES = ("val", "eval", "test")
DATE_AFTER_S = 7 * 86400  # format_when shows older runs' dates


def headline_metrics(metrics: Any, limit: int = HEADLINE_LIMIT) -> list[tuple[str, Any]]:
    """The few metrics worth a glance: validation/test ones first, then in logged order."""
    if not isinstance(metrics, dict):
        return []
    names = [name for name, summary in metrics.items() if isinstance(summary, dict)]
    preferred = [n for n in names if n.lower().startswith(PREFERRED_PREFIXES)]
    ordered = preferred + [n for n in names if n not in preferred]
    return [(name, metrics[name].get("last")) for name in ordered[:limit]]


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}"
    if value is None:
        return "-"
    return str(value)


def format_duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_when(started: float, now: float) -> str:
    """A short relative time for recent runs, the date for older ones."""
    if started <= 0:
        return "-"
    age = now - started
    if age < 0:
        return "just now"
    for limit, unit, size in (
        (60, "s", 1),
        (3600, "m", 60),
        (86400, "h", 3600),
        (DATE_AFTER_S, "d", 86400),
    ):
        if age < limit:
            return f"{int(age // size)}{unit} ago"
    return dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d")


def format_size(size: Any) -> str:
    if not isinstance(size, (int, float)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def metrics_line(metrics: Any, limit: int = HEADLINE_LIMIT) -> str:
    return " ".join(
        f"{name}={format_value(value)}" for name, value in headline_metrics(metrics, limit)
    )

"""Drawing metric curves: PNG and SVG with matplotlib, a self-contained HTML page, and a compact
plot for the terminal with plotext. Both come with ``pip install 'gitexp[ui]'``.

Every function takes plain data: the metrics (one subplot each, in order) and the curves, one
``(label, series)`` pair per run, where a series maps a metric to its ``(step, value)`` points
(gitexp.series.metric_series). A run's colour is the same in every subplot.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from gitexp.errors import GitExpError
from gitexp.extras import require
from gitexp.ids import printable
from gitexp.series import Series, downsample

if TYPE_CHECKING:
    from gitexp.listing import Run

Curves = Sequence[tuple[str, Series]]
ImageFormat = Literal["png", "svg"]
# Text stays text in SVG (searchable, smaller); `$` in a metric name is not TeX; stable ids.
MATPLOTLIB_SETTINGS = {"svg.fonttype": "none", "text.parse_math": False, "svg.hashsalt": "gitexp"}
SUBPLOT_WIDTH, SUBPLOT_HEIGHT = 6.0, 3.6  # inches
TERMINAL_SUBPLOT_HEIGHT = 14  # rows
PLOT = "git exp plot"
# More subplots than this by default is a wall of tiny charts; --metric picks others.
MAX_DEFAULT_METRICS = 6


def chosen_metrics(logged: Sequence[Series], metrics: Sequence[str]) -> tuple[list[str], list[str]]:
    """The metrics to plot of the series `logged`, and every metric they have.

    `metrics` as given (each once), else those every series has (all of them when they share
    none), at most MAX_DEFAULT_METRICS, in order of first appearance.
    """
    available = list(dict.fromkeys(name for one in logged for name in one))
    if metrics:
        chosen = list(dict.fromkeys(metrics))
        unknown = [name for name in chosen if name not in available]
        if unknown:
            raise GitExpError(
                f"unknown metric '{unknown[0]}': the runs logged {', '.join(available)}"
            )
        return chosen, available
    shared = [name for name in available if all(name in one for one in logged)]
    return (shared or available)[:MAX_DEFAULT_METRICS], available


def short_labels(runs: Sequence[Run]) -> list[str]:
    """A legend label per run: `<name>/<random part>` when that is unique among `runs`, else
    the full `<name>/<id>`. Either is a run spec the other commands accept."""
    short = [f"{run.name}/{run.run_id.rsplit('.', 1)[-1]}" for run in runs]
    return [
        label if short.count(label) == 1 else run.id for run, label in zip(runs, short, strict=True)
    ]


def render_image(
    metrics: Sequence[str], curves: Curves, fmt: ImageFormat = "png", feature: str = PLOT
) -> bytes:
    """The figure as PNG or SVG bytes; without matplotlib, an error naming `feature`."""
    matplotlib = require("matplotlib", feature)
    with matplotlib.rc_context(MATPLOTLIB_SETTINGS):
        figure = _figure(metrics, curves)
        buffer = io.BytesIO()
        # No date in the metadata: the same runs give the same bytes.
        metadata: dict[str, Any] = {"Date": None} if fmt == "svg" else {}
        figure.savefig(buffer, format=fmt, dpi=100, metadata=metadata)
    return buffer.getvalue()


def render_svg_element(metrics: Sequence[str], curves: Curves, feature: str = PLOT) -> str:
    """The figure as an ``<svg>`` element to put inside an HTML page (needs matplotlib)."""
    svg = render_image(metrics, curves, "svg", feature).decode()
    return svg[svg.index("<svg") :]


def render_html(metrics: Sequence[str], curves: Curves, title: str = "git exp plot") -> str:
    """A self-contained HTML page: the figure inline as SVG, then the runs it shows."""
    svg = render_svg_element(metrics, curves)
    rows = "".join(f"<li>{html.escape(printable(label))}</li>" for label, _series in curves)
    page_title = html.escape(printable(title))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{page_title}</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}svg{max-width:100%;height:auto}</style>"
        f"</head><body><h1>{page_title}</h1>\n{svg}\n<ul>{rows}</ul></body></html>\n"
    )


def render_terminal(
    metrics: Sequence[str], curves: Curves, width: int = 80, colour: bool = False
) -> str:
    """A compact plot for the terminal, one subplot per metric stacked (needs plotext)."""
    require("plotext", PLOT)
    from plotext._kernel.api import figure

    figure.clear()
    try:
        if len(metrics) > 1:
            figure.subplots(len(metrics), 1)
        for row, metric in enumerate(metrics, start=1):
            # plotext keeps no grid for a single plot: the figure itself is the plot.
            subplot = figure.subplot(row, 1) if len(metrics) > 1 else figure
            subplot.title(printable(metric))
            for label, series in curves:
                points = [p for p in downsample(series.get(metric, []), 2 * width) if _finite(p)]
                if points:
                    steps, values = zip(*points, strict=True)
                    subplot.draw(subplot.signal(list(steps), list(values)).lines().label(label))
        figure.plot_size(width, TERMINAL_SUBPLOT_HEIGHT * len(metrics))
        text: str = figure.build().string(colorless=not colour)
    finally:
        figure.clear()
    return text


def _figure(metrics: Sequence[str], curves: Curves) -> Any:
    from matplotlib.figure import Figure

    columns = 1 if len(metrics) == 1 else 2
    rows = math.ceil(len(metrics) / columns)
    # Not pyplot: a bare Figure keeps no global state, so a notebook's own plots are untouched.
    figure = Figure(
        figsize=(SUBPLOT_WIDTH * columns, SUBPLOT_HEIGHT * rows + 0.6), layout="constrained"
    )
    axes = figure.subplots(rows, columns, squeeze=False).flatten()
    handles: dict[str, Any] = {}
    for metric, ax in zip(metrics, axes, strict=False):
        ax.set_title(printable(metric))
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        for index, (label, series) in enumerate(curves):
            points = downsample(series.get(metric, []))
            if not points:
                continue
            steps, values = zip(*points, strict=True)
            (line,) = ax.plot(
                steps,
                values,
                color=f"C{index % 10}",
                linestyle=("-", "--", ":", "-.")[index // 10 % 4],
                marker="o" if len(points) == 1 else None,
            )
            handles.setdefault(label, line)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    if handles:
        figure.legend(
            list(handles.values()),
            [printable(label) for label in handles],
            loc="outside upper center",
            ncols=min(len(handles), 3),
            frameon=False,
        )
    return figure


def _finite(point: tuple[float, float]) -> bool:
    return math.isfinite(point[0]) and math.isfinite(point[1])

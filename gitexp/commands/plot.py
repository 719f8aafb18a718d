"""`git exp plot`: the metric series of some runs, chosen and labelled for plotting."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pygit2

from gitexp.errors import GitExpError
from gitexp.plotting import chosen_metrics, short_labels
from gitexp.rundir import logdir_root, run_dir_here
from gitexp.selection import select_runs
from gitexp.series import Series, metric_series


@dataclass
class PlottedRun:
    """One run's curves: its id, the short label the legend shows, its status and series."""

    id: str
    label: str
    status: str
    series: Series

    def as_json(self) -> dict[str, Any]:
        """`git exp plot --json`: the series as `[step, value]` pairs (NaN becomes null)."""
        return {
            "id": self.id,
            "label": self.label,
            "status": self.status,
            "series": {
                name: [list(point) for point in points] for name, points in self.series.items()
            },
        }


@dataclass
class PlotData:
    """What a plot shows: one subplot per metric, one curve per run in each."""

    metrics: list[str]
    runs: list[PlottedRun]
    available: list[str] = field(default_factory=list)
    without_metrics: list[str] = field(default_factory=list)
    # Runs whose directory is not on this machine (run elsewhere and fetched, or collected).
    not_here: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The plotted metrics and runs, plus the other metrics there are."""
        return {
            "metrics": self.metrics,
            "available": self.available,
            "runs": [run.as_json() for run in self.runs],
            "without_metrics": self.without_metrics,
            "not_here": self.not_here,
        }


def plot_data(
    repo: pygit2.Repository,
    specs: Sequence[str],
    metrics: Sequence[str] = (),
    env_logdir: str | None = None,
) -> PlotData:
    """The series of the runs `specs` name (in that order) for `metrics`.

    Without `metrics`: those every run with metrics has logged (all of them when the runs share
    none), at most MAX_DEFAULT_METRICS, in order of first appearance. Runs without any metric
    are left out and listed in `without_metrics`, or in `not_here` when their run directory
    is not on this machine; if no run has one, that is an error.
    """
    runs = select_runs(repo, specs)
    root = logdir_root(repo, env_logdir)
    run_dirs = [run_dir_here(root, run.name, run.run_id) for run in runs]
    plotted = [
        PlottedRun(run.id, label, run.status, metric_series(run_dir))
        for run, label, run_dir in zip(runs, short_labels(runs), run_dirs, strict=True)
    ]
    with_metrics = [run for run in plotted if run.series]
    not_here = [run.id for run, run_dir in zip(runs, run_dirs, strict=True) if run_dir is None]
    without = [run.id for run in plotted if not run.series and run.id not in not_here]
    if not with_metrics:
        raise GitExpError(_no_metrics_message(without, not_here))
    chosen, available = chosen_metrics([run.series for run in with_metrics], metrics)
    for run in with_metrics:
        run.series = {name: run.series[name] for name in chosen if name in run.series}
    return PlotData(chosen, with_metrics, available, without, not_here)


def _no_metrics_message(without: list[str], not_here: list[str]) -> str:
    reasons = []
    if without:
        reasons.append(
            f"{', '.join(without)} logged none (programs log them with gitexp.log(...) "
            "or JSON lines in $GITEXP_METRICS)"
        )
    if not_here:
        reasons.append(
            f"the run directory of {', '.join(not_here)} is not on this machine (metrics stay "
            "where a run ran: `git exp export` there and `git exp import` here bring them)"
        )
    return "no metrics to plot: " + "; ".join(reasons)

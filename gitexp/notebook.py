"""Runs as Python objects for scripts and notebooks: ``gitexp.runs()``.

Reading only, through the same functions as the command line (``git exp log``'s filters,
``git exp plot``'s series). In Jupyter a collection shows as a table and a run with its curves.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, overload

from gitexp import listing
from gitexp.display import format_duration, format_value
from gitexp.errors import GitExpError
from gitexp.extras import MissingExtraError, require
from gitexp.ids import printable
from gitexp.record import RECORD_FIELDS
from gitexp.runspec import resolve_run_spec
from gitexp.series import Series, metric_series

STATUS_COLOURS = {
    "running": "#0b7fab",
    "succeeded": "#1a7f37",
    "failed": "#cf222e",
    "interrupted": "#9a6700",
    "crashed": "#8250df",
    "unreadable": "#cf222e",
}
MAX_HTML_ROWS = 200
MAX_HTML_COLUMNS = 12  # of params, and of metrics
PANDAS_INSTALL = "pip install pandas"
FLAT_COLUMNS = ("id", "name", "status", "started_at", "duration_s", "commit", "message", "tags")


class Run:
    """One run: its record's fields as attributes (``run.params``, ``run.metrics``, ...)."""

    def __init__(self, run: listing.Run, run_dir: Path | None) -> None:
        self._run = run
        self.run_dir = run_dir
        self.record: dict[str, Any] = run.as_json()

    @property
    def id(self) -> str:
        """The run's full name, `<name>/<id>`."""
        return self._run.id

    @property
    def name(self) -> str:
        return self._run.name

    @property
    def ref(self) -> str:
        return self._run.ref

    @property
    def commit(self) -> str:
        """The snapshot commit's sha."""
        return self._run.commit

    @property
    def status(self) -> str:
        """The status as `git exp log` shows it (a dead supervisor shows as `crashed`)."""
        return self._run.status

    @property
    def deleted(self) -> bool:
        return self._run.deleted

    @property
    def tags(self) -> list[str]:
        return self._run.tags

    @property
    def params(self) -> dict[str, Any]:
        """The hyperparameters."""
        return _mapping(self.record.get("params"))

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """Per metric: `last`, `min`, `max`, `count`, `step`."""
        return _mapping(self.record.get("metrics"))

    @property
    def message(self) -> str | None:
        message = self.record.get("message")
        return message if isinstance(message, str) else None

    @property
    def started_at(self) -> dt.datetime | None:
        """When the run started, as an aware datetime."""
        return _datetime(self.record.get("started_at"))

    @property
    def ended_at(self) -> dt.datetime | None:
        return _datetime(self.record.get("ended_at"))

    def __getattr__(self, field: str) -> Any:
        # Every other documented record field (duration_s, command, host, error, ...).
        if field in RECORD_FIELDS or field == "problem":
            return self.__dict__.get("record", {}).get(field)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {field!r}")

    def __dir__(self) -> list[str]:
        # Tab completion in notebooks offers the record's fields too.
        return sorted({*super().__dir__(), *RECORD_FIELDS})

    def series(self) -> Series:
        """Each metric's `(step, value)` points, read from the run directory now."""
        return metric_series(self.run_dir)

    def metrics_frame(self) -> Any:
        """The series, one row per step and one column per metric: a pandas DataFrame when
        pandas is installed, else a list of dicts (missing values are absent / NaN)."""
        series = self.series()
        rows = series_rows(series)
        try:
            import pandas
        except ImportError:
            return rows
        return pandas.DataFrame(rows, columns=["step", *series])

    def plot(self, metrics: Sequence[str] | None = None) -> SvgFigure:
        """The run's curves (needs matplotlib); shows inline in a notebook."""
        return _plot([self], metrics)

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.status}>"

    def _repr_html_(self) -> str:
        head = (
            f"<p><b>{_text(self.id)}</b> {_status_html(self.status)}"
            + (f" — {_text(self.message)}" if self.message else "")
            + "</p>"
        )
        curves = ""
        series = self.series()
        if series:
            try:
                curves = _plot([self], None, series={self.id: series}).svg
            except MissingExtraError:
                curves = "<p><i>curves need matplotlib: pip install 'gitexp[ui]'</i></p>"
        return f"<div>{head}{curves}{_record_table(self)}</div>"


class Runs(Sequence[Run]):
    """A list of runs, newest first; ``runs["k3f9"]`` picks one by any run spec."""

    def __init__(self, runs: Iterable[Run]) -> None:
        self._runs = list(runs)

    @overload
    def __getitem__(self, key: int | str) -> Run: ...

    @overload
    def __getitem__(self, key: slice) -> Runs: ...

    def __getitem__(self, key: int | str | slice) -> Run | Runs:
        if isinstance(key, slice):
            return Runs(self._runs[key])
        if isinstance(key, str):
            chosen = resolve_run_spec([run._run for run in self._runs], key)
            return next(run for run in self._runs if run._run is chosen)
        return self._runs[key]

    def __len__(self) -> int:
        return len(self._runs)

    def __iter__(self) -> Iterator[Run]:
        return iter(self._runs)

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per run: id, name, status, times, commit, message, tags, then
        `params.<key>` and `metrics.<name>.last/min/max`."""
        return [_flat_row(run) for run in self._runs]

    def to_pandas(self) -> Any:
        """`rows()` as a pandas DataFrame (needs pandas)."""
        pandas = require("pandas", "Runs.to_pandas()", PANDAS_INSTALL)
        rows = self.rows()
        columns = list(dict.fromkeys(key for row in rows for key in row)) or list(FLAT_COLUMNS)
        return pandas.DataFrame(rows, columns=columns)

    def plot(self, metrics: Sequence[str] | None = None) -> SvgFigure:
        """These runs' curves overlaid, one subplot per metric (needs matplotlib)."""
        return _plot(list(self._runs), metrics)

    def __repr__(self) -> str:
        lines = [f"{run.id}  {run.status}" for run in self._runs[:MAX_HTML_ROWS]]
        more = len(self._runs) - MAX_HTML_ROWS
        return "\n".join(
            [f"<Runs: {len(self._runs)}>", *lines] + ([f"... {more} more"] if more > 0 else [])
        )

    def _repr_html_(self) -> str:
        return _runs_table(self._runs)


class SvgFigure:
    """A plot as SVG markup; a notebook shows it inline, `.save(path)` writes it."""

    def __init__(self, svg: str) -> None:
        self.svg = svg

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the SVG to `path`."""
        Path(path).write_text(self.svg, encoding="utf-8")


def runs(
    path: str | os.PathLike[str] = ".",
    *,
    name: str | Iterable[str] | None = None,
    status: str | Iterable[str] | None = None,
    tag: str | Iterable[str] | None = None,
    where: str | None = None,
    since: str | float | dt.datetime | None = None,
    include_deleted: bool = False,
    sort: str | None = None,
    reverse: bool = False,
    limit: int | None = None,
) -> Runs:
    """The runs of the repository at `path`, newest first, filtered as `git exp log` does.

    `name`, `status` and `tag` take one value or several (any of them matches); `where` is the
    `--where` language; `since` a duration (`"2d"`), a date, a datetime or a Unix time. `path`
    may be anywhere inside the repository (`~` is expanded).
    """
    from gitexp.repository import open_repository
    from gitexp.rundir import logdir_root, run_dir_here
    from gitexp.selection import select_runs

    repo = open_repository(Path(path).expanduser())
    selected = select_runs(
        repo,
        names=_values(name),
        statuses=_values(status),
        tags=_values(tag),
        where=where,
        since=_since(since),
        include_deleted=include_deleted,
        sort=sort,
        reverse=reverse,
        limit=limit,
    )
    root = logdir_root(repo, os.environ.get("GITEXP_LOGDIR"))
    return Runs(Run(run, run_dir_here(root, run.name, run.run_id)) for run in selected)


def series_rows(series: Series) -> list[dict[str, Any]]:
    """The series merged by step: one dict per step (in order) with a value per metric."""
    by_step: dict[float, dict[str, Any]] = {}
    for metric, points in series.items():
        for step, value in points:
            by_step.setdefault(step, {"step": step})[metric] = value
    return [by_step[step] for step in sorted(by_step)]


def _plot(
    selected: list[Run], metrics: Sequence[str] | None, series: dict[str, Series] | None = None
) -> SvgFigure:
    from gitexp.plotting import chosen_metrics, render_svg_element, short_labels

    feature = "gitexp plots"
    require("matplotlib", feature)
    every = series or {run.id: run.series() for run in selected}
    logged = [one for one in every.values() if one]
    if not logged:
        raise GitExpError("no metrics to plot: these runs logged none")
    chosen, _ = chosen_metrics(logged, metrics or ())
    labels = short_labels([run._run for run in selected])
    curves = [(label, every[run.id]) for run, label in zip(selected, labels, strict=True)]
    return SvgFigure(render_svg_element(chosen, curves, feature))


def _flat_row(run: Run) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": run.id,
        "name": run.name,
        "status": run.status,
        "started_at": run.record.get("started_at"),
        "duration_s": run.record.get("duration_s"),
        "commit": run.commit,
        "message": run.message,
        "tags": list(run.tags),
    }
    row.update({f"params.{key}": value for key, value in run.params.items()})
    for metric, summary in run.metrics.items():
        if isinstance(summary, dict):
            for stat in ("last", "min", "max"):
                row[f"metrics.{metric}.{stat}"] = summary.get(stat)
    return row


def _runs_table(selected: list[Run]) -> str:
    shown = selected[:MAX_HTML_ROWS]
    params = _keys(run.params for run in shown)
    metrics = _keys(run.metrics for run in shown)
    header = ["id", "status", "started", "duration"]
    header += [f"params.{key}" for key in params] + metrics + ["tags", "message"]
    body = "".join(_runs_table_row(run, params, metrics) for run in shown)
    more = len(selected) - len(shown)
    note = f"<p>… {more} more runs</p>" if more > 0 else ""
    head = "".join(f"<th>{_text(column)}</th>" for column in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


def _runs_table_row(run: Run, params: list[str], metrics: list[str]) -> str:
    started = run.started_at
    cells = [
        f"<td><code>{_text(run.id)}</code></td>",
        f"<td>{_status_html(run.status)}</td>",
        f"<td>{_text(started.strftime('%Y-%m-%d %H:%M') if started else '-')}</td>",
        f"<td>{_text(format_duration(run.record.get('duration_s')))}</td>",
    ]
    cells += [f"<td>{_text(_value(run.params.get(key)))}</td>" for key in params]
    for metric in metrics:
        summary = run.metrics.get(metric)
        if isinstance(summary, dict):
            span = f"min {_value(summary.get('min'))}, max {_value(summary.get('max'))}"
            cells.append(f'<td title="{_text(span)}">{_text(_value(summary.get("last")))}</td>')
        else:
            cells.append("<td></td>")
    cells.append(f"<td>{_text(' '.join(run.tags))}</td>")
    cells.append(f"<td>{_text((run.message or '').split(chr(10), 1)[0])}</td>")
    return f"<tr>{''.join(cells)}</tr>"


def _record_table(run: Run) -> str:
    fields: list[tuple[str, str]] = [
        ("commit", run.commit),
        ("started", str(run.record.get("started_at") or "-")),
        ("duration", format_duration(run.record.get("duration_s"))),
        ("command", " ".join(str(part) for part in run.record.get("command") or [])),
        ("tags", " ".join(run.tags)),
    ]
    fields += [(f"params.{key}", _value(value)) for key, value in run.params.items()]
    for metric, summary in run.metrics.items():
        if isinstance(summary, dict):
            text = ", ".join(
                f"{stat} {_value(summary.get(stat))}" for stat in ("last", "min", "max")
            )
            fields.append((f"metrics.{metric}", text))
    rows = "".join(
        f"<tr><th>{_text(key)}</th><td>{_text(value)}</td></tr>" for key, value in fields
    )
    return f"<table>{rows}</table>"


def _keys(mappings: Iterable[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for mapping in mappings for key in mapping))[:MAX_HTML_COLUMNS]


def _status_html(status: str) -> str:
    colour = STATUS_COLOURS.get(status, "#57606a")
    return f'<span style="color:{colour};font-weight:bold">{_text(status)}</span>'


def _text(value: object) -> str:
    # Records can come from other people's remotes: escape everything that reaches the page.
    return html.escape(printable(str(value)), quote=True)


def _value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value).decode()
    return format_value(value)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _values(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _since(value: str | float | dt.datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.astimezone()).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    from gitexp.query import parse_since

    return parse_since(value, dt.datetime.now().astimezone())

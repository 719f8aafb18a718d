"""The human-readable form of one run's record, as `git exp show` prints it."""

from __future__ import annotations

import shlex
import signal
from typing import Any

import click

from gitexp.display import format_duration, format_size, format_value
from gitexp.listing import Run

LABEL_WIDTH = 10


def render_run(run: Run) -> list[str]:
    """Lines describing `run`; every field of the record appears somewhere."""
    record = run.record or {}
    lines = [_field("run", click.style(run.id, fg="yellow"))]
    lines.append(_field("status", _status_text(run, record)))
    if run.problem:
        lines.append(_field("problem", run.problem))
    lines.append(_field("ref", run.ref))
    lines.append(_field("commit", _commit_text(run.commit, record.get("git"))))
    if not run.record:
        return lines
    command = record.get("command")
    if isinstance(command, list):
        lines.append(_field("command", shlex.join(str(part) for part in command)))
    lines.append(_field("cwd", record.get("cwd")))
    lines.append(_field("started", record.get("started_at")))
    if record.get("ended_at"):
        lines.append(
            _field("ended", f"{record['ended_at']} ({format_duration(record.get('duration_s'))})")
        )
    for key in ("message", "rerun_of"):
        if record.get(key):
            lines.append(_field(key.replace("_", " "), record[key]))
    if isinstance(record.get("reruns"), list) and record["reruns"]:
        lines.append(_field("reruns", ", ".join(str(run_id) for run_id in record["reruns"])))
    if _list(record.get("tags")):
        lines.append(_field("tags", ", ".join(str(tag) for tag in record["tags"])))
    if record.get("deleted"):
        lines.append(_field("deleted", record["deleted"]))
    lines.extend(_error_lines(record.get("error")))
    lines.extend(_mapping_block("params", record.get("params")))
    lines.extend(_metrics_block(record.get("metrics")))
    lines.extend(_environment_lines(record))
    lines.extend(_git_lines(record.get("git")))
    for problem in _list(record.get("problems")):
        lines.append(_field("problem", problem))
    for entry in _list(record.get("annotations")):
        lines.append(_field("note", annotation_text(entry)))
    lines.extend(_artifact_lines(record.get("artifacts")))
    lines.append(_field("run dir", record.get("run_dir")))
    if record.get("outputs_dir"):
        lines.append(_field("outputs", record["outputs_dir"]))
    return lines


def _field(label: str, value: Any) -> str:
    return f"{label:<{LABEL_WIDTH}}{'-' if value in (None, '') else value}"


def _status_text(run: Run, record: dict[str, Any]) -> str:
    text = run.status
    if run.status == "crashed" and record.get("status") == "running":
        text += " (its supervising process is gone)"
    details = []
    if isinstance(record.get("interrupted_by"), int):
        details.append(f"by {_signal_name(record['interrupted_by'])}")
    if record.get("signal"):
        details.append(f"signal {record['signal']}")
    elif record.get("exit_code") is not None:
        details.append(f"exit {record['exit_code']}")
    if details:
        text += f" ({', '.join(details)})"
    return text


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _commit_text(commit: str, git: Any) -> str:
    if not isinstance(git, dict):
        return commit
    base = git.get("head")
    where = f"on {git['branch']}" if git.get("branch") else "detached"
    parent = f"parent {str(base)[:7]} {where}" if base else f"no parent ({where}, unborn)"
    state = "with uncommitted changes" if git.get("dirty") else "clean"
    return f"{commit} ({parent}, {state})"


def _error_lines(error: Any) -> list[str]:
    if not isinstance(error, dict):
        return []
    lines = [_field("error", f"{error.get('type')}: {error.get('message')}")]
    trace = error.get("traceback")
    if isinstance(trace, str) and trace.strip():
        lines.extend(f"{'':<{LABEL_WIDTH}}{line}" for line in trace.rstrip().splitlines())
    return lines


def _mapping_block(title: str, values: Any) -> list[str]:
    if not isinstance(values, dict) or not values:
        return [_field(title, None)]
    width = max(len(str(key)) for key in values) + 2
    lines = [title]
    lines.extend(f"  {key!s:<{width}}{_compact(value)}" for key, value in values.items())
    return lines


def _metrics_block(metrics: Any) -> list[str]:
    if not isinstance(metrics, dict) or not metrics:
        return [_field("metrics", None)]
    width = max(len(str(name)) for name in metrics) + 2
    header = f"  {'':<{width}}{'last':>10}{'min':>10}{'max':>10}{'count':>8}{'step':>8}"
    lines = ["metrics", header]
    for name, summary in metrics.items():
        if not isinstance(summary, dict):
            continue
        values = "".join(f"{format_value(summary.get(k)):>10}" for k in ("last", "min", "max"))
        counts = "".join(f"{format_value(summary.get(k)):>8}" for k in ("count", "step"))
        lines.append(f"  {name:<{width}}{values}{counts}")
    return lines


def _environment_lines(record: dict[str, Any]) -> list[str]:
    lines = []
    host = record.get("host")
    if isinstance(host, dict):
        memory = format_size(host.get("memory_bytes"))
        lines.append(
            _field(
                "host",
                f"{host.get('hostname')} (user {host.get('user')}, pid {host.get('pid')}, "
                f"{host.get('cpu_count')} CPUs, {memory}, {host.get('platform')})",
            )
        )
    python = record.get("python")
    if isinstance(python, dict):
        lines.append(_field("python", f"{python.get('version')} ({python.get('executable')})"))
    packages = record.get("packages")
    if isinstance(packages, dict) and packages:
        lines.append(_field("packages", ", ".join(f"{k} {v}" for k, v in packages.items())))
    gpus = record.get("gpus")
    if isinstance(gpus, list) and gpus:
        for gpu in gpus:
            lines.append(_field("gpu", _compact(gpu)))
    env = record.get("env")
    if isinstance(env, dict) and env:
        lines.append(_field("env", " ".join(f"{k}={v}" for k, v in env.items())))
    resources = record.get("resources")
    if isinstance(resources, dict):
        lines.append(
            _field(
                "resources",
                f"peak RSS {format_size(resources.get('peak_rss_bytes'))}, "
                f"CPU {format_value(resources.get('cpu_seconds'))}s",
            )
        )
    return lines


def _git_lines(git: Any) -> list[str]:
    if not isinstance(git, dict):
        return []
    lines = []
    count = git.get("untracked_count") or 0
    if count:
        listed = _list(git.get("untracked"))
        more = ", ..." if len(listed) > 5 or (isinstance(count, int) and count > 5) else ""
        shown = ", ".join(str(path) for path in listed[:5]) + more
        lines.append(_field("untracked", f"{count} file(s) included: {shown}"))
    for item in _list(git.get("skipped")):
        if isinstance(item, dict):
            lines.append(
                _field(
                    "skipped",
                    f"{item.get('path')} ({format_size(item.get('size'))}, {item.get('reason')})",
                )
            )
    return lines


def annotation_text(entry: Any) -> str:
    """One annotation as a line: `<time> <author>: <text>`."""
    if isinstance(entry, dict):
        return f"{entry.get('time')} {entry.get('author')}: {entry.get('text')}"
    return str(entry)


def _artifact_lines(artifacts: Any) -> list[str]:
    """One line per artifact: name, size, short sha256 (`git exp artifact` gives the path)."""
    entries = [item for item in _list(artifacts) if isinstance(item, dict)]
    if not entries:
        return []
    width = max(len(str(item.get("name"))) for item in entries) + 2
    lines = ["artifacts"]
    for item in entries:
        digest = str(item.get("sha256") or "-")[:12]
        size = format_size(item.get("size"))
        lines.append(f"  {item.get('name')!s:<{width}}{size:>10}  sha256 {digest}")
    return lines


def _list(value: Any) -> list[Any]:
    """`value` when it is a list, else [] (records can come from other people's remotes)."""
    return value if isinstance(value, list) else []


def _compact(value: Any) -> str:
    if isinstance(value, (dict, list)):
        import orjson

        return orjson.dumps(value).decode()
    return format_value(value)

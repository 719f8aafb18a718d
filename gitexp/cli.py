"""The `git exp` command line: parse, call the core, print. Nothing else lives here."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from gitexp.errors import GitExpError

EXIT_INTERNAL_ERROR = 70
STATUS_COLOURS = {
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "interrupted": "yellow",
    "crashed": "magenta",
    "unreadable": "red",
}
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="gitexp", prog_name="git exp")
def cli() -> None:
    """Record every experiment run inside your git repository.

    \b
    git exp run train.py --lr 0.1     record a run of train.py
    git exp log                       list runs, newest first
    git exp show @                    the newest run's whole record

    Runs live on refs/experiments/<name>/<id>, their records in git notes on
    refs/notes/experiments; your branch, index, working tree and stash are never
    touched. Format: docs/format.md.
    """


@cli.command(
    context_settings={**CONTEXT, "ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.option("-n", "--name", help="Experiment name (default: the program's file name).")
@click.option("-m", "--message", help="A message describing this run.")
@click.option("-t", "--tag", "tags", multiple=True, help="Tag the run (repeatable).")
@click.argument("program")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(
    name: str | None,
    message: str | None,
    tags: tuple[str, ...],
    program: str,
    args: tuple[str, ...],
) -> None:
    """Snapshot the working tree and run PROGRAM as a recorded experiment.

    Everything after PROGRAM belongs to the program. A PROGRAM ending in .py runs
    under the `python` on your PATH. Hyperparameters are read from the arguments
    (--lr 0.1, --lr=0.1, lr=0.1, --flag). Exits with the program's exit status.

    \b
    Examples:
      git exp run train.py --lr 0.1 --epochs 20
      git exp run -n baseline -m "no dropout" -t ablation train.py --dropout 0
      git exp run -- ./train.sh 100
    """
    from gitexp.commands.run import RunRequest, run_experiment
    from gitexp.display import format_duration, metrics_line

    repo = _open_repo()
    request = RunRequest(
        command=[program, *args],
        cwd=Path.cwd(),
        environ=dict(os.environ),
        name=name,
        message=message,
        tags=list(tags),
    )
    result = run_experiment(repo, request, report=lambda line: click.echo(line, err=True))
    record = result.record
    summary = (
        f"gitexp: {result.run_id} {record['status']} in {format_duration(record.get('duration_s'))}"
    )
    headline = metrics_line(record.get("metrics"))
    error = record.get("error")
    if headline:
        summary += f" · {headline}"
    if isinstance(error, dict) and record["status"] == "failed":
        summary += f" · {error.get('type')}: {error.get('message')}"
    click.echo(_safe(summary), err=True)
    sys.exit(result.exit_status)


@cli.command(context_settings=CONTEXT)
@click.argument("names", nargs=-1)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(["running", "succeeded", "failed", "interrupted", "crashed", "unreadable"]),
    help="Only runs with this status (repeatable).",
)
@click.option(
    "-t", "--tag", "tags", multiple=True, help="Only runs with this tag (repeatable: any of them)."
)
@click.option("-n", "--max-count", type=click.IntRange(min=0), help="Show at most this many runs.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON array.")
def log(
    names: tuple[str, ...],
    statuses: tuple[str, ...],
    tags: tuple[str, ...],
    max_count: int | None,
    as_json: bool,
) -> None:
    """List runs, newest first, one line each (all names, or only NAMES).

    Each line: id, status, when, duration, snapshot, headline metrics, tags and
    message. A run whose supervising process died shows as crashed.

    \b
    Examples:
      git exp log
      git exp log train --status failed -n 5
      git exp log --json | jq '.[0].metrics'
    """
    from gitexp.commands.log import log_runs

    runs = log_runs(_open_repo(), names, statuses, tags, max_count)
    if as_json:
        _echo_json([run.as_json() for run in runs])
        return
    now = time.time()
    id_width = max((len(run.id) for run in runs), default=0)
    for run in runs:
        click.echo(_log_line(run, now, id_width))


@cli.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
def show(run_spec: str, as_json: bool) -> None:
    """Show one run's whole record.

    RUN is <name>/<id>, <id>, any unique suffix of an id (such as its random
    part), the full ref, @ (the newest run) or @~N (N runs before it).

    \b
    Examples:
      git exp show @
      git exp show train/20261127.001.k3f9
      git exp show k3f9 --json
    """
    from gitexp.commands.show import show_run

    run = show_run(_open_repo(), run_spec)
    if as_json:
        _echo_json(run.as_json())
        return
    from gitexp.showtext import render_run

    for line in render_run(run):
        click.echo(_safe(line, keep_colour=True))


def _open_repo() -> Any:
    from gitexp.repository import open_repository

    return open_repository(Path.cwd())


def _log_line(run: Any, now: float, id_width: int) -> str:
    from gitexp.display import format_duration, format_when, metrics_line

    record = run.record or {}
    status = click.style(f"{run.status:<11}", fg=STATUS_COLOURS.get(run.status))
    raw_tags, raw_message = record.get("tags"), record.get("message")
    tags: list[Any] = raw_tags if isinstance(raw_tags, list) else []
    message: str = raw_message if isinstance(raw_message, str) else ""
    label = " ".join([*(f"[{_safe(str(tag))}]" for tag in tags), _safe(message.split("\n", 1)[0])])
    parts = [
        click.style(f"{run.id:<{id_width}}", fg="yellow"),
        status,
        f"{format_when(run.started, now):>8}",
        f"{format_duration(record.get('duration_s')):>7}",
        run.commit[:7],
        metrics_line(record.get("metrics")) or ("" if run.record else _safe(run.problem or "")),
        label.strip(),
    ]
    return "  ".join(part for part in parts if part)


def _safe(text: str, keep_colour: bool = False) -> str:
    """Escape control characters from records (they may come from other people's remotes)."""
    from gitexp.ids import printable

    if keep_colour:
        return "\x1b".join(printable(piece) for piece in text.split("\x1b"))
    return printable(text)


def _echo_json(value: Any) -> None:
    import orjson

    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def main() -> None:
    """Entry point: one `error:` line and exit 1 for user errors, never a traceback."""
    try:
        code = cli.main(prog_name="git exp", standalone_mode=False)
    except GitExpError as exc:
        click.echo(f"error: {_safe(str(exc))}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # `git exp log | head`: the reader left; stop quietly like git does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except Exception as exc:
        if os.environ.get("GITEXP_DEBUG"):
            raise
        click.echo(
            f"error: internal error (a bug in gitexp; rerun with GITEXP_DEBUG=1 for the "
            f"traceback and please report it): {type(exc).__name__}: {exc}",
            err=True,
        )
        sys.exit(EXIT_INTERNAL_ERROR)
    sys.exit(code if isinstance(code, int) else 0)

"""`git exp export` and `git exp import` on the command line."""

from __future__ import annotations

import os
import sys
from collections.abc import Sized
from pathlib import Path

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe
from gitexp.errors import GitExpError, UsageError


@click.command(context_settings=CONTEXT)
@click.argument("run_specs", metavar="[RUN]...", nargs=-1)
@click.option(
    "-o",
    "--output",
    metavar="FILE",
    required=True,
    help="The archive to write (a .tar.gz); - writes it to stdout.",
)
@click.option("--all", "all_runs", is_flag=True, help="Every run, those marked deleted included.")
@click.option("--where", metavar="EXPR", help="Runs whose record matches EXPR (as in log).")
@click.option("-f", "--force", is_flag=True, help="Replace FILE if it exists.")
@output_options("Print what was exported as JSON.")
def export(
    run_specs: tuple[str, ...],
    output: str,
    all_runs: bool,
    where: str | None,
    force: bool,
    fmt: OutputFormat,
) -> None:
    """Pack runs into one .tar.gz file for another clone: `git exp import` reads it.

    For runs whose output is not reachable through a git remote. The archive
    holds each run's ref, record, snapshot commit with everything reachable
    from it (objects written by gitexp itself, no `git bundle`), and its run
    directory: output.log, metrics.jsonl, artifacts. Symlinks in a run
    directory are left out. FILE is never replaced unless --force.

    \b
    Examples:
      git exp export @ k3f9 -o runs.tar.gz
      git exp export --where 'metrics.val_acc.max > 0.9' -o best.tar.gz
      git exp export --all -o - | ssh laptop 'cat > runs.tar.gz'
    """
    from gitexp.commands.export import export_runs, export_to_file, runs_to_export
    from gitexp.display import format_size

    if output == "-" and fmt == "json":
        raise UsageError("--json cannot go with -o - (stdout carries the archive)")
    if output == "-" and sys.stdout.isatty():
        raise GitExpError("refusing to write a binary archive to a terminal: use -o FILE")
    repo = open_repo()
    runs = runs_to_export(repo, run_specs, all_runs, where)
    if output == "-":
        report = export_runs(
            repo, runs, sys.stdout.buffer, "<stdout>", os.environ.get("GITEXP_LOGDIR")
        )
        sys.stdout.buffer.flush()
    else:
        report = export_to_file(repo, runs, Path(output), force, os.environ.get("GITEXP_LOGDIR"))
    for warning in report.warnings:
        click.echo(safe(f"warning: {warning}"), err=True)
    if fmt == "json":
        echo_json(report.as_json())
        return
    size = f", {format_size(report.archive_bytes)}" if report.archive_bytes is not None else ""
    line = f"exported {_count(report.runs, 'run')} ({report.objects} objects{size}) to {output}"
    click.echo(safe(line), err=output == "-")


@click.command("import", context_settings=CONTEXT)
@click.argument("archive", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-n", "--dry-run", is_flag=True, help="Check FILE and show what would happen.")
@output_options("Print what was imported as JSON.")
def import_runs(archive: Path, dry_run: bool, fmt: OutputFormat) -> None:
    """Bring in the runs of FILE, made by `git exp export` in another clone.

    Every object is checked against its hash and every path in FILE must stay
    inside its run directory: a damaged or hostile archive is refused before
    anything is written. A run already here is left as it is (its record is
    merged with FILE's, as `git exp pull` merges); a run id that exists here
    with another snapshot is reported, never overwritten. Run directories are
    unpacked under this clone's run directory root (exp.logdir) and the
    records point there.

    \b
    Examples:
      git exp import runs.tar.gz
      git exp import --dry-run runs.tar.gz
    """
    from gitexp.commands.importing import import_runs as import_archive
    from gitexp.display import format_size

    report = import_archive(
        open_repo(),
        archive,
        env_logdir=os.environ.get("GITEXP_LOGDIR"),
        environ=os.environ,
        dry_run=dry_run,
    )
    for warning in report.warnings:
        click.echo(safe(f"warning: {warning}"), err=True)
    for run in report.conflicts:
        click.echo(f"warning: {run} exists here with another snapshot; kept yours", err=True)
    if fmt == "json":
        echo_json(report.as_json())
        return
    verb = "would import" if dry_run else "imported"
    line = (
        f"{verb} {_count(report.imported, 'run')}, {len(report.present)} already present, "
        f"{format_size(report.bytes_unpacked)} unpacked"
    )
    if report.records_updated:
        line += f", {_count(report.records_updated, 'record')} of runs here updated"
    click.echo(line + (" (dry run: nothing changed)" if dry_run else ""))


def _count(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}" + ("" if len(items) == 1 else "s")

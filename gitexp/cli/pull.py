"""`git exp fetch` and `git exp pull` on the command line."""

from __future__ import annotations

import os
from typing import Any

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe


@click.command(context_settings=CONTEXT)
@click.argument("remote", required=False)
@output_options("Print what was fetched as JSON.")
def fetch(remote: str | None, fmt: OutputFormat) -> None:
    """Download REMOTE's runs and records, without merging the records.

    Runs this clone lacks are fetched under refs/experiments/; the remote's
    records go to refs/notes/remotes/REMOTE/experiments, and listings show the
    fetched runs from there. `git exp pull` also merges them into yours.

    \b
    Examples:
      git exp fetch
      git exp fetch cluster
    """
    from gitexp.commands.pull import fetch_runs

    _report(fetch_runs(open_repo(), remote, os.environ), fmt == "json")


@click.command(context_settings=CONTEXT)
@click.argument("remote", required=False)
@output_options("Print what was pulled as JSON.")
def pull(remote: str | None, fmt: OutputFormat) -> None:
    """Bring REMOTE's runs and records here, merging records run by run.

    A run only the remote has is added; a run changed on both sides is merged
    field by field: tags added on either side are kept and removed ones stay
    removed, appended notes are united, the record of the run that finished
    wins for status and metrics, the newest message wins. A run recorded in
    this clone keeps its facts (command, params, metrics, status, ...): only
    annotations merge into it, and a warning names the fields the remote
    changed. Unreadable records never replace readable ones; records over
    exp.maxRecordSize are left out. Nothing is overwritten silently. A run
    `git exp gc` collected here is not brought back. REMOTE defaults as for
    `git exp push`.

    \b
    Examples:
      git exp pull
      git exp pull cluster && git exp log
    """
    from gitexp.commands.pull import pull_runs

    _report(pull_runs(open_repo(), remote, os.environ), fmt == "json")


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        data = vars(result).copy()
        data["records"] = vars(result.records) if result.records is not None else None
        echo_json(data)
        return
    line = f"{result.remote}: {len(result.new_runs)} new run(s)"
    if result.records is not None:
        records = result.records
        line += f", {records.added} record(s) added, {records.merged} merged"
    if result.collected:
        line += f", {len(result.collected)} collected here left out"
    click.echo(line)
    for run in result.conflicts:
        click.echo(f"warning: {run} exists here with another snapshot; kept yours", err=True)
    if result.records is not None:
        _report_left_out(result.records)


def _report_left_out(records: Any) -> None:
    """One stderr line per record the remote could not change here."""
    for commit in records.unreadable:
        click.echo(
            f"warning: record of {commit[:12]} is unreadable on one side; kept yours", err=True
        )
    for commit in records.too_large:
        click.echo(
            f"warning: record of {commit[:12]} is larger than exp.maxRecordSize; left out",
            err=True,
        )
    for kept in records.kept_facts:
        fields = ", ".join(kept.fields)
        click.echo(
            safe(f"warning: {kept.run} was recorded here; kept its {fields} (the remote differs)"),
            err=True,
        )

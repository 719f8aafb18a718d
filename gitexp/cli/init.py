"""`git exp init` on the command line."""

from __future__ import annotations

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe


@click.command(context_settings=CONTEXT)
@click.option("--hooks", is_flag=True, help="Install gitexp's git hooks (pre-push).")
@click.option(
    "--uninstall-hooks", is_flag=True, help="Remove gitexp's hooks, restoring the ones they chain."
)
@click.option(
    "--config", is_flag=True, help="Make plain `git fetch REMOTE` also fetch REMOTE's records."
)
@click.option(
    "--show-notes", is_flag=True, help="Make `git log` show run records (notes.displayRef)."
)
@click.option("--remote", metavar="NAME", help="The remote --config sets up.  [default: origin]")
@click.option("-n", "--dry-run", is_flag=True, help="Only show what would change.")
@output_options("Print the report as JSON.")
def init(
    hooks: bool,
    uninstall_hooks: bool,
    config: bool,
    show_notes: bool,
    remote: str | None,
    dry_run: bool,
    fmt: OutputFormat,
) -> None:
    """Prepare this repository for sharing runs; without options, show what is set up.

    --hooks installs a pre-push hook: whenever you push to a remote, it also
    runs `git exp push REMOTE`; failing to push runs only warns, never blocks
    your push. A hook already there keeps working: it is renamed aside and
    runs first, and its failure still stops the push. `git config
    exp.pushOnPush false` turns the hook off; --uninstall-hooks removes it and
    puts the chained hook back. core.hooksPath is respected.

    --config adds to remote.REMOTE.fetch a refspec that brings REMOTE's records
    into refs/notes/remotes/REMOTE/experiments (where `git exp pull` puts them);
    runs themselves come with `git exp pull`. Nothing is added to
    remote.REMOTE.push. Running init again changes nothing.

    \b
    Examples:
      git exp init
      git exp init --hooks --config
      git exp init --config --remote cluster --dry-run
      git exp init --uninstall-hooks
    """
    from gitexp.commands.init import init_repository

    report = init_repository(
        open_repo(),
        hooks=hooks,
        config=config,
        show_notes=show_notes,
        uninstall_hooks=uninstall_hooks,
        remote=remote,
        dry_run=dry_run,
    )
    if fmt == "json":
        echo_json(report.as_json())
    else:
        for change in report.changes:
            where = f" ({change.path})" if change.path else ""
            value = f": {change.detail}" if change.detail else ""
            click.echo(safe(f"{change.what}{where}: {change.action}{value}"))
        if report.dry_run:
            click.echo("dry run: nothing changed")
    for warning in report.warnings:
        click.echo(safe(f"warning: {warning}"), err=True)

"""`git exp checkout` on the command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe

if TYPE_CHECKING:
    from gitexp.commands.checkout import CheckoutResult


@click.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@click.option(
    "-b", "--branch", metavar="BRANCH", help="Create BRANCH at the snapshot and switch to it."
)
@click.option(
    "--worktree",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="Check out into a new linked worktree at PATH (which must not exist); the current "
    "checkout is left alone.",
)
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="Save the local state as a snapshot (saved/<id>) first, then overwrite it.",
)
@click.option("--dry-run", is_flag=True, help="Say what would happen; change nothing.")
@output_options("Report as JSON.")
def checkout(
    run_spec: str,
    branch: str | None,
    worktree: Path | None,
    force: bool,
    dry_run: bool,
    fmt: OutputFormat,
) -> None:
    """Check out the code of a run: its snapshot, on a detached HEAD.

    Like `git checkout <commit>` with the run's snapshot commit: the working tree and
    the index become the snapshot and HEAD is detached there. Local changes that
    checking out would overwrite (staged, unstaged, or untracked files in the way)
    make it refuse; --force first saves the whole local state as a snapshot run
    `saved/<id>` (listed by `git exp log`; `git exp checkout saved/<id>` brings it
    back), then overwrites. Changes that are not in the way stay, as with git.
    Prints the command that reproduces the run.

    \b
    Examples:
      git exp checkout @                    the newest run's code, detached
      git exp checkout k3f9 -b try-k3f9     on a new branch
      git exp checkout k3f9 --worktree ../k3f9
      git exp checkout k3f9 --force         save local changes first
      git exp checkout k3f9 --dry-run
    """
    from gitexp.commands.checkout import checkout_run

    if force and worktree is not None:
        raise click.UsageError(
            "--force has no use with --worktree: the current checkout is left alone"
        )
    result = checkout_run(
        open_repo(),
        run_spec,
        dict(os.environ),
        branch=branch,
        worktree=Path.cwd() / worktree if worktree is not None else None,
        force=force,
        dry_run=dry_run,
    )
    if fmt == "json":
        echo_json(result.as_json())
        return
    for line in describe(result):
        click.echo(safe(line))


def describe(result: CheckoutResult) -> list[str]:
    """What `checkout_run` did, or would do, in words."""
    would = result.dry_run
    short = result.commit[:7]
    lines = []
    if result.saved is not None:
        lines.append(
            f"Saved the local state as {result.saved.id}; to get it back: "
            f"git exp checkout {result.saved.id}"
        )
    elif would and result.saves_local_state:
        lines.append("Would save the local state as a snapshot (saved/<id>) first")
    target = f"{short} ({result.run})"
    if result.mode == "worktree":
        where = f"on a new branch '{result.branch}'" if result.branch else "detached"
        verb = "Would create" if would else "Created"
        lines.append(f"{verb} a worktree at {result.worktree}, {where} at {target}")
    elif result.mode == "branch":
        verb = "Would switch" if would else "Switched"
        lines.append(f"{verb} to a new branch '{result.branch}' at {target}")
    else:
        lines.append(f"{'Would detach' if would else 'Detached'} HEAD at {target}")
    if result.kept:
        # As with `git checkout`, changes to files the run did not change are carried over;
        # the working tree is then not exactly the run's code.
        tracked = [line for line in result.kept if not line.startswith("??")]
        lines.append(f"Local changes {'that would stay' if would else 'kept'}:")
        lines.extend(f"  {line}" for line in result.kept)
        if tracked:
            lines.append(
                "Note: with these changes the working tree is not exactly the run's code; "
                "`git exp checkout --force` saves them and restores the snapshot exactly"
            )
    if result.previous and result.mode != "worktree" and not would:
        lines.append(f"Back to where you were: git checkout {result.previous}")
    if result.reproduce:
        lines.append(f"To reproduce the run: {result.reproduce}")
    else:
        lines.append(f"{result.run} has no recorded command to reproduce")
    return lines

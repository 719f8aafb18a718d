"""`git exp diff` on the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gitexp.cli.common import CONTEXT, echo_json, open_repo, safe

if TYPE_CHECKING:
    from gitexp.commands.diff import RunDiff

DEFAULT_STAT_WIDTH = 80  # git's width when stdout is not a terminal


class _PathsAfterDoubleDash(click.Command):
    """Keeps what follows `--` apart: click alone cannot tell `A B` from `A -- B`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["gitexp.paths"] = args[split + 1 :]
            args = args[:split]
        return super().parse_args(ctx, args)


@click.command(cls=_PathsAfterDoubleDash, context_settings=CONTEXT)
@click.argument("specs", nargs=-1, metavar="A [B] [-- PATHS...]")
@click.option("--stat", "stat", is_flag=True, help="Show a diffstat instead of the patch.")
@click.option(
    "--stat-width",
    type=click.IntRange(min=1),
    help="Width of --stat (default: $COLUMNS, the terminal, or 80 as git does).",
)
@click.option("--name-only", is_flag=True, help="Show only the names of changed files.")
@click.option("--no-code", is_flag=True, help="Leave out the code; show only the record part.")
@click.option(
    "--color/--no-color",
    "colour",
    default=None,
    help="Colour the output (default: when stdout is a terminal).",
)
@click.option(
    "--exit-code", is_flag=True, help="Exit 1 when there are differences, 0 when there are none."
)
@click.option("--json", "as_json", is_flag=True, help="Print everything as JSON.")
def diff(
    specs: tuple[str, ...],
    stat: bool,
    stat_width: int | None,
    name_only: bool,
    no_code: bool,
    colour: bool | None,
    exit_code: bool,
    as_json: bool,
) -> None:
    """Show what differs between runs A and B: code, params, metrics, environment.

    The code part is `git diff` of the two snapshots (renames, --stat, --name-only,
    pathspecs after `--`). Then, when both are runs: params changed (~), added (+) and
    removed (-); each metric's last/min/max on both sides with the delta B−A; and the
    environment (Python, packages, variables, GPUs, host).

    A and B are runs (<name>/<id>, <id>, a unique suffix, @, @~N, the full ref) or any
    git revision (HEAD, a branch, a sha); a name that is both is taken as the run.
    With only A, B is the working tree as `git exp run` would snapshot it now.

    \b
    Examples:
      git exp diff @~1 @
      git exp diff k3f9 p0qz --stat
      git exp diff @ HEAD -- src/ '*.yaml'
      git exp diff @                     # the newest run against your working tree
      git exp diff @~1 @ --no-code --json
    """
    from gitexp.commands.diff import diff_runs
    from gitexp.treediff import Pathspec

    if not specs:
        raise click.UsageError("name a run (or revision) to compare: git exp diff A [B]")
    if len(specs) > 2:
        raise click.UsageError("too many runs: give A and B, and put paths after --")
    repo = open_repo()
    paths: list[str] = click.get_current_context().meta.get("gitexp.paths", [])
    pathspec = Pathspec.parse(paths, _cwd_prefix(repo))
    result = diff_runs(
        repo,
        specs[0],
        specs[1] if len(specs) == 2 else None,
        pathspec,
        code=not no_code,
        environ=dict(os.environ),
    )
    for skipped in result.b.skipped:
        click.echo(f"note: {safe(str(skipped['path']))} left out ({skipped['reason']})", err=True)
    if as_json:
        echo_json(result.as_json())
    else:
        use_colour = sys.stdout.isatty() if colour is None else colour
        _print_text(result, stat, stat_width or _terminal_width(), name_only, use_colour)
    if exit_code and result.has_differences():
        click.get_current_context().exit(1)


def _print_text(result: RunDiff, stat: bool, width: int, name_only: bool, colour: bool) -> None:
    from gitexp.difftext import colour_patch, colour_stat_line, record_lines
    from gitexp.treediff import name_only_lines, stat_lines

    changes = result.code or []
    if name_only:
        for line in name_only_lines(changes):
            click.echo(line)
    elif stat:
        for line in stat_lines(changes, width):
            click.echo(colour_stat_line(line) if colour else line, color=colour)
    else:
        sys.stdout.flush()
        for change in changes:
            sys.stdout.buffer.write(colour_patch(change.patch) if colour else change.patch)
        sys.stdout.buffer.flush()
    record = [] if name_only else record_lines(result)  # like git: names and nothing else
    if record and changes:
        click.echo()
    for line in record:
        click.echo(safe(line, keep_colour=True), color=colour)


def _cwd_prefix(repo: Any) -> str:
    """The current directory relative to the top of the working tree, as git prefixes paths."""
    if repo.workdir is None:
        return ""
    try:
        relative = Path.cwd().resolve().relative_to(Path(repo.workdir).resolve())
    except ValueError:
        return ""
    return relative.as_posix() if str(relative) != "." else ""


def _terminal_width() -> int:
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return DEFAULT_STAT_WIDTH

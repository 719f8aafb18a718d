"""`git exp diff` on the command line."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TYPE_CHECKING

import click

from gitexp.cli.common import CONTEXT, echo_json, open_repo, safe

if TYPE_CHECKING:
    from gitexp.commands.diff import CodeFormat, CodeText, RunDiff


class _PathsAfterDoubleDash(click.Command):
    """Keeps what follows `--` apart: click alone cannot tell `A B` from `A -- B`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            split = args.index("--")
            ctx.meta["gitexp.paths"] = args[split + 1 :]
            args = args[:split]
        return super().parse_args(ctx, args)


@click.command(cls=_PathsAfterDoubleDash, context_settings=CONTEXT)
@click.argument("specs", nargs=-1, metavar="A [B] [-- PATHSPEC...]")
@click.option("--stat", "stat", is_flag=True, help="Show git's diffstat instead of the patch.")
@click.option(
    "--stat-width",
    type=click.IntRange(min=1),
    help="Width of --stat (default: git's: $COLUMNS, the terminal, or 80).",
)
@click.option("--name-only", is_flag=True, help="Show only the names of changed files.")
@click.option("--no-code", is_flag=True, help="Leave out the code; show only the record part.")
@click.option(
    "--color/--no-color",
    "colour",
    default=None,
    help="Colour the output (default: as git would, from color.diff / color.ui).",
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

    The code part is `git diff` of the two snapshots, printed by git itself: your diff
    config applies (diff.algorithm, color.diff, textconv drivers, diff.renames,
    core.quotePath, ...), and so do --stat, --name-only and git's pathspec magic after `--`
    (relative to the current directory). Then, when both are runs: params changed (~),
    added (+) and removed (-); each metric's last/min/max on both sides with the delta
    B−A; and the environment (Python, packages, variables, GPUs, host).

    A and B are runs (<name>/<id>, <id>, a unique suffix, @, @~N, the full ref) or any
    git revision (HEAD, a branch, a sha); a name that is both is taken as the run.
    With only A, B is the working tree as `git exp run` would snapshot it now.

    \b
    Examples:
      git exp diff @~1 @
      git exp diff k3f9 p0qz --stat
      git exp diff @ HEAD -- src/ ':(exclude)*.ipynb'
      git exp diff @                     # the newest run against your working tree
      git exp diff @~1 @ --no-code --json
    """
    from gitexp.commands.diff import code_changes, code_text, diff_runs, git_colours

    if not specs:
        raise click.UsageError("name a run (or revision) to compare: git exp diff A [B]")
    if len(specs) > 2:
        raise click.UsageError("too many runs: give A and B, and put paths after --")
    repo = open_repo()
    paths: list[str] = click.get_current_context().meta.get("gitexp.paths", [])
    environ = _git_environ()
    result = diff_runs(repo, specs[0], specs[1] if len(specs) == 2 else None, environ)
    for skipped in result.b.skipped:
        click.echo(f"note: {safe(str(skipped['path']))} left out ({skipped['reason']})", err=True)
    if as_json:
        changes = None if no_code else code_changes(repo, result, paths, environ, cwd=os.getcwd())
        echo_json(result.as_json(changes))
        code_differs = bool(changes)
    else:
        if colour is None:
            colour = git_colours(repo, environ, sys.stdout.isatty())
        code_format: CodeFormat = "name-only" if name_only else "stat" if stat else "patch"
        code = None
        if not no_code:
            code = code_text(
                repo,
                result,
                paths,
                environ,
                cwd=os.getcwd(),
                code_format=code_format,
                colour=colour,
                stat_width=stat_width,
            )
        _print_text(result, code, code_format, colour)
        code_differs = code is not None and code.differs
    if exit_code and (code_differs or result.record_differs()):
        click.get_current_context().exit(1)


def _print_text(
    result: RunDiff, code: CodeText | None, code_format: CodeFormat, colour: bool
) -> None:
    """git's code part as git printed it, then the record part (none after names, as git)."""
    from gitexp.cli.difftext import record_lines

    if code is not None:
        click.echo(code.output, nl=False)
    record = [] if code_format == "name-only" else record_lines(result)
    if record and code is not None and code.output:
        click.echo()
    for line in record:
        click.echo(safe(line, keep_colour=True), color=colour)


def _git_environ() -> dict[str, str]:
    """The environment for git: the user's, plus the terminal's width as git would read it
    from its stdout (git writes into a pipe to gitexp, where it cannot ask the terminal)."""
    environ = dict(os.environ)
    if "COLUMNS" not in environ and sys.stdout.isatty():
        with contextlib.suppress(OSError, ValueError):
            environ["COLUMNS"] = str(os.get_terminal_size(sys.stdout.fileno()).columns)
    return environ

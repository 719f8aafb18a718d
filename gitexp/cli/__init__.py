"""The `git exp` command line: parse, call the core, print. Nothing else lives here.

One module per command; each defines a click command that `COMMANDS` registers below.
Heavy modules (pygit2, the core) are imported inside the commands so `--help` starts fast.
"""

from __future__ import annotations

import os
import sys

import click

from gitexp.argparams import remember_environment_secrets
from gitexp.cli import (
    artifact,
    checkout,
    compare,
    diff,
    export,
    gc,
    init,
    log,
    note,
    plot,
    pull,
    push,
    rerun,
    rm,
    run,
    show,
    status,
    tag,
    ui,
)
from gitexp.cli.common import CONTEXT, safe
from gitexp.errors import GitExpError, UsageError

EXIT_USAGE = 2  # click's own exit code for a bad command line
EXIT_INTERNAL_ERROR = 70
COMMANDS = (
    run.run,
    log.log,
    show.show,
    diff.diff,
    compare.compare,
    plot.plot,
    checkout.checkout,
    rerun.rerun,
    note.note,
    tag.tag,
    rm.rm,
    rm.restore,
    gc.gc,
    status.status,
    artifact.artifact,
    push.push,
    pull.fetch,
    pull.pull,
    init.init,
    export.export,
    export.import_runs,
    ui.ui,
)


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

    Exit status: 0 success, 1 error, 2 usage error (a bad option, value or
    combination), 70 internal error (a bug in gitexp), 130 interrupted (Ctrl-C);
    `git exp run` and `git exp rerun` exit with the program's own status.
    """


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Entry point: one `error:` line and exit 1 for user errors (2 for usage errors), never
    a traceback."""
    # What any command writes to git (a note, an annotation) is cleared of these values.
    remember_environment_secrets(os.environ)
    try:
        code = cli.main(prog_name="git exp", standalone_mode=False)
    except GitExpError as exc:
        click.echo(f"error: {safe(str(exc))}", err=True)
        sys.exit(EXIT_USAGE if isinstance(exc, UsageError) else 1)
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

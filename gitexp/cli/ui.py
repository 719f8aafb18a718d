"""`git exp ui` on the command line."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import click

from gitexp.cli.common import CONTEXT, safe

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750


@click.command(context_settings=CONTEXT)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    help=f"Port to listen on (default {DEFAULT_PORT}, or a free one if taken; 0: any free port).",
)
@click.option(
    "--host",
    metavar="ADDRESS",
    help=f"Address to listen on (default {DEFAULT_HOST}: this machine only).",
)
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
def ui(port: int | None, host: str | None, no_browser: bool) -> None:
    """Serve a local web dashboard of this repository's runs until Ctrl-C.

    The runs table (sort by any column, filter with the --where language of
    git exp log, show deleted runs, pages of 100), a page per run (record,
    params, environment, artifacts, metric curves, the live tail of its
    output), a compare view of selected runs (curves overlaid, params and
    metrics that differ), and editing of tags and messages, saved like
    git exp tag / git exp note do. Listens on 127.0.0.1 unless --host says
    otherwise. See docs/ui.md.

    Like Jupyter, it prints a URL with a one-time token: opening it logs that
    browser in (a session cookie) and every request, reads included, needs
    the session, so other accounts on this machine see nothing. The token
    works once; a second browser needs a restart of git exp ui.

    \b
    Examples:
      git exp ui
      git exp ui --port 9000 --no-browser
      git exp ui --host 0.0.0.0     # every interface: plain HTTP, no TLS
    """
    from gitexp.repository import open_repository
    from gitexp.web.server import is_loopback, is_unspecified

    address = host if host is not None else DEFAULT_HOST
    if is_unspecified(address) or not is_loopback(address):
        click.echo(
            f"warning: listening on {safe(address)}: plain HTTP, no TLS: whoever opens the URL "
            "below first (it works once) can read and edit your runs, and anyone who can watch "
            "the network between you and the browser can read the URL, the session cookie "
            "and every page",
            err=True,
        )
    repo = open_repository(Path.cwd())
    server = _start(Path(repo.path), address, port)
    click.echo(f"Serving the runs of {safe(str(repo.workdir or repo.path))}")
    click.echo(f"Dashboard at {server.login_url}  (Ctrl-C to stop)")
    opener = None if no_browser else _open_browser(server.login_url)
    # A plain `kill` stops the server as cleanly as Ctrl-C does, with status 0.
    signal.signal(signal.SIGTERM, lambda *_: _stop())
    signal.signal(signal.SIGINT, _interrupted)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
        raise SystemExit(130) from None
    except _Stop:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
        if opener is not None:
            opener.unlink(missing_ok=True)


class _Stop(BaseException):
    """Raised from the SIGTERM handler to leave serve_forever.

    Not an Exception: socketserver hands an Exception raised while it dispatches a request
    (where the signal may land) to handle_error, which would swallow the stop.
    """


def _stop() -> None:
    raise _Stop


def _interrupted(signum: int, frame: Any) -> None:
    # Through `git exp`, one Ctrl-C arrives twice (from the terminal and relayed by git): the
    # second must not interrupt the clean stop the first began.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _open_browser(login_url: str) -> Path:
    """Open the login URL through a file only this user can read, as Jupyter does: a URL on a
    browser's command line is visible to every account on the machine (`ps`)."""
    import tempfile
    import webbrowser
    from html import escape

    descriptor, name = tempfile.mkstemp(prefix="gitexp-ui-", suffix=".html")
    target = escape(login_url, quote=True)
    page = (
        f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={target}">'
        f'<title>git exp ui</title><p><a href="{target}">Open the dashboard</a></p>\n'
    )
    with os.fdopen(descriptor, "w", encoding="utf-8") as opened:
        opened.write(page)
    webbrowser.open(Path(name).as_uri())
    return Path(name)


def _start(repo_path: Path, host: str, port: int | None) -> Any:
    from gitexp.errors import GitExpError
    from gitexp.web.server import DashboardServer

    tries = [port] if port is not None else [DEFAULT_PORT, 0]
    for index, candidate in enumerate(tries):
        try:
            return DashboardServer(repo_path, host, candidate, os.environ)
        except OSError as exc:
            if index + 1 < len(tries):
                continue
            raise GitExpError(
                f"cannot listen on {host}:{candidate}: {exc.strerror or exc} "
                "(--port 0 picks a free port)"
            ) from None
    raise AssertionError("unreachable")

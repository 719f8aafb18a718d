"""`git exp artifact` on the command line."""

from __future__ import annotations

import os

import click

from gitexp.cli.common import CONTEXT, OutputFormat, echo_json, open_repo, output_options, safe
from gitexp.errors import GitExpError


@click.command(context_settings=CONTEXT)
@click.argument("run_spec", metavar="RUN")
@click.argument("name", required=False)
@click.option("--verify", is_flag=True, help="Also re-hash the files and compare their sha256.")
@output_options("Print the entry (or all of them) as JSON.")
def artifact(run_spec: str, name: str | None, verify: bool, fmt: OutputFormat) -> None:
    """Print the path of a run's artifact NAME, or list the run's artifacts.

    Artifacts are the files the program recorded with gitexp.artifact(path):
    copies in the run directory, with their size and sha256 in the record.
    The file must still exist with its recorded size (--verify: and sha256);
    otherwise, or when NAME is unknown, one error line and exit 1.

    \b
    Examples:
      git exp artifact @                       list the newest run's artifacts
      git exp artifact k3f9 best.pt            print the path of best.pt
      python eval.py --ckpt "$(git exp artifact @ best.pt)"
      git exp artifact @ --verify --json
    """
    from gitexp.commands.artifact import find_artifact

    if name is not None:
        _, found = find_artifact(
            open_repo(), run_spec, name, verify, os.environ.get("GITEXP_LOGDIR")
        )
        if fmt == "json":
            echo_json(found.as_json())
        else:
            click.echo(str(found.file))
        return
    _list(run_spec, verify, fmt == "json")


def _list(run_spec: str, verify: bool, as_json: bool) -> None:
    from gitexp.commands.artifact import OK, list_artifacts
    from gitexp.display import format_size

    run, artifacts = list_artifacts(open_repo(), run_spec, verify, os.environ.get("GITEXP_LOGDIR"))
    if as_json:
        echo_json([item.as_json() for item in artifacts])
    else:
        width = max((len(item.name) for item in artifacts), default=0)
        for item in artifacts:
            digest = (item.sha256 or "-")[:12]
            state = "" if item.state == OK else f"  [{item.state}]"
            line = f"{item.name:<{width}}  {format_size(item.size):>10}  {digest:<12}  {item.file}"
            click.echo(safe(line + state))
    bad = [item for item in artifacts if item.state != OK]
    if bad:
        raise GitExpError(
            f"{len(bad)} of {len(artifacts)} artifacts of {run.id} are not as recorded: "
            + "; ".join(f"'{item.name}' {item.detail}" for item in bad[:3])
            + (" ..." if len(bad) > 3 else "")
        )
    if not artifacts and not as_json:
        click.echo(f"{run.id} has no artifacts", err=True)

"""The one place gitexp runs the `git` binary: talking to remotes.

Network transport goes through git so that the user's own setup applies: credentials and
credential helpers, SSH config and keys, proxies, `insteadOf` URL rewrites. Everything local
stays on pygit2. The exit code is always checked; a failure is a TransportError carrying
git's own last line of stderr.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pygit2

from gitexp.errors import GitExpError

# Set for the git we start, so gitexp's pre-push hook does not push runs again from inside
# `git exp push` (which would recurse).
IN_GITEXP_VARIABLE = "GITEXP_TRANSPORT"


class TransportError(GitExpError):
    """git could not talk to the remote (or refused an update)."""


@dataclass
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def run_git(
    repo: pygit2.Repository,
    args: Sequence[str],
    environ: Mapping[str, str],
    stdin: str | None = None,
    allowed_codes: Sequence[int] = (0,),
) -> GitResult:
    """Run `git <args>` on `repo` with the user's environment; raise unless the exit is allowed."""
    env = dict(environ)
    env[IN_GITEXP_VARIABLE] = "1"
    command = ["git", f"--git-dir={repo.path}", *args]
    try:
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, env=env, check=False
        )
    except OSError as exc:
        raise TransportError(f"cannot run git: {exc.strerror or exc}") from None
    outcome = GitResult(result.returncode, result.stdout, result.stderr)
    if result.returncode not in allowed_codes:
        raise git_failure(args[0], outcome)
    return outcome


def git_failure(command: str, result: GitResult) -> TransportError:
    """The one-line error for a failed `git <command>`: git's first fatal line (the reason;
    later lines are advice such as "Please make sure you have the correct access rights"),
    else its last line."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    detail = fatal[0] if fatal else lines[-1] if lines else f"exit status {result.returncode}"
    return TransportError(f"git {command} failed: {detail}")


def remote_refs(
    repo: pygit2.Repository, remote: str, patterns: Sequence[str], environ: Mapping[str, str]
) -> dict[str, str]:
    """{ref name: object id} of the remote's refs matching `patterns` (`git ls-remote`)."""
    output = run_git(repo, ["ls-remote", "--refs", remote, *patterns], environ).stdout
    refs = {}
    for line in output.splitlines():
        oid, _, name = line.partition("\t")
        if oid and name:
            refs[name] = oid
    return refs

"""The one place gitexp runs the `git` binary.

git runs wherever its own behaviour is what users expect: snapshots (clean filters, LFS,
sparse and split indexes, fsmonitor), code diffs (the user's diff config) and transport
(credentials, SSH config, proxies, `insteadOf`). Objects, refs and notes stay on pygit2.
Nothing goes through a shell; the exit code is always checked, and a failure is a
`GitCommandError` carrying git's own first `fatal:`/`error:` line.
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


class GitCommandError(GitExpError):
    """git failed (or refused an update); the message is git's own reason."""


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout_bytes: bytes
    stderr: str

    @property
    def stdout(self) -> str:
        """stdout as text; bytes that are not UTF-8 (file names) survive as surrogates."""
        return self.stdout_bytes.decode("utf-8", "surrogateescape")


def run_git(
    repo: pygit2.Repository,
    args: Sequence[str],
    environ: Mapping[str, str],
    *,
    stdin: str | bytes | None = None,
    allowed_codes: Sequence[int] = (0,),
    env: Mapping[str, str] | None = None,
    work_tree: bool = False,
    cwd: str | None = None,
    config: Mapping[str, str] | None = None,
) -> GitResult:
    """Run `git <args>` on `repo` with the user's environment; raise unless the exit is allowed.

    `env` is added to (and overrides) `environ`; `work_tree` runs git in the working tree's
    root, for commands that read it, or in `cwd` when given (git then reads paths relative
    to it, as when the user runs git there); `config` is given as `-c key=value`, above the
    user's.
    """
    full_env = dict(environ)
    full_env.update(env or {})
    full_env[IN_GITEXP_VARIABLE] = "1"
    command = ["git", f"--git-dir={repo.path}"]
    if work_tree:
        command.append(f"--work-tree={repo.workdir}")
        cwd = cwd or repo.workdir
    for key, value in (config or {}).items():
        command.extend(["-c", f"{key}={value}"])
    command.extend(args)
    data = stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else stdin
    try:
        result = subprocess.run(
            command, input=data, capture_output=True, env=full_env, cwd=cwd, check=False
        )
    except OSError as exc:
        raise GitCommandError(f"cannot run git: {exc.strerror or exc}") from None
    outcome = GitResult(result.returncode, result.stdout, result.stderr.decode("utf-8", "replace"))
    if result.returncode not in allowed_codes:
        raise git_failure(args[0], outcome)
    return outcome


def git_failure(command: str, result: GitResult) -> GitCommandError:
    """The one-line error for a failed `git <command>`: git's first fatal line (the reason;
    later lines are advice such as "Please make sure you have the correct access rights"),
    else its last line."""
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    detail = fatal[0] if fatal else lines[-1] if lines else f"exit status {result.returncode}"
    return GitCommandError(f"git {command} failed: {detail}")


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

"""`git exp push`: send runs and their records to a remote, never forcing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pygit2

from gitexp import store
from gitexp.gitcmd import GitCommandError, GitResult, git_failure, remote_refs, run_git
from gitexp.ids import REF_PREFIX, printable
from gitexp.repository import default_remote
from gitexp.selection import select_runs

NOTES_REJECTED = (
    "the remote has run records this clone does not have yet (nothing was pushed): "
    "run `git exp pull {remote}`, then push again"
)


@dataclass
class PushResult:
    remote: str
    pushed: list[str] = field(default_factory=list)
    up_to_date: int = 0
    records: str = "up to date"  # or "pushed", "none"
    conflicts: list[str] = field(default_factory=list)  # runs the remote has another snapshot of


def push_runs(
    repo: pygit2.Repository,
    remote: str | None,
    specs: Sequence[str],
    environ: Mapping[str, str],
) -> PushResult:
    """Push the named runs (default: all) and refs/notes/experiments to `remote`.

    A run ref the remote holds at another commit is left out and reported (a run id taken
    on both sides); everything else goes in one atomic push.
    """
    remote = default_remote(repo, remote)
    ours = dict(store.list_run_refs(repo))
    chosen: list[str] | None = None
    if specs:
        chosen = sorted(run.ref for run in select_runs(repo, specs))
    theirs = remote_refs(repo, remote, [f"{REF_PREFIX}*"], environ)
    conflicts = sorted(
        ref
        for ref in (chosen if chosen is not None else ours)
        if theirs.get(ref, ours[ref]) != ours[ref]
    )
    if chosen is not None:
        refspecs = [f"{ref}:{ref}" for ref in chosen if ref not in conflicts]
    else:
        # A negative refspec (git 2.29) keeps the pattern: 100,000 refs would not fit in argv.
        refspecs = [f"{REF_PREFIX}*:{REF_PREFIX}*", *(f"^{ref}" for ref in conflicts)]
    notes = store.notes_tip(repo)
    if notes is not None:
        refspecs.append(f"{store.NOTES_REF}:{store.NOTES_REF}")
    result = _atomic_push(repo, remote, refspecs, environ)
    report = _read_push_report(
        result.stdout, result.stderr, remote, notes is not None, result.returncode
    )
    report.conflicts = [ref[len(REF_PREFIX) :] for ref in conflicts]
    return report


def _atomic_push(
    repo: pygit2.Repository, remote: str, refspecs: list[str], environ: Mapping[str, str]
) -> GitResult:
    """`git push --atomic`: a run ref must not reach the remote without its record (refused
    notes would leave other clones a run with none)."""
    push = ["push", "--porcelain", remote]
    result = run_git(repo, [*push, "--atomic", *refspecs], environ, allowed_codes=(0, 1, 128))
    if result.returncode == 128 and "does not support --atomic" in result.stderr:
        return _notes_first(repo, push, refspecs, environ)
    if result.returncode == 128:
        raise git_failure("push", result)
    return result


def _notes_first(
    repo: pygit2.Repository, push: list[str], refspecs: list[str], environ: Mapping[str, str]
) -> GitResult:
    """For a server without atomic pushes: the records, then the runs only if they went."""
    notes = [spec for spec in refspecs if spec.startswith(store.NOTES_REF)]
    runs = [spec for spec in refspecs if spec not in notes]
    first = run_git(repo, [*push, *notes], environ, allowed_codes=(0, 1)) if notes else None
    if first is not None and first.returncode != 0:
        return first  # refused records: no run goes without them
    if not any(not spec.startswith("^") for spec in runs):
        return first or GitResult(0, b"", "")
    second = run_git(repo, [*push, *runs], environ, allowed_codes=(0, 1))
    if first is None:
        return second
    return GitResult(
        second.returncode,
        first.stdout_bytes + second.stdout_bytes,
        first.stderr + second.stderr,
    )


def _read_push_report(
    stdout: str, stderr: str, remote: str, has_notes: bool, code: int
) -> PushResult:
    """Interpret `git push --porcelain`: one `<flag>\\t<from>:<to>\\t<summary>` line per ref."""
    result = PushResult(remote, records="up to date" if has_notes else "none")
    rejected: dict[str, str] = {}  # ref -> git's summary ("[rejected] (fetch first)")
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1:
            continue
        flag, (_, _, target) = parts[0], parts[1].partition(":")
        if flag == "!" and "atomic push failed" not in parts[2]:
            rejected[target] = parts[2]  # (the others were only held back with it)
        elif flag == "!":
            continue
        elif target == store.NOTES_REF:
            result.records = "up to date" if flag == "=" else "pushed"
        elif flag == "=":
            result.up_to_date += 1
        else:
            result.pushed.append(target)
    refused = {ref: summary for ref, summary in rejected.items() if not _out_of_date(summary)}
    if refused:
        raise _refusal(next(iter(refused.values())), stderr)
    if store.NOTES_REF in rejected:
        raise GitCommandError(NOTES_REJECTED.format(remote=remote))
    if rejected:
        raise GitCommandError(
            f"the remote refused {len(rejected)} run ref(s), e.g. {next(iter(rejected))}: "
            "a run of that id already exists there with another snapshot"
        )
    if code != 0:
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        raise GitCommandError(f"git push failed: {lines[-1] if lines else 'exit status 1'}")
    return result


def _out_of_date(summary: str) -> bool:
    """git's summary for a ref that is behind the remote's (not a refusal by the remote)."""
    return summary.startswith("[rejected]") and any(
        reason in summary for reason in ("fetch first", "non-fast-forward", "already exists")
    )


def _refusal(summary: str, stderr: str) -> GitCommandError:
    """The remote's own reason (a hook's message, fsck's complaint) as one line."""
    said = [
        line[len("remote:") :].strip() for line in stderr.splitlines() if line.startswith("remote:")
    ]
    why = summary.partition("(")[2].rstrip(")") or summary
    told = " ".join(line for line in said if line)
    detail = f"{why}: {told}" if told else why
    return GitCommandError(f"the remote refused the push ({printable(detail, limit=300)})")

"""Launching a run: snapshot the working tree, record the run, supervise the program.

The pipeline behind `git exp run` and `git exp rerun` (gitexp.commands.run, .rerun).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pygit2

from gitexp import environment, ids, probecache, rundir, store
from gitexp.argparams import (
    parse_argv_params,
    redact_argv,
    redact_params,
    redact_remembered_secrets,
    remember_secrets,
    secret_values,
)
from gitexp.claims import claim_run_ref
from gitexp.display import format_size
from gitexp.errors import GitExpError
from gitexp.labels import validate_tags
from gitexp.metrics import summarize_metrics
from gitexp.probecache import ProbeCache
from gitexp.program import Launch, resolve_program
from gitexp.pythonargv import is_python_launcher, parse_python_command
from gitexp.record import (
    RunRecord,
    dump_record,
    load_record,
    new_record,
    now_iso,
    write_first_record,
)
from gitexp.repository import (
    DEFAULT_MAX_FILE_SIZE,
    common_dir,
    config_size,
    config_value,
    identity,
    require_worktree,
)
from gitexp.runner import ProcessOutcome, supervise
from gitexp.snapshot import snapshot_tree

HOOK_DIR = Path(__file__).resolve().parent / "_hook"
PROBE_TIMEOUT_S = 10.0
EXIT_CANNOT_EXECUTE = 126
EXIT_NOT_FOUND = 127
EXIT_USAGE = 2  # argparse, click and optparse exit 2 on bad arguments


@dataclass
class RunRequest:
    """What the user asked `git exp run` to do."""

    command: list[str]
    cwd: Path
    environ: Mapping[str, str]
    name: str | None = None
    message: str | None = None
    tags: list[str] = field(default_factory=list)
    rerun_of: str | None = None  # `<name>/<id>` of the run this one repeats (git exp rerun)
    logdir: Path | None = None  # root of run directories; default: the configured one
    # Called with (run id, run directory) once the record exists, before the program starts.
    on_started: Callable[[str, Path], None] | None = None


@dataclass
class RunResult:
    run_id: str
    ref: str
    commit: str
    record: dict[str, Any]
    exit_status: int
    # Why the final record could not be written (exit.json holds the end for the next command).
    record_error: str | None = None


def run_experiment(
    repo: pygit2.Repository, request: RunRequest, report: Callable[[str], None]
) -> RunResult:
    """Record and run `request.command`; every failure after the ref exists is recorded."""
    workdir = require_worktree(repo)
    name = ids.validate_name(
        ids.default_name(request.command) if request.name is None else request.name
    )
    tags = validate_tags(request.tags)
    launch = resolve_program(
        request.command, request.cwd, request.environ.get("PATH"), sys.executable
    )
    packages = environment.PACKAGES_OF_INTEREST + _extra_packages(repo)
    python_probe = environment.start_python_probe(
        launch.python,
        packages,
        env=request.environ,
        cache=ProbeCache(common_dir(repo).joinpath(*probecache.CACHE_PATH)),
    )
    gpu_probe = environment.start_gpu_probe()
    host_probe = environment.start_host_probe(os.getpid())
    signature = identity(repo, dict(request.environ))
    max_size = config_size(repo, "exp.maxFileSize", DEFAULT_MAX_FILE_SIZE)
    snapshot = snapshot_tree(repo, max_size, request.environ)
    # The program's environment is the user's plus GITEXP_* values, which hold no secret.
    remember_secrets(secret_values(request.command, request.environ))
    # Redacted by name, then by value (HF_TOKEN's value passed as `--hub VALUE`), before it
    # reaches the commit message.
    command: list[str] = redact_remembered_secrets(redact_argv(request.command))
    root = request.logdir or rundir.logdir_root(repo, request.environ.get("GITEXP_LOGDIR"))
    # What may take long is gathered before the ref exists: between the ref and its first
    # note, `git exp tag` and friends find a run without a record.
    python_info = python_probe.result(PROBE_TIMEOUT_S)
    gathered = {
        "cwd": _relative_cwd(request.cwd, workdir),
        "python": {k: v for k, v in python_info.items() if k != "packages"},
        "packages": python_info.get("packages", {}),
        "gpus": gpu_probe.result(PROBE_TIMEOUT_S),
        "env": environment.recorded_env(request.environ),
        "git": snapshot.git_info(),
        # From the redacted command: `--token -abc` must not become the param `abc`.
        "params": redact_params(parse_argv_params(program_args(command))),
    }
    ref, commit = claim_run_ref(repo, name, snapshot, command, signature)
    gathered["host"] = host_probe.result()  # `uname -p`: a few ms, hidden behind the claim
    run_id = ref[len(ids.REF_PREFIX) :]
    run_dir = rundir.run_directory(root, *run_id.split("/"))
    started_at = now_iso()
    record = new_record(
        id=run_id,
        name=name,
        ref=ref,
        commit=commit,
        command=command,
        run_dir=str(run_dir),
        started_at=started_at,
        **gathered,
        message=request.message,
        message_at=started_at if request.message else None,
        tags=tags,
        rerun_of=request.rerun_of,
    )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_first_record(repo, ref, commit, record, signature)
    except (OSError, GitExpError) as exc:
        store.delete_ref(repo, ref)  # nothing ran yet: leave no half-written run behind
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise GitExpError(f"cannot start the run: {reason}") from None
    rundir.reserve_exit_file(run_dir)
    report(f"gitexp: {run_id} started (snapshot {commit[:7]})")
    for item in snapshot.skipped:
        size = f"{format_size(item['size'])}, " if item["size"] is not None else ""
        report(f"gitexp: left out {item['path']} ({size}{item['reason']})")
    if request.on_started is not None:
        request.on_started(run_id, run_dir)
    outcome: ProcessOutcome | None = None
    failure: dict[str, Any] | None = None
    try:
        outcome = supervise(
            launch.argv,
            request.cwd,
            child_environment(request.environ, launch, run_id, run_dir, commit),
            run_dir / rundir.OUTPUT_LOG,
            kill_grace_s=_kill_grace(repo),
            executable=launch.executable,
        )
    except OSError as exc:  # exec failed: not executable, bad interpreter line, ...
        failure = {"type": type(exc).__name__, "message": exc.strerror or str(exc)}
    except BaseException as exc:
        failure = {"type": type(exc).__name__, "message": str(exc) or "the supervisor stopped"}
        rundir.write_exit_file(run_dir, exit_facts(run_id, commit, outcome, failure, launch))
        final = finish_fields(record, run_dir, outcome, failure, launch.is_python)
        store.update_note(repo, commit, _merging(final), signature)
        rundir.remove_exit_file(run_dir)
        raise
    # Written first: if the record cannot be (a full disk), the next gitexp command ends it.
    rundir.write_exit_file(run_dir, exit_facts(run_id, commit, outcome, failure, launch))
    final = finish_fields(record, run_dir, outcome, failure, launch.is_python)
    if outcome is not None:
        exit_status = outcome.exit_status
    elif failure and failure["type"] == "FileNotFoundError":
        exit_status = EXIT_NOT_FOUND
    else:
        exit_status = EXIT_CANNOT_EXECUTE
    try:
        saved = load_record(store.update_note(repo, commit, _merging(final), signature))
    except GitExpError as exc:
        return RunResult(run_id, ref, commit, {**record, **final}, exit_status, str(exc))
    rundir.remove_exit_file(run_dir)
    return RunResult(run_id, ref, commit, saved, exit_status)


def exit_facts(
    run_id: str,
    commit: str,
    outcome: ProcessOutcome | None,
    failure: dict[str, Any] | None,
    launch: Launch,
) -> dict[str, Any]:
    """What exit.json holds: how the program ended, enough to write the final record later."""
    return {
        "id": run_id,
        "commit": commit,
        "status": _final_status(outcome, failure),
        "outcome": dataclasses.asdict(outcome) if outcome is not None else None,
        "failure": failure,
        "python": launch.is_python,
    }


def program_args(command: Sequence[str]) -> list[str]:
    """The arguments the program itself gets: after `python [options] script|-m mod|-c code`."""
    if not is_python_launcher(command[0]):
        return list(command[1:])
    return parse_python_command(command[1:]).args


def child_environment(
    environ: Mapping[str, str], launch: Launch, run_id: str, run_dir: Path, commit: str
) -> dict[str, str]:
    """The program's environment: the user's, plus the documented GITEXP_* variables."""
    env = dict(environ)
    env.update(
        GITEXP_RUN=run_id,
        GITEXP_RUN_DIR=str(run_dir),
        GITEXP_METRICS=str(run_dir / rundir.METRICS_FILE),
        GITEXP_COMMIT=commit,
        PYTHONUNBUFFERED="1",
    )
    if launch.is_python:
        # The hook records an uncaught exception's type and message, then removes itself.
        existing = environ.get("PYTHONPATH")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOOK_DIR), existing]))
    return env


def finish_fields(
    record: RunRecord,
    run_dir: Path,
    outcome: ProcessOutcome | None,
    failure: dict[str, Any] | None,
    is_python: bool,
) -> RunRecord:
    """The fields the supervisor owns at the end of a run."""
    summary = summarize_metrics(run_dir / rundir.METRICS_FILE)
    artifacts, bad_artifact_lines = rundir.read_artifacts(run_dir)
    params = dict(record["params"])
    params.update(rundir.read_params(run_dir))
    error = failure or rundir.read_error(run_dir)
    if error is None and outcome is not None and outcome.exit_status != 0 and is_python:
        error = rundir.traceback_from_log(run_dir / rundir.OUTPUT_LOG)
    if error is None and outcome is not None and outcome.exit_code == EXIT_USAGE:
        error = rundir.usage_error_from_log(run_dir / rundir.OUTPUT_LOG)
    fields: RunRecord = {
        "status": _final_status(outcome, failure),
        "ended_at": now_iso(outcome.ended_at if outcome is not None else None),
        "params": redact_params(params),
        "metrics": summary.metrics,
        "artifacts": artifacts,
        "error": error,
    }
    if outcome is not None:
        fields["duration_s"] = outcome.duration_s
        fields["exit_code"] = outcome.exit_code
        fields["signal"] = outcome.signal
        fields["resources"] = {
            "peak_rss_bytes": outcome.peak_rss_bytes,
            "cpu_seconds": outcome.cpu_seconds,
        }
        if outcome.interrupted_by is not None:
            fields["interrupted_by"] = outcome.interrupted_by
    problems = [p for p in (outcome.output_error if outcome else None,) if p]
    if summary.bad_lines:
        problems.append(f"{summary.bad_lines} unreadable line(s) in {rundir.METRICS_FILE}")
    if bad_artifact_lines:
        problems.append(f"{bad_artifact_lines} unreadable line(s) in {rundir.ARTIFACTS_FILE}")
    if problems:
        fields["problems"] = problems
    return fields


def _final_status(outcome: ProcessOutcome | None, failure: dict[str, Any] | None) -> str:
    if outcome is None:
        return "interrupted" if failure and failure["type"] == "KeyboardInterrupt" else "failed"
    if outcome.interrupted_by is not None:
        return "interrupted"
    return "succeeded" if outcome.exit_status == 0 else "failed"


def _merging(fields: RunRecord) -> Callable[[bytes | None], bytes]:
    """Apply our final fields to the latest record, keeping what others wrote meanwhile."""

    def change(old: bytes | None) -> bytes:
        try:
            current = load_record(old) if old is not None else new_record()
        except ValueError:
            current = new_record()
        current.update(fields)
        return dump_record(current)

    return change


def _relative_cwd(cwd: Path, workdir: Path) -> str:
    try:
        relative = cwd.resolve().relative_to(workdir.resolve())
    except ValueError:
        return str(cwd)
    return relative.as_posix() if str(relative) != "." else "."


def _extra_packages(repo: pygit2.Repository) -> tuple[str, ...]:
    value = config_value(repo, "exp.packages") or ""
    return tuple(part.strip() for part in value.replace(",", " ").split() if part.strip())


def _kill_grace(repo: pygit2.Repository) -> float:
    value = config_value(repo, "exp.killGrace")
    try:
        return float(value) if value else 10.0
    except ValueError:
        raise GitExpError(f"bad value for exp.killGrace: {value!r} (expected seconds)") from None


__all__ = ["RunRequest", "RunResult", "orjson", "run_experiment"]

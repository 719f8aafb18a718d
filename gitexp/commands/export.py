"""`git exp export`: pack runs, with their git objects and run directories, into a tar.gz.

No `git bundle` (gitexp does not run git for local work): the archive holds every object
reachable from the runs' snapshot commits, each as `objects/<id>` whose content is the object
exactly as git hashes it, so the receiver checks each one against its name. The layout is
gitexp.archive's (docs/format.md).
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pygit2

from gitexp import rundir
from gitexp.archive import MANIFEST, OBJECT_TYPES, OBJECTS_DIR, RUNDIRS_DIR, manifest_json
from gitexp.errors import GitExpError, UsageError
from gitexp.listing import Run
from gitexp.selection import select_runs, unique_runs

COMPRESS_LEVEL = 6  # gzip's 9 costs about twice the time for a few percent


@dataclass
class RunDirFile:
    """One file of a run directory to pack: its path inside the run directory, and on disk."""

    relative: str
    path: Path
    size: int
    mode: int
    mtime: float


@dataclass
class ExportedRun:
    """One run in the archive."""

    id: str
    ref: str
    commit: str
    run_dir: str | None  # the directory packed (None: none was found)
    files: int = 0
    bytes: int = 0

    def as_json(self) -> dict[str, Any]:
        return vars(self).copy()


@dataclass
class ExportReport:
    """What `git exp export` wrote."""

    output: str
    runs: list[ExportedRun] = field(default_factory=list)
    objects: int = 0
    archive_bytes: int | None = None  # None when written to a stream
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "runs": [run.as_json() for run in self.runs],
            "objects": self.objects,
            "archive_bytes": self.archive_bytes,
            "warnings": self.warnings,
        }


def runs_to_export(
    repo: pygit2.Repository,
    specs: Sequence[str],
    all_runs: bool = False,
    where: str | None = None,
) -> list[Run]:
    """The runs named by `specs`, plus those `where` matches, or every run with `all_runs`.

    As in `git exp log`, `--where` skips runs marked deleted unless `all_runs` is given too.
    """
    if not specs and not all_runs and where is None:
        raise UsageError("name the runs to export (RUN...), or use --all or --where")
    chosen = select_runs(repo, specs) if specs else []
    if where is not None or all_runs:
        chosen += select_runs(repo, where=where, include_deleted=all_runs)
    if not chosen:
        raise GitExpError("no run matches: nothing to export")
    return sorted(unique_runs(chosen), key=lambda run: (run.started, run.run_id))


def export_to_file(
    repo: pygit2.Repository,
    runs: Sequence[Run],
    path: Path,
    force: bool = False,
    env_logdir: str | None = None,
) -> ExportReport:
    """Write the archive of `runs` to `path`; refuses to replace a file unless `force`.

    The archive is written beside `path` and renamed into place, so a failed export never
    leaves half a file behind, nor destroys the file it would have replaced.
    """
    if os.path.lexists(path) and not force:
        raise GitExpError(f"{path} exists already (use --force to replace it)")
    if path.is_dir():
        raise GitExpError(f"{path} is a directory")
    temp = path.with_name(f".{path.name}.gitexp-{os.getpid()}")
    try:
        with open(temp, "wb") as handle:
            report = export_runs(repo, runs, handle, str(path), env_logdir)
        os.replace(temp, path)
    except OSError as exc:
        raise GitExpError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if temp.exists():
            temp.unlink()
    report.archive_bytes = path.stat().st_size
    return report


def export_runs(
    repo: pygit2.Repository,
    runs: Sequence[Run],
    output: IO[bytes],
    name: str,
    env_logdir: str | None = None,
) -> ExportReport:
    """Write the archive of `runs` to the binary stream `output` (named `name` in reports).

    Run directories are packed only from this clone's logdir (rundir.run_dir_here): a
    record's `run_dir` may come from someone else's remote and name any directory.
    """
    report = ExportReport(name)
    objects = reachable_objects(repo, [run.commit for run in runs], report.warnings)
    report.objects = len(objects)
    root = rundir.logdir_root(repo, env_logdir)
    packed: list[tuple[ExportedRun, list[RunDirFile]]] = []
    for run in runs:
        exported, files = _plan_run(run, root, report.warnings)
        report.runs.append(exported)
        packed.append((exported, files))
    content_bytes = sum(_object_member_size(repo, oid) for oid in objects)
    content_bytes += sum(file.size for _, files in packed for file in files)
    manifest = manifest_json(
        [
            {
                "id": run.id,
                "ref": run.ref,
                "commit": run.commit,
                "record": run.record,
                "run_dir": exported.run_dir,
            }
            for run, exported in zip(runs, report.runs, strict=True)
        ],
        report.objects,
        members=report.objects + sum(len(files) for _, files in packed),
        content_bytes=content_bytes,
    )
    with tarfile.open(fileobj=output, mode="w:gz", compresslevel=COMPRESS_LEVEL) as archive:
        _add_bytes(archive, MANIFEST, manifest)
        for oid in objects:
            object_type, data = repo.odb.read(oid)[:2]
            header = OBJECT_TYPES[object_type] + b" %d\0" % len(data)
            _add_bytes(archive, f"{OBJECTS_DIR}/{oid}", header + data)
        for exported, files in packed:
            _add_run_dir(archive, exported, files, report.warnings)
    return report


def _object_member_size(repo: pygit2.Repository, oid: pygit2.Oid) -> int:
    object_type, size = repo.odb.read_header(oid)
    return len(OBJECT_TYPES[object_type] + b" %d\0" % size) + size


def reachable_objects(
    repo: pygit2.Repository, commits: Iterable[str], warnings: list[str]
) -> list[pygit2.Oid]:
    """Every commit, tree and blob reachable from `commits` (submodule commits excepted).

    The receiving clone may lack any of them, and checking what it has would need a
    conversation with it: all of them go.
    """
    seen: set[pygit2.Oid] = set()
    order: list[pygit2.Oid] = []
    pending = [pygit2.Oid(hex=commit) for commit in commits]
    while pending:
        oid = pending.pop()
        if oid in seen:
            continue
        commit = _read(repo, oid, warnings)
        if commit is None:
            continue
        if not isinstance(commit, pygit2.Commit):
            raise GitExpError(f"{oid} is not a commit: only runs can be exported")
        seen.add(oid)
        order.append(oid)
        order.extend(_tree_objects(repo, commit.tree_id, seen))
        pending.extend(commit.parent_ids)
    return order


def _read(repo: pygit2.Repository, oid: pygit2.Oid, warnings: list[str]) -> pygit2.Object | None:
    try:
        return repo[oid]
    except KeyError:
        if repo.is_shallow:
            # The history behind a shallow clone's boundary is not here to send; the receiver
            # usually has it (the check at import says when not).
            warnings.append(f"commit {oid} is beyond this shallow clone's history: not exported")
            return None
        raise GitExpError(f"object {oid} is missing from this repository (git fsck)") from None


def _tree_objects(
    repo: pygit2.Repository, tree_id: pygit2.Oid, seen: set[pygit2.Oid]
) -> Iterator[pygit2.Oid]:
    pending = [tree_id]
    while pending:
        oid = pending.pop()
        if oid in seen:
            continue
        seen.add(oid)
        yield oid
        tree = repo[oid]
        assert isinstance(tree, pygit2.Tree)
        for entry in tree:
            if entry.filemode == pygit2.enums.FileMode.COMMIT:
                continue  # a submodule's commit lives in another repository
            if entry.type_str == "tree":
                pending.append(entry.id)
            elif entry.id not in seen:
                seen.add(entry.id)
                yield entry.id


def _plan_run(run: Run, root: Path, warnings: list[str]) -> tuple[ExportedRun, list[RunDirFile]]:
    exported = ExportedRun(run.id, run.ref, run.commit, None)
    directory = rundir.run_dir_here(root, run.name, run.run_id)
    if directory is None:
        expected = rundir.run_directory(root, run.name, run.run_id)
        warnings.append(f"run directory of {run.id} is not here ({expected}): exported without it")
        return exported, []
    other = rundir.names_other_dir(run.record, directory)
    if other is not None:
        warnings.append(f"{run.id}: its record names {other}; packed {directory} instead")
    files = list(_run_dir_files(directory, run.id, warnings))
    exported.run_dir = str(directory)
    exported.files = len(files)
    exported.bytes = sum(file.size for file in files)
    return exported, files


def _run_dir_files(directory: Path, run_id: str, warnings: list[str]) -> Iterator[RunDirFile]:
    """The regular files under `directory`; symlinks and special files are left out."""
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(dirs + names):
            path = Path(root) / name
            try:
                info = path.lstat()
            except OSError:
                continue  # gone meanwhile (a running program's temporary file)
            relative = path.relative_to(directory).as_posix()
            if stat.S_ISREG(info.st_mode):
                yield RunDirFile(relative, path, info.st_size, info.st_mode, info.st_mtime)
            elif not stat.S_ISDIR(info.st_mode):
                kind = "symlink" if stat.S_ISLNK(info.st_mode) else "special file"
                warnings.append(f"{run_id}: {relative} is a {kind}: left out")


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _add_run_dir(
    archive: tarfile.TarFile, run: ExportedRun, files: list[RunDirFile], warnings: list[str]
) -> None:
    prefix = f"{RUNDIRS_DIR}/{run.id}"
    for file in files:
        info = tarfile.TarInfo(f"{prefix}/{file.relative}")
        info.mode = 0o755 if file.mode & stat.S_IXUSR else 0o644
        info.mtime = int(file.mtime)
        try:
            handle = open(file.path, "rb")  # noqa: SIM115 (closed below; errors differ)
        except OSError as exc:
            warnings.append(f"{run.id}: cannot read {file.relative}: {exc.strerror or exc}")
            run.files -= 1
            run.bytes -= file.size
            continue
        with handle:
            # At most the size planned (and declared in the manifest): a running program may
            # still be appending.
            info.size = min(os.fstat(handle.fileno()).st_size, file.size)
            run.bytes += info.size - file.size
            try:
                archive.addfile(info, handle)
            except OSError as exc:
                raise GitExpError(
                    f"{file.path} shrank while it was packed ({exc}): export again"
                ) from None

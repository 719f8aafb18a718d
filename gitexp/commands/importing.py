"""`git exp import`: bring runs packed by `git exp export` into this clone, never overwriting.

(Not `import.py`: `import` is a Python keyword.) An archive may come from anyone, so:

1. a first pass reads every member and writes nothing: the manifest comes first and
   declares how many members and bytes follow, and the archive is refused as soon as it
   unpacks to more (a compressed bomb); each path must be one the format allows (no
   absolute paths, `..`, links or special files), each object must hash to its name and
   parse as `git fsck --strict` checks it, every object one points to must be in the archive
   or here (git's connectivity check on fetch), the manifest must agree with itself;
   anything else refuses the whole archive;
2. a second pass writes the objects and unpacks run directories into a staging directory
   under the logdir root (regular files only, created by us, never through a link);
3. run refs are created with compare-and-swap: an existing ref is never moved (the same
   commit: the run is already here; another commit: reported as a conflict);
4. the staged run directories are renamed into place, and all records are written in one
   notes commit (compare-and-swap), merged field by field with any record already here.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import shutil
import socket
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
import pygit2

from gitexp import rundir, store
from gitexp.archive import (
    HEX_ID,
    MANIFEST,
    OBJECTS_DIR,
    RUNDIRS_DIR,
    TYPE_BY_NAME,
    ArchivedRun,
    object_references,
    read_manifest,
    refused,
)
from gitexp.errors import GitExpError
from gitexp.ids import printable
from gitexp.record import dump_record, load_record
from gitexp.repository import identity
from gitexp.sync import merge_records

NOTES_MESSAGE = "Notes added by 'git exp import'\n"
COPY_CHUNK = 1024 * 1024
MAX_HEADER = 32  # `<type> <size>\0`: "commit" and 20 digits
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
# A tar member's header, padding and long-name records, at most; and the end of the archive.
MEMBER_OVERHEAD = 8192
END_OVERHEAD = 1024 * 1024
# Archives from before the manifest declared its size: at most this many times their size.
UNDECLARED_RATIO = 100


@dataclass
class ArchiveContents:
    """What the checking pass found in an archive."""

    runs: list[ArchivedRun] = field(default_factory=list)
    objects: dict[str, bytes] = field(default_factory=dict)  # id -> type name
    references: dict[str, str] = field(default_factory=dict)  # id needed -> id needing it
    run_dir_bytes: dict[str, int] = field(default_factory=dict)  # run id -> bytes of its files


@dataclass
class ImportReport:
    """What `git exp import` did, or would do with `dry_run`."""

    dry_run: bool
    imported: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    records_updated: list[str] = field(default_factory=list)
    objects: int = 0
    bytes_unpacked: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return vars(self).copy()


def import_runs(
    repo: pygit2.Repository,
    path: Path,
    *,
    env_logdir: str | None,
    environ: Mapping[str, str],
    dry_run: bool = False,
) -> ImportReport:
    """Import the runs of the archive at `path` (see the module's docstring for the steps)."""
    root = rundir.logdir_root(repo, env_logdir)
    contents = read_archive(path, root)
    check_connectivity(repo, path, contents)
    report = ImportReport(dry_run, objects=len(contents.objects))
    new_runs = _classify(repo, contents.runs, report)
    if dry_run:
        report.imported = [run.id for run in new_runs]
        report.bytes_unpacked = sum(contents.run_dir_bytes.get(run.id, 0) for run in new_runs)
        return report
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".import-", dir=root))
    except OSError as exc:
        raise GitExpError(f"cannot write to {root}: {exc.strerror}") from None
    try:
        staged = _write_objects(repo, path, root, staging, {run.id for run in new_runs})
        run_dirs: dict[str, str | None] = {}
        for run in new_runs:
            if not store.create_ref(repo, run.ref, pygit2.Oid(hex=run.commit)):
                report.conflicts.append(run.id)  # created meanwhile, by someone else
                continue
            report.imported.append(run.id)
            run_dirs[run.id] = _move_run_dir(run, staging, root, staged, report)
        present = set(report.present)
        to_record = [run for run in contents.runs if run.id in run_dirs or run.id in present]
        hostname = socket.gethostname()
        _write_records(
            repo,
            to_record,
            run_dirs,
            identity(repo, dict(environ)),
            report,
            lambda record: rundir.recorded_here(record, root, hostname),
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def read_archive(path: Path, root: Path) -> ArchiveContents:
    """Check every member of the archive and return what it holds; writes nothing."""
    contents = ArchiveContents()
    manifest: Any = None
    run_dir_owners: set[str] = set()
    with _open_archive(path) as (archive, bounded):
        for member, kind, value in _members(archive, bounded, path, root):
            if kind == "manifest":
                manifest = _read_json(archive, member, path)
                bounded.declare(manifest)
            elif kind == "object":
                object_type, body = _read_object(archive, member, value, path)
                contents.objects[value] = object_type
                for needed in _parsed_references(object_type, body, value, path):
                    contents.references.setdefault(needed, value)
            elif kind == "file":
                owner = value.split("\0")[0]
                run_dir_owners.add(owner)
                contents.run_dir_bytes[owner] = contents.run_dir_bytes.get(owner, 0) + member.size
    contents.runs = read_manifest(manifest, path)
    known = {run.id for run in contents.runs}
    strangers = sorted(run_dir_owners - known)
    if strangers:
        raise refused(
            path, f"it holds a run directory of {strangers[0]}, a run not in its manifest"
        )
    return contents


def check_connectivity(repo: pygit2.Repository, path: Path, contents: ArchiveContents) -> None:
    """Every object the archive's objects point to, and every run's commit, must be in the
    archive or here (as git checks on fetch); checked before anything is written."""
    for run in contents.runs:
        archived = contents.objects.get(run.commit)
        here = archived is None and isinstance(repo.get(run.commit), pygit2.Commit)
        if archived != b"commit" and not here:
            raise refused(path, f"the commit of {run.id} ({run.commit}) is not in it nor here")
    for needed, needing in contents.references.items():
        if needed not in contents.objects and needed not in repo.odb:
            raise refused(path, f"object {needed} (needed by {needing}) is neither in it nor here")


class _BoundedStream:
    """The archive's uncompressed bytes, refused past what its manifest declares.

    Until the manifest is read, at most MAX_MANIFEST_BYTES; then the declared bytes of the
    members after it, plus their headers; an archive from before the declaration was written
    is held to UNDECLARED_RATIO times its compressed size.
    """

    def __init__(self, raw: gzip.GzipFile, path: Path) -> None:
        self.raw = raw
        self.path = path
        self.consumed = 0
        self.limit = MAX_MANIFEST_BYTES + MEMBER_OVERHEAD
        self.content_left: int | None = None  # bytes of member content still allowed
        self.members_left: int | None = None

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.consumed += len(data)
        if self.consumed > self.limit:
            raise refused(self.path, f"it unpacks to more than the {self.limit} bytes it declares")
        return data

    def declare(self, manifest: Any) -> None:
        """Hold the rest of the archive to the size the manifest declares."""
        members = _count(manifest, "members")
        content = _count(manifest, "bytes")
        if members is not None and content is not None:
            self.members_left, self.content_left = members, content
            self.limit = self.consumed + content + members * MEMBER_OVERHEAD + END_OVERHEAD
        else:
            self.limit = self.consumed + UNDECLARED_RATIO * self.path.stat().st_size + END_OVERHEAD

    def admit(self, member: tarfile.TarInfo) -> None:
        """Refuse a member past the declared count or size before its content is read."""
        if self.members_left is None or self.content_left is None:
            return
        self.members_left -= 1
        self.content_left -= member.size
        if self.members_left < 0 or self.content_left < 0:
            raise refused(self.path, "it holds more members or bytes than its manifest declares")


def _count(manifest: Any, key: str) -> int | None:
    value = manifest.get(key) if isinstance(manifest, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@contextlib.contextmanager
def _open_archive(path: Path) -> Iterator[tuple[tarfile.TarFile, _BoundedStream]]:
    """The archive, read once in order (stream mode, never seeking back), and the bound on
    its uncompressed size; read errors anywhere in the block become one GitExpError."""
    try:
        with gzip.open(path, "rb") as raw:
            bounded = _BoundedStream(raw, path)
            with tarfile.open(fileobj=bounded, mode="r|") as archive:  # type: ignore[call-overload]
                yield archive, bounded
    except FileNotFoundError:
        raise GitExpError(f"no such file: {path}") from None
    except (OSError, tarfile.TarError, EOFError, zlib.error) as exc:
        raise GitExpError(f"cannot read {path}: {exc}") from None


def _members(
    archive: tarfile.TarFile, bounded: _BoundedStream, path: Path, root: Path
) -> Iterator[tuple[tarfile.TarInfo, str, str]]:
    """(member, kind, value) for every member, each checked; kinds: manifest (the first
    member), object (value: its id), file (value: `<run id>\\0<path in the run directory>`),
    dir."""
    seen: set[str] = set()
    for member in archive:
        kind, value = _check_member(member, path, root)
        if member.name in seen:
            raise refused(path, f"member '{printable(member.name)}' appears twice")
        if (kind == "manifest") != (not seen):
            raise refused(path, f"its first member is not {MANIFEST}")
        if kind != "manifest":
            bounded.admit(member)
        seen.add(member.name)
        yield member, kind, value


def _check_member(member: tarfile.TarInfo, path: Path, root: Path) -> tuple[str, str]:
    """What the member is, or GitExpError when the format does not allow it there."""
    name = member.name
    shown = f"member '{printable(name[:200])}'"
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise refused(path, f"{shown} is an absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise refused(path, f"{shown} leaves the directory it is unpacked in ('..')")
    if "\0" in name or any(part in ("", ".") for part in parts):
        raise refused(path, f"{shown} has an unusual path")
    if member.issym() or member.islnk():
        raise refused(path, f"{shown} is a link (to '{printable(member.linkname[:200])}')")
    if not (member.isfile() or member.isdir()):
        raise refused(path, f"{shown} is a device, fifo or other special file")
    if hasattr(tarfile, "data_filter"):
        try:
            tarfile.data_filter(member, str(root))
        except tarfile.FilterError as exc:
            raise refused(path, f"{shown}: {exc}") from None
    kind, value = _member_kind(parts, member.isdir())
    if not kind:
        raise refused(path, f"{shown} is not part of a gitexp export")
    return kind, value


def _member_kind(parts: list[str], is_dir: bool) -> tuple[str, str]:
    if parts == [MANIFEST] and not is_dir:
        return "manifest", ""
    if parts[0] == OBJECTS_DIR and len(parts) <= 2:
        if len(parts) == 1 and is_dir:
            return "dir", ""
        if len(parts) == 2 and HEX_ID.match(parts[1]) and not is_dir:
            return "object", parts[1]
        return "", ""
    if parts[0] == RUNDIRS_DIR:
        if len(parts) <= 3:
            return ("dir", "") if is_dir else ("", "")
        run_id = f"{parts[1]}/{parts[2]}"
        return ("dir" if is_dir else "file"), f"{run_id}\0{'/'.join(parts[3:])}"
    return "", ""


def _read_json(archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> Any:
    try:
        return orjson.loads(_read_member(archive, member))
    except orjson.JSONDecodeError as exc:
        raise refused(path, f"its {MANIFEST} is not valid JSON ({exc})") from None


def _read_object(
    archive: tarfile.TarFile, member: tarfile.TarInfo, hex_id: str, path: Path
) -> tuple[bytes, bytes]:
    """(type name, content) of an object member whose content hashes to `hex_id`; a blob's
    content is hashed in chunks and not kept (b"")."""
    handle = _member_file(archive, member)
    raw, object_type, size = _read_header(handle)
    digest = hashlib.sha1(raw)
    kept: list[bytes] = []
    length = 0
    while chunk := handle.read(COPY_CHUNK):
        digest.update(chunk)
        length += len(chunk)
        if object_type != b"blob":
            kept.append(chunk)
    if digest.hexdigest() != hex_id:
        raise refused(
            path, f"object {hex_id} does not match its hash (the archive is damaged or was altered)"
        )
    if object_type is None or size != length:
        raise refused(path, f"object {hex_id} is not a git object")
    return object_type, b"".join(kept)


def _read_header(handle: IO[bytes]) -> tuple[bytes, bytes | None, int | None]:
    """(the bytes read, type name, size) of an object's `<type> <size>\\0` header; the type
    and size are None when it is not one."""
    raw = b""
    while len(raw) <= MAX_HEADER and not raw.endswith(b"\0"):
        byte = handle.read(1)
        if not byte:
            break
        raw += byte
    object_type, _, size = raw[:-1].partition(b" ")
    if not raw.endswith(b"\0") or object_type not in TYPE_BY_NAME or not size.isdigit():
        return raw, None, None
    return raw, object_type, int(size)


def _write_object(
    repo: pygit2.Repository,
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    hex_id: str,
    path: Path,
) -> None:
    """Write an object checked by the first pass; a blob streams from the archive."""
    handle = _member_file(archive, member)
    _, object_type, _ = _read_header(handle)
    if object_type == b"blob":
        written = repo.create_blob_fromiobase(handle)
    elif object_type is not None:
        written = repo.odb.write(TYPE_BY_NAME[object_type], handle.read())
    if object_type is None or str(written) != hex_id:
        raise refused(path, f"object {hex_id} changed while it was imported")


def _parsed_references(object_type: bytes, body: bytes, hex_id: str, path: Path) -> list[str]:
    try:
        return object_references(object_type, body)
    except ValueError as exc:
        raise refused(
            path, f"object {hex_id} is not a valid {object_type.decode()}: {exc}"
        ) from None


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    return _member_file(archive, member).read()


def _member_file(archive: tarfile.TarFile, member: tarfile.TarInfo) -> io.BufferedReader:
    handle = archive.extractfile(member)
    assert isinstance(handle, io.BufferedReader)  # a regular file (checked)
    return handle


def _classify(
    repo: pygit2.Repository, runs: list[ArchivedRun], report: ImportReport
) -> list[ArchivedRun]:
    """The runs to create; the others go to `report.present` or `report.conflicts`."""
    ours = dict(store.list_run_refs(repo))
    new = []
    for run in runs:
        if run.ref not in ours:
            new.append(run)
        elif ours[run.ref] == run.commit:
            report.present.append(run.id)
        else:
            report.conflicts.append(run.id)
    return new


def _write_objects(
    repo: pygit2.Repository, path: Path, root: Path, staging: Path, new_runs: set[str]
) -> dict[str, int]:
    """Write every object, and stage the run directories of `new_runs`; bytes staged per run."""
    staged: dict[str, int] = {}
    with _open_archive(path) as (archive, bounded):
        for member, kind, value in _members(archive, bounded, path, root):
            if kind == "manifest":
                bounded.declare(_read_json(archive, member, path))
            elif kind == "object" and value not in repo.odb:
                _write_object(repo, archive, member, value, path)
            elif kind == "file":
                run_id, _, relative = value.partition("\0")
                if run_id in new_runs:
                    try:
                        _stage_file(archive, member, staging / run_id / relative)
                    except OSError as exc:
                        raise GitExpError(
                            f"cannot unpack {relative} of {run_id}: {exc.strerror or exc}"
                        ) from None
                    staged[run_id] = staged.get(run_id, 0) + member.size
    return staged


def _stage_file(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    """Write a member as a new regular file; the staging directory holds nothing but ours."""
    target.parent.mkdir(parents=True, exist_ok=True)
    source = archive.extractfile(member)
    assert source is not None
    with source, open(target, "xb") as handle:
        shutil.copyfileobj(source, handle, COPY_CHUNK)
    target.chmod(0o755 if member.mode & 0o100 else 0o644)
    os.utime(target, (member.mtime, member.mtime))


def _move_run_dir(
    run: ArchivedRun, staging: Path, root: Path, staged: dict[str, int], report: ImportReport
) -> str | None:
    """Move the staged run directory into place; where this clone's record should point."""
    source = staging / run.id
    target = rundir.run_directory(root, run.name, run.run_id)
    if not source.is_dir():
        return None
    if os.path.lexists(target):
        report.warnings.append(f"{target} exists already: kept as it is, not unpacked again")
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)
    report.bytes_unpacked += staged.get(run.id, 0)
    return str(target)


def _write_records(
    repo: pygit2.Repository,
    runs: list[ArchivedRun],
    run_dirs: Mapping[str, str | None],
    signature: pygit2.Signature,
    report: ImportReport,
    recorded_here: Callable[[dict[str, Any]], bool],
) -> None:
    """Write the records of `runs` in one notes commit, merged with the ones already here
    (the facts of a run this clone recorded stay as they are: an archive adds annotations)."""
    warnings: list[str] = []
    updated: list[str] = []

    def next_commit(tip: pygit2.Commit | None) -> pygit2.Oid | None:
        warnings.clear()
        changes, changed_here = _record_changes(
            store.notes_of(repo, tip), runs, run_dirs, warnings, recorded_here
        )
        updated[:] = changed_here
        if not changes:
            return None
        return store.notes_commit_with(repo, tip, changes, [], NOTES_MESSAGE, signature)

    store.swap_notes(repo, next_commit, "notes: 'git exp import'")
    report.records_updated = updated
    report.warnings.extend(warnings)


def _record_changes(
    notes: Mapping[str, bytes],
    runs: list[ArchivedRun],
    run_dirs: Mapping[str, str | None],
    warnings: list[str],
    recorded_here: Callable[[dict[str, Any]], bool],
) -> tuple[dict[str, bytes], list[str]]:
    """(new notes by commit, ids of runs already here whose record changed)."""
    changes: dict[str, bytes] = {}
    updated: list[str] = []
    for run in runs:
        if run.record is None:
            warnings.append(f"{run.id} has no record in the archive")
            continue
        incoming = dict(run.record)
        existing = notes.get(run.commit)
        if existing is None:
            if run_dirs.get(run.id):
                incoming["run_dir"] = run_dirs[run.id]
            changes[run.commit] = dump_record(incoming)
            continue
        try:
            local = load_record(existing)
        except ValueError:
            warnings.append(f"the record of {run.id} here is unreadable: kept as it is")
            continue
        merged = merge_records(local, incoming, None, facts_from_local=recorded_here(local))
        merged["run_dir"] = local.get("run_dir")  # where this clone keeps its output
        if run.id in run_dirs:
            # A record here without its run (collected by `git exp gc`): importing the run
            # brings it back as the archive has it, as a restore would.
            merged["deleted"] = incoming.get("deleted")
            merged["run_dir"] = run_dirs[run.id] or local.get("run_dir")
        if merged != local:
            changes[run.commit] = dump_record(merged)
            updated.append(run.id)
    return changes, updated

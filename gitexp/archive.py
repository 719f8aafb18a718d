"""The `git exp export` archive, written by export and read by import (docs/format.md).

`manifest.json` (format, version, and per run: id, ref, commit, record), `objects/<sha1>`
(one per object, its content as git hashes it: `<type> <size>\\0<data>`), and
`rundirs/<name>/<id>/...` (the run directory's regular files).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pygit2

from gitexp.errors import GitExpError
from gitexp.ids import parse_run_ref
from gitexp.record import now_iso

ARCHIVE_FORMAT = "gitexp-export"
ARCHIVE_VERSION = 1
MANIFEST = "manifest.json"
OBJECTS_DIR = "objects"
RUNDIRS_DIR = "rundirs"
OBJECT_TYPES = {
    pygit2.enums.ObjectType.COMMIT: b"commit",
    pygit2.enums.ObjectType.TREE: b"tree",
    pygit2.enums.ObjectType.BLOB: b"blob",
    pygit2.enums.ObjectType.TAG: b"tag",
}
TYPE_BY_NAME = {name: object_type for object_type, name in OBJECT_TYPES.items()}
HEX_ID = re.compile(r"[0-9a-f]{40}\Z")


class ArchiveError(GitExpError):
    """An archive that is not a valid gitexp export: damaged, tampered with, or hostile."""


@dataclass
class ArchivedRun:
    """One run as the archive's manifest describes it."""

    name: str
    run_id: str
    ref: str
    commit: str
    record: dict[str, Any] | None

    @property
    def id(self) -> str:
        return f"{self.name}/{self.run_id}"


def manifest_json(
    entries: list[dict[str, Any]], objects: int, *, members: int, content_bytes: int
) -> bytes:
    """The manifest of an archive of the runs `entries` describe, holding `objects` objects,
    `members` members after the manifest and `content_bytes` bytes in them (what import
    holds the archive to, so a compressed bomb is refused as soon as it overflows)."""
    from gitexp import __version__

    manifest = {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "created_at": now_iso(),
        "gitexp": __version__,
        "objects": objects,
        "members": members,
        "bytes": content_bytes,
        "runs": entries,
    }
    return orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n"


def read_manifest(manifest: Any, path: Path) -> list[ArchivedRun]:
    """The runs the manifest (parsed JSON) of the archive at `path` lists, checked."""
    if not isinstance(manifest, dict) or manifest.get("format") != ARCHIVE_FORMAT:
        raise refused(path, f"it is not a gitexp export (no valid {MANIFEST})")
    version = manifest.get("version")
    if not isinstance(version, int) or version > ARCHIVE_VERSION:
        raise refused(path, f"its format version {version!r} is newer than this gitexp reads")
    entries = manifest.get("runs")
    if not isinstance(entries, list):
        raise refused(path, f"its {MANIFEST} has no list of runs")
    runs: dict[str, ArchivedRun] = {}
    for entry in entries:
        run = _manifest_run(entry, path)
        if run.ref in runs:
            raise refused(path, f"its {MANIFEST} lists {run.id} twice")
        runs[run.ref] = run
    return list(runs.values())


def _manifest_run(entry: Any, path: Path) -> ArchivedRun:
    if not isinstance(entry, dict):
        raise refused(path, f"its {MANIFEST} has a run that is not an object")
    ref, commit, record = entry.get("ref"), entry.get("commit"), entry.get("record")
    parsed = parse_run_ref(ref) if isinstance(ref, str) else None
    if parsed is None or not isinstance(ref, str) or entry.get("id") != "/".join(parsed):
        raise refused(path, f"its {MANIFEST} has a run with an invalid ref or id")
    if not isinstance(commit, str) or not HEX_ID.match(commit):
        raise refused(path, f"its {MANIFEST} gives {ref} an invalid commit")
    if record is not None and not isinstance(record, dict):
        raise refused(path, f"the record of {ref} in its {MANIFEST} is not an object")
    if record is not None and (
        record.get("commit") not in (None, commit) or record.get("ref") not in (None, ref)
    ):
        raise refused(path, f"the record of {ref} in its {MANIFEST} is of another run")
    return ArchivedRun(parsed[0], parsed[1], ref, commit, record)


def object_references(obj: pygit2.Object) -> Iterator[pygit2.Oid]:
    """The objects `obj` points to (a submodule's commit lives in another repository)."""
    if isinstance(obj, pygit2.Commit):
        yield obj.tree_id
        yield from obj.parent_ids
    elif isinstance(obj, pygit2.Tree):
        for entry in obj:
            if entry.filemode != pygit2.enums.FileMode.COMMIT:  # submodules live elsewhere
                yield entry.id
    elif isinstance(obj, pygit2.Tag):
        yield obj.target


def refused(path: Path, reason: str) -> ArchiveError:
    """The error refusing the archive at `path` for `reason`."""
    return ArchiveError(f"refusing {path.name}: {reason}")

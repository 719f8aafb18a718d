"""The `git exp export` archive, written by export and read by import (docs/format.md).

`manifest.json` (format, version, and per run: id, ref, commit, record), `objects/<sha1>`
(one per object, its content as git hashes it: `<type> <size>\\0<data>`), and
`rundirs/<name>/<id>/...` (the run directory's regular files).
"""

from __future__ import annotations

import re
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
OBJECT_NAMES = set(TYPE_BY_NAME)
HEX_ID = re.compile(r"[0-9a-f]{40}\Z")
# What `git fsck --strict` accepts: no group-writable modes, names and dates as git writes them.
TREE_MODES = {b"100644", b"100755", b"120000", b"40000", b"160000"}
IDENT = re.compile(rb"[^<>\n]* <[^<>\n]*> (?:0|[1-9][0-9]*) [+-][0-9]{4}\Z")


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


def object_references(object_type: bytes, body: bytes) -> list[str]:
    """The ids of the objects a git object points to, parsed as `git fsck --strict` would check
    it; ValueError saying what is wrong when fsck would complain.

    A submodule's commit lives in another repository and is not among them.
    """
    if object_type == b"tree":
        return _tree_references(body)
    if object_type == b"commit":
        return _commit_references(body)
    if object_type == b"tag":
        return _tag_references(body)
    return []


def _tree_references(body: bytes) -> list[str]:
    references: list[str] = []
    names: set[bytes] = set()
    previous = b""
    position = 0
    while position < len(body):
        space = body.find(b" ", position)
        end = body.find(b"\0", space + 1) if space >= 0 else -1
        if end < 0 or end + 21 > len(body):
            raise ValueError("a tree entry is cut short")
        mode, name = body[position:space], body[space + 1 : end]
        if mode not in TREE_MODES:
            raise ValueError(f"a tree entry has the mode {mode!r}")
        if not name or b"/" in name or name in (b".", b"..") or name.lower() == b".git":
            raise ValueError(f"a tree entry is named {name!r}")
        key = name + b"/" if mode == b"40000" else name
        if name in names or key <= previous:
            raise ValueError(f"a tree has {name!r} twice or out of order")
        names.add(name)
        previous = key
        if mode != b"160000":
            references.append(body[end + 1 : end + 21].hex())
        position = end + 21
    return references


def _commit_references(body: bytes) -> list[str]:
    headers = _headers(body)
    tree = _header_id(headers, 0, b"tree")
    parents = []
    index = 1
    while index < len(headers) and headers[index].startswith(b"parent "):
        parents.append(_header_id(headers, index, b"parent"))
        index += 1
    for offset, field in enumerate((b"author", b"committer")):
        _check_ident(headers, index + offset, field)
    return [tree, *parents]


def _tag_references(body: bytes) -> list[str]:
    headers = _headers(body)
    target = _header_id(headers, 0, b"object")
    if (
        len(headers) < 3
        or headers[1][5:] not in OBJECT_NAMES
        or not headers[1].startswith(b"type ")
    ):
        raise ValueError("a tag has no valid type")
    if not headers[2].startswith(b"tag ") or len(headers[2]) == 4:
        raise ValueError("a tag has no name")
    if len(headers) > 3 and headers[3].startswith(b"tagger "):
        _check_ident(headers, 3, b"tagger")
    return [target]


def _headers(body: bytes) -> list[bytes]:
    end = body.find(b"\n\n")
    head = body if end < 0 else body[: end + 1]
    if b"\0" in head or not head.endswith(b"\n"):
        raise ValueError("its header has a NUL byte or no end")
    return head.split(b"\n")[:-1]


def _header_id(headers: list[bytes], index: int, field: bytes) -> str:
    line = headers[index] if index < len(headers) else b""
    value = line[len(field) + 1 :]
    if not line.startswith(field + b" ") or not HEX_ID.match(value.decode("latin-1")):
        raise ValueError(f"it has no valid '{field.decode()}' line")
    return value.decode()


def _check_ident(headers: list[bytes], index: int, field: bytes) -> None:
    line = headers[index] if index < len(headers) else b""
    if not line.startswith(field + b" ") or not IDENT.match(line[len(field) + 1 :]):
        raise ValueError(f"it has no valid '{field.decode()}' line")


def refused(path: Path, reason: str) -> GitExpError:
    """The error refusing the archive at `path` for `reason`."""
    return GitExpError(f"refusing {path.name}: {reason}")

"""The listing cache: every note's summary, kept on disk between commands.

Reading 100,000 notes costs seconds; the cache makes a second `git exp log` cost what
reading one file does. It is keyed by the notes commit it was built from: when
refs/notes/experiments moved, only the notes the two notes trees differ in are re-read (a
libgit2 tree diff skips every unchanged fan-out directory). It is never the source of truth:
a missing, foreign, truncated or corrupt file is ignored and rebuilt, and a cache that cannot
be written (a read-only repository) only costs speed. Format: docs/format.md.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pygit2

from gitexp import store
from gitexp.repository import common_dir

CACHE_PATH = ("experiments", ".cache", "listing-v1")
MAGIC = b"gitexp-listing-cache"
FORMAT_VERSION = 1
NOTE_PATH = re.compile(r"(?:[0-9a-f]{2}/)*[0-9a-f]{2,40}\Z")

# summarize(annotated object hex, note bytes) -> (summary, parsed record or None)
Summarize = Callable[[str, bytes], tuple[list[Any], "dict[str, Any] | None"]]


class NotesIndex:
    """Every note's blob id and summary, plus the records parsed while building it."""

    def __init__(self, entries: dict[str, list[Any]], parsed: dict[str, dict[str, Any]]):
        # entries: annotated object hex -> [note blob hex, summary]
        self.entries = entries
        self.parsed = parsed


def cache_file(repo: pygit2.Repository) -> Path:
    """Where the listing cache of `repo` lives (shared by all its worktrees)."""
    return common_dir(repo).joinpath(*CACHE_PATH)


def notes_index(repo: pygit2.Repository, summarize: Summarize, summary_version: int) -> NotesIndex:
    """The summary of every note in refs/notes/experiments, from the cache when it is current.

    `summary_version` names the shape `summarize` returns: a cache built by another shape is
    rebuilt, never misread.
    """
    tip = store.notes_tip(repo)
    tip_hex = str(tip.id) if tip is not None else None
    path = cache_file(repo)
    cached = _read(path, summary_version)
    if cached is not None and cached[0] == tip_hex:
        return NotesIndex(cached[1], {})
    index = _updated(repo, cached, tip, summarize)
    if index is None:
        index = _built(repo, tip, summarize)
    _write(path, summary_version, tip_hex, index.entries)
    return index


def _built(repo: pygit2.Repository, tip: pygit2.Commit | None, summarize: Summarize) -> NotesIndex:
    index = NotesIndex({}, {})
    if tip is None:
        return index
    for hex_id, blob_id in store.walk_note_blobs(tip):
        _add(repo, index, hex_id, str(blob_id), summarize)
    return index


def _updated(
    repo: pygit2.Repository,
    cached: tuple[str | None, dict[str, list[Any]]] | None,
    tip: pygit2.Commit | None,
    summarize: Summarize,
) -> NotesIndex | None:
    """The cached index moved forward to `tip` by the notes-tree diff; None to rebuild."""
    if cached is None or cached[0] is None or tip is None:
        return None
    try:
        old = repo[cached[0]].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return None  # the cached notes commit is gone (gc'd after a rewrite): rebuild
    index = NotesIndex(cached[1], {})
    removed: dict[str, list[Any]] = {}
    added: list[tuple[str, str]] = []
    for delta in old.tree.diff_to_tree(tip.tree).deltas:
        old_hex = _note_hex(delta.old_file.path)
        if old_hex is not None and delta.status != pygit2.enums.DeltaStatus.ADDED:
            entry = index.entries.pop(old_hex, None)
            if entry is not None:
                removed[old_hex] = entry
        new_hex = _note_hex(delta.new_file.path)
        if (
            new_hex is not None
            and delta.status != pygit2.enums.DeltaStatus.DELETED
            and delta.new_file.mode != pygit2.enums.FileMode.COMMIT  # not a note: a gitlink
        ):
            added.append((new_hex, str(delta.new_file.id)))
    # Removals first. `git notes` re-lays the whole tree out in its own fan-out (every note
    # deleted at one path, added at another): a note whose blob is unchanged keeps its summary.
    for hex_id, blob_hex in added:
        moved = removed.get(hex_id)
        if moved is not None and moved[0] == blob_hex:
            index.entries[hex_id] = moved
        else:
            _add(repo, index, hex_id, blob_hex, summarize)
    return index


def _add(
    repo: pygit2.Repository, index: NotesIndex, hex_id: str, blob_hex: str, summarize: Summarize
) -> None:
    summary, record = summarize(hex_id, store.read_blob(repo, blob_hex))
    index.entries[hex_id] = [blob_hex, summary]
    if record is not None:
        index.parsed[hex_id] = record


def _note_hex(path: str | None) -> str | None:
    if not path or not NOTE_PATH.match(path):
        return None
    hex_id = path.replace("/", "")
    return hex_id if len(hex_id) == 40 else None


def _read(path: Path, summary_version: int) -> tuple[str | None, dict[str, list[Any]]] | None:
    """(notes commit hex, entries) from the cache file; None unless it is whole and ours."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    header, _, body = data.partition(b"\n")
    parts = header.split(b" ")
    expected = [MAGIC, str(FORMAT_VERSION).encode(), str(summary_version).encode()]
    if len(parts) != 5 or parts[:3] != expected:
        return None
    if parts[3] != str(len(body)).encode() or parts[4] != str(zlib.crc32(body)).encode():
        return None  # truncated or damaged
    try:
        value = orjson.loads(body)
        tip, entries = value["notes"], value["entries"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    if not (tip is None or isinstance(tip, str)) or not isinstance(entries, dict):
        return None
    return tip, entries


def _write(
    path: Path, summary_version: int, tip_hex: str | None, entries: dict[str, list[Any]]
) -> None:
    """Replace the cache file atomically; a read-only repository just goes without."""
    body = orjson.dumps({"notes": tip_hex, "entries": entries})
    header = f"{MAGIC.decode()} {FORMAT_VERSION} {summary_version} {len(body)} {zlib.crc32(body)}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".listing-", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 would hide it from other users
            file.write(header.encode() + b"\n" + body)
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)

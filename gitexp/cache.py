"""The listing cache: every note's summary and the run refs, kept on disk between commands.

Reading 100,000 notes costs seconds; the cache makes a second `git exp log` cost what
reading one file does. Its summaries are keyed by the notes commit they were built from:
when refs/notes/experiments moved, only the notes the two notes trees differ in are re-read
(a libgit2 tree diff skips every unchanged fan-out directory). Its list of runs, already in
listing order, is kept with a stamp of the run refs' storage (`store.run_refs_stamp`) and
used only while that stamp is unchanged and was not taken within `RACY_NS` of the cache
being written. It is never the source of truth: a missing, foreign, truncated or corrupt
file is ignored and rebuilt, and a cache that cannot be written (a read-only repository)
only costs speed. Format: docs/format.md.
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

CACHE_PATH = ("experiments", ".cache", "listing-v2")
MAGIC = b"gitexp-listing-cache"
FORMAT_VERSION = 2
# A refs stamp this close to the cache file's own mtime may miss a change made within the
# same timestamp tick (1 s on some file systems, 2 s on FAT): such a listing is re-read.
RACY_NS = 2_000_000_000
NOTE_PATH = re.compile(r"(?:[0-9a-f]{2}/)*[0-9a-f]{2,40}\Z")

# summarize(annotated object hex, note bytes) -> (summary, parsed record or None)
Summarize = Callable[[str, bytes], tuple[list[Any], "dict[str, Any] | None"]]


class NotesIndex:
    """Every note's blob id and summary, the records parsed while building it, and the runs
    in listing order when the cached ones are still current."""

    def __init__(self, entries: dict[str, list[Any]], parsed: dict[str, dict[str, Any]]):
        # entries: annotated object hex -> [note blob hex, summary]
        self.entries = entries
        self.parsed = parsed
        # [name, id, commit hex] of every run ref, in listing order; None: list them anew
        self.runs: list[list[str]] | None = None
        self.tip: str | None = None
        self.refs_stamp: tuple[str, int] | None = None
        self.changed = False  # entries differ from the cache file's

    def outdated(self) -> bool:
        """The cache file lacks these entries or a current listing of the runs."""
        return self.changed or (self.runs is None and self.refs_stamp is not None)


class _CacheFile:
    """What a whole, valid cache file holds."""

    def __init__(
        self,
        tip: str | None,
        entries: dict[str, list[Any]],
        refs_stamp: tuple[str, int] | None,
        runs: list[list[str]] | None,
        mtime_ns: int,
    ) -> None:
        self.tip, self.entries, self.refs_stamp, self.runs = tip, entries, refs_stamp, runs
        self.mtime_ns = mtime_ns

    def runs_if_current(self, refs_stamp: tuple[str, int] | None) -> list[list[str]] | None:
        """The cached runs when no run ref can have changed since they were listed."""
        if refs_stamp is None or self.refs_stamp != refs_stamp or self.runs is None:
            return None
        if refs_stamp[1] >= self.mtime_ns - RACY_NS:
            return None  # racily current: a change in the same tick would not show
        return self.runs


def cache_file(repo: pygit2.Repository) -> Path:
    """Where the listing cache of `repo` lives (shared by all its worktrees)."""
    return common_dir(repo).joinpath(*CACHE_PATH)


def notes_index(repo: pygit2.Repository, summarize: Summarize, summary_version: int) -> NotesIndex:
    """The summary of every note in refs/notes/experiments, from the cache when it is current.

    `summary_version` names the shape `summarize` returns: a cache built by another shape is
    rebuilt, never misread. Call `save` once the runs are listed (nothing is written here).
    """
    refs_stamp = store.run_refs_stamp(repo)  # before anything is read: a later change shows
    tip = store.notes_tip(repo)
    tip_hex = str(tip.id) if tip is not None else None
    cached = _read(cache_file(repo), summary_version)
    if cached is not None and cached.tip == tip_hex:
        index = NotesIndex(cached.entries, {})
        index.runs = cached.runs_if_current(refs_stamp)
    else:
        index = _updated(repo, cached, tip, summarize) or _built(repo, tip, summarize)
        index.changed = True
    index.tip, index.refs_stamp = tip_hex, refs_stamp
    return index


def save(
    repo: pygit2.Repository, summary_version: int, index: NotesIndex, runs: list[list[str]]
) -> None:
    """Keep `index` and `runs` (listed after `index` was made, in listing order) on disk."""
    stamp = list(index.refs_stamp) if index.refs_stamp is not None else None
    body = orjson.dumps({"notes": index.tip, "entries": index.entries, "refs": stamp, "runs": runs})
    _write(cache_file(repo), summary_version, body)


def _built(repo: pygit2.Repository, tip: pygit2.Commit | None, summarize: Summarize) -> NotesIndex:
    index = NotesIndex({}, {})
    if tip is None:
        return index
    for hex_id, blob_id in store.walk_note_blobs(tip):
        _add(repo, index, hex_id, str(blob_id), summarize)
    return index


def _updated(
    repo: pygit2.Repository,
    cached: _CacheFile | None,
    tip: pygit2.Commit | None,
    summarize: Summarize,
) -> NotesIndex | None:
    """The cached index moved forward to `tip` by the notes-tree diff; None to rebuild."""
    if cached is None or cached.tip is None or tip is None:
        return None
    try:
        old = repo[cached.tip].peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError):
        return None  # the cached notes commit is gone (gc'd after a rewrite): rebuild
    index = NotesIndex(cached.entries, {})
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


def _read(path: Path, summary_version: int) -> _CacheFile | None:
    """The cache file's content; None unless it is whole and ours."""
    try:
        with open(path, "rb") as file:
            mtime_ns = os.fstat(file.fileno()).st_mtime_ns
            data = file.read()
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
        tip, entries, stamp, runs = value["notes"], value["entries"], value["refs"], value["runs"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    if not (tip is None or isinstance(tip, str)) or not isinstance(entries, dict):
        return None
    # Rows are checked where they are used (a malformed one sends the listing the slow way):
    # checking 100,000 of them here would cost what the cache saves.
    return _CacheFile(
        tip, entries, _stamp(stamp), runs if isinstance(runs, list) else None, mtime_ns
    )


def _stamp(value: Any) -> tuple[str, int] | None:
    if isinstance(value, list) and len(value) == 2:
        digest, newest = value
        if isinstance(digest, str) and isinstance(newest, int):
            return digest, newest
    return None


def _write(path: Path, summary_version: int, body: bytes) -> None:
    """Replace the cache file atomically; a read-only repository just goes without."""
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

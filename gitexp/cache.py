"""The listing cache: every note's summary and the run refs, kept on disk between commands.

Reading 100,000 notes costs seconds; the cache makes a second `git exp log` cost what
reading one file does. Its summaries are keyed by the notes commit they were built from:
when refs/notes/experiments moved, only the notes the two notes trees differ in are re-read
(a libgit2 tree diff skips every unchanged fan-out directory). Its list of runs, already in
listing order, is kept with a stamp of the run refs' storage (`store.run_refs_stamp`) and
used only while that stamp is unchanged and no ref had changed within `RACY_NS` of the moment
it was taken. It is never the source of truth: a missing, foreign, truncated or corrupt
file is ignored and rebuilt, and a cache that cannot be written (a read-only repository)
only costs speed. Format: docs/format.md.
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pygit2

from gitexp import store
from gitexp.cachefile import write_atomically
from gitexp.repository import common_dir

CACHE_PATH = ("experiments", ".cache", "listing-v2")
MAGIC = b"gitexp-listing-cache"
FORMAT_VERSION = 2
# A ref changed this close to the moment the refs were stamped may change again within the
# same timestamp tick (1 s on some file systems, 2 s on FAT) without changing the stamp:
# such a listing is re-read.
RACY_NS = 2_000_000_000
NOTE_PATH = re.compile(r"(?:[0-9a-f]{2}/)*[0-9a-f]{2,40}\Z")

# summarize(annotated object hex, note bytes) -> (summary, parsed record or None); the summary
# (a named tuple) is kept as a JSON list of its fields.
Summarize = Callable[[str, bytes], tuple[Sequence[Any], "dict[str, Any] | None"]]


class NotesIndex:
    """Every note's blob id and summary, the records parsed while building it, and the
    cached listing's rows when they are still current."""

    def __init__(
        self,
        entries: dict[str, list[Any]] | None,
        parsed: dict[str, dict[str, Any]],
        load_entries: Callable[[NotesIndex], dict[str, list[Any]]] | None = None,
    ) -> None:
        # entries: annotated object hex -> [note blob hex, summary]; read when first needed
        self._entries, self._load_entries = entries, load_entries
        self.parsed = parsed
        # The rows of every run, in listing order (their shape is the caller's, see `save`);
        # None: list the runs anew.
        self.runs: list[list[Any]] | None = None
        self.tip: str | None = None
        self.refs_stamp: tuple[str, int, int] | None = None
        self.changed = False  # entries differ from the cache file's

    @property
    def entries(self) -> dict[str, list[Any]]:
        if self._entries is None:
            assert self._load_entries is not None
            self._entries = self._load_entries(self)
            self._load_entries = None
        return self._entries

    def outdated(self) -> bool:
        """The cache file lacks these entries, or a listing of the runs it could trust."""
        if self.changed:
            return True
        if self.runs is not None or self.refs_stamp is None:
            return False
        _, newest, stamped_at = self.refs_stamp
        return newest < stamped_at - RACY_NS  # a racy listing would not be used: not saved


class _CacheFile:
    """What a valid cache file holds; its entries are parsed only when asked for."""

    def __init__(
        self,
        tip: str | None,
        refs_stamp: tuple[str, int, int] | None,
        runs: list[list[Any]] | None,
        mtime_ns: int,
        entries_segment: bytes,
        entries_crc: bytes,
    ) -> None:
        self.tip, self.refs_stamp, self.runs, self.mtime_ns = tip, refs_stamp, runs, mtime_ns
        self._segment, self._crc = entries_segment, entries_crc

    def runs_if_current(self, refs_stamp: tuple[str, int, int] | None) -> list[list[Any]] | None:
        """The cached rows when no run ref can have changed since they were listed."""
        cached = self.refs_stamp
        if refs_stamp is None or cached is None or self.runs is None:
            return None
        if cached[:2] != refs_stamp[:2]:
            return None
        # The file's mtime guards against a clock other than the file system's (NFS).
        if cached[1] >= min(cached[2], self.mtime_ns) - RACY_NS:
            return None  # racily current: a change in the same tick would not show
        return self.runs

    def entries(self) -> dict[str, list[Any]] | None:
        """The entries segment; None when it is damaged or not of this file's notes commit."""
        if str(zlib.crc32(self._segment)).encode() != self._crc:
            return None
        try:
            value = orjson.loads(self._segment)
            tip, entries = value["notes"], value["entries"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            return None
        return entries if tip == self.tip and isinstance(entries, dict) else None


def cache_file(repo: pygit2.Repository) -> Path:
    """Where the listing cache of `repo` lives (shared by all its worktrees)."""
    return common_dir(repo).joinpath(*CACHE_PATH)


def notes_index(repo: pygit2.Repository, summarize: Summarize, summary_version: int) -> NotesIndex:
    """The summary of every note in refs/notes/experiments, from the cache when it is current.

    `summary_version` names the shape `summarize` returns (and that of the rows): a cache
    built by another shape is rebuilt, never misread. Call `save` once the runs are listed
    (nothing is written here).
    """
    # Stamped before anything is read, so that a later change shows; and when.
    stamped_at = time.time_ns()
    stamp = store.run_refs_stamp(repo)
    refs_stamp = (*stamp, stamped_at) if stamp is not None else None
    tip = store.notes_tip(repo)
    tip_hex = str(tip.id) if tip is not None else None
    cached = _read(cache_file(repo), summary_version)
    if cached is not None and cached.tip == tip_hex:
        current = cached

        def load_entries(index: NotesIndex) -> dict[str, list[Any]]:
            entries = current.entries()
            if entries is not None:
                return entries
            rebuilt = _built(repo, tip, summarize)  # a damaged segment: read the notes again
            index.parsed, index.changed = rebuilt.parsed, True
            return rebuilt.entries

        index = NotesIndex(None, {}, load_entries)
        index.runs = cached.runs_if_current(refs_stamp)
    else:
        index = _updated(repo, cached, tip, summarize) or _built(repo, tip, summarize)
        index.changed = True
    index.tip, index.refs_stamp = tip_hex, refs_stamp
    return index


def save(
    repo: pygit2.Repository, summary_version: int, index: NotesIndex, runs: list[list[Any]]
) -> None:
    """Keep `index` and the rows of `runs` (listed after `index` was made) on disk."""
    stamp = list(index.refs_stamp) if index.refs_stamp is not None else None
    listing = orjson.dumps({"notes": index.tip, "refs": stamp, "runs": runs})
    entries = orjson.dumps({"notes": index.tip, "entries": index.entries})
    _write(cache_file(repo), summary_version, listing, entries)


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
    entries = cached.entries()
    if entries is None:
        return None
    index = NotesIndex(entries, {})
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
    index.entries[hex_id] = [blob_hex, list(summary)]
    if record is not None:
        index.parsed[hex_id] = record


def _note_hex(path: str | None) -> str | None:
    if not path or not NOTE_PATH.match(path):
        return None
    hex_id = path.replace("/", "")
    return hex_id if len(hex_id) == 40 else None


def _read(path: Path, summary_version: int) -> _CacheFile | None:
    """The cache file's listing segment (its entries on demand); None unless it is ours."""
    try:
        with open(path, "rb") as file:
            mtime_ns = os.fstat(file.fileno()).st_mtime_ns
            data = file.read()
    except OSError:
        return None
    header, _, body = data.partition(b"\n")
    parts = header.split(b" ")
    expected = [MAGIC, str(FORMAT_VERSION).encode(), str(summary_version).encode()]
    if len(parts) != 7 or parts[:3] != expected:
        return None
    try:
        listing_length, entries_length = int(parts[3]), int(parts[5])
    except ValueError:
        return None
    if listing_length < 0 or entries_length < 0 or listing_length + entries_length != len(body):
        return None  # truncated
    listing = body[:listing_length]
    if str(zlib.crc32(listing)).encode() != parts[4]:
        return None  # damaged
    try:
        value = orjson.loads(listing)
        tip, stamp, runs = value["notes"], value["refs"], value["runs"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return None
    if not (tip is None or isinstance(tip, str)):
        return None
    # Rows are checked where they are used (a malformed one sends the listing the slow way):
    # checking 100,000 of them here would cost what the cache saves.
    runs = runs if isinstance(runs, list) else None
    return _CacheFile(tip, _stamp(stamp), runs, mtime_ns, body[listing_length:], parts[6])


def _stamp(value: Any) -> tuple[str, int, int] | None:
    if isinstance(value, list) and len(value) == 3:
        digest, newest, stamped_at = value
        if isinstance(digest, str) and isinstance(newest, int) and isinstance(stamped_at, int):
            return digest, newest, stamped_at
    return None


def _write(path: Path, summary_version: int, listing: bytes, entries: bytes) -> None:
    """Replace the cache file atomically; a read-only repository just goes without."""
    header = " ".join(
        [
            MAGIC.decode(),
            str(FORMAT_VERSION),
            str(summary_version),
            str(len(listing)),
            str(zlib.crc32(listing)),
            str(len(entries)),
            str(zlib.crc32(entries)),
        ]
    )
    write_atomically(path, header.encode() + b"\n" + listing + entries)

"""The code difference between two trees, as `git diff` shows it: patches, `--stat`, names.

libgit2 writes the patches (its xdiff is git's), with these corrections so that the bytes
agree with git's:
- renames are paired by libgit2, but the "similarity index" is git's own estimate
  (`diffcore-delta.c`), and a pair git would score under the threshold is shown as a delete and
  an add, as git shows it;
- abbreviated object names in `index` lines follow git's rule (7 digits, more in a repository
  with many packed objects, `core.abbrev`, and longer when a prefix is ambiguous);
- a file whose patch has no hunks (an empty file added or deleted) has no `---`/`+++` lines,
  and a `---`/`+++` line whose name has a space ends with a tab;
- pathspecs restrict the diff before renames are paired: a rename whose other side is outside
  the pathspecs is a plain add or delete.
"""

from __future__ import annotations

import fnmatch
import re
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import DiffFind, DiffFlag, DiffOption, FileMode

from gitexp.errors import GitExpError
from gitexp.repository import common_dir, config_value

DIFF_FLAGS = DiffOption.INDENT_HEURISTIC  # on by default in git since 2.14
RENAME_THRESHOLD = 50  # git's default -M50%
RENAME_LIMIT = 1000  # git's default diff.renameLimit
MAX_SCORE = 60000  # git's fixed-point 100%
SPAN_HASH_BASE = 107927
WORD_MASK = 0xFFFFFFFF
BINARY_PROBE_BYTES = 8000  # git looks for a NUL byte this far into a file
SCORE_SIZE_LIMIT = 4 * 1024 * 1024  # above this, trust libgit2's percentage (pure Python is slow)
DEFAULT_ABBREV = 7
STATUS_NAMES = {"A": "added", "D": "deleted", "M": "modified", "R": "renamed", "C": "copied"}
WILDCARDS = re.compile(r"[*?\[]")
SIMILARITY_LINE = re.compile(rb"^similarity index \d+%$", re.MULTILINE)
FILE_LINE = re.compile(rb"^(?:---|\+\+\+) [^\n]* [^\n]*$", re.MULTILINE)
INDEX_LINE = re.compile(rb"^index [0-9a-f]+\.\.[0-9a-f]+(?P<mode> [0-7]+)?$", re.MULTILINE)


class PathspecError(GitExpError):
    """A pathspec gitexp does not understand."""


@dataclass(frozen=True)
class Pathspec:
    """Paths to restrict a diff to, relative to the top of the repository (git's semantics).

    A path matches a spec that names it or one of its parent directories, or that is a glob
    matching the whole path (`*` also crosses `/`, as in git). `:!spec` and `:^spec` exclude.
    An empty include list means everything.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def parse(cls, specs: list[str] | tuple[str, ...], prefix: str = "") -> Pathspec:
        """Specs as typed in the directory `prefix` (relative to the top; "" for the top)."""
        include: list[str] = []
        exclude: list[str] = []
        for spec in specs:
            target = include
            if spec.startswith((":!", ":^")):
                target, spec = exclude, spec[2:]
            elif spec.startswith(":(exclude)"):
                target, spec = exclude, spec[len(":(exclude)") :]
            if spec.startswith(":/"):
                spec, base = spec[2:], ""
            elif spec.startswith(":"):
                raise PathspecError(f"unsupported pathspec magic in '{spec}'")
            else:
                base = prefix
            target.append(_normalise(spec, base))
        return cls(tuple(include), tuple(exclude))

    def matches(self, path: str) -> bool:
        """Whether `path` (a file's path from the top) is selected."""
        if self.include and not any(_spec_matches(spec, path) for spec in self.include):
            return False
        return not any(_spec_matches(spec, path) for spec in self.exclude)

    def __bool__(self) -> bool:
        return bool(self.include or self.exclude)


def _normalise(spec: str, base: str) -> str:
    trailing_slash = spec.endswith("/") and spec.strip("/") != ""
    parts: list[str] = [part for part in base.split("/") if part]
    for part in spec.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathspecError(f"pathspec '{spec}' is outside the repository")
            parts.pop()
        else:
            parts.append(part)
    joined = "/".join(parts)
    return joined + "/" if trailing_slash and joined else joined


def _spec_matches(spec: str, path: str) -> bool:
    if spec == "":
        return True
    if spec.endswith("/"):
        return path.startswith(spec)
    if path == spec or path.startswith(spec + "/"):
        return True
    return bool(WILDCARDS.search(spec)) and fnmatch.fnmatchcase(path, spec)


@dataclass
class FileChange:
    """One file's change, with the patch git would print for it."""

    status: str
    old_path: str | None
    new_path: str | None
    old_mode: int
    new_mode: int
    old_id: str
    new_id: str
    old_size: int
    new_size: int
    binary: bool
    additions: int
    deletions: int
    similarity: int | None
    patch: bytes = field(repr=False)

    @property
    def path(self) -> str:
        """The path git lists the change under (the new one for renames)."""
        return self.new_path or self.old_path or ""

    def as_json(self) -> dict[str, Any]:
        """The change as `git exp diff --json` prints it."""
        return {
            "status": self.status,
            "old_path": self.old_path,
            "new_path": self.new_path,
            "old_mode": f"{self.old_mode:06o}" if self.old_mode else None,
            "new_mode": f"{self.new_mode:06o}" if self.new_mode else None,
            "old_id": self.old_id if self.old_path is not None else None,
            "new_id": self.new_id if self.new_path is not None else None,
            "similarity": self.similarity,
            "binary": self.binary,
            "additions": self.additions,
            "deletions": self.deletions,
            "patch": self.patch.decode("utf-8", errors="replace"),
        }


def diff_trees(
    repo: pygit2.Repository,
    old_tree: pygit2.Tree,
    new_tree: pygit2.Tree,
    pathspec: Pathspec | None = None,
) -> list[FileChange]:
    """What changed from `old_tree` to `new_tree`, file by file, in git's order."""
    pathspec = pathspec or Pathspec()
    abbrev = _Abbreviator(repo)
    plain = _patches(old_tree.diff_to_tree(new_tree, flags=DIFF_FLAGS))
    unpaired = {(patch.delta.status_char(), _delta_path(patch.delta)): patch for patch in plain}
    changes: list[FileChange] = []
    for patch in _patches(_paired_diff(repo, old_tree, new_tree)):
        delta = patch.delta
        if delta.status_char() not in "RC":
            if pathspec.matches(_delta_path(delta)):
                changes.append(_change(repo, patch, None, abbrev))
            continue
        old_in, new_in = (
            pathspec.matches(delta.old_file.path),
            pathspec.matches(delta.new_file.path),
        )
        similarity = _git_similarity(repo, delta)
        if similarity >= RENAME_THRESHOLD and old_in and new_in:
            changes.append(_change(repo, patch, similarity, abbrev))
            continue
        if old_in and delta.status_char() == "R":
            changes.append(_change(repo, unpaired[("D", delta.old_file.path)], None, abbrev))
        if new_in:
            changes.append(_change(repo, unpaired[("A", delta.new_file.path)], None, abbrev))
    changes.sort(key=lambda change: change.path.encode())
    return changes


def _patches(diff: pygit2.Diff) -> list[pygit2.Patch]:
    return [patch for patch in diff if patch is not None]


def _paired_diff(
    repo: pygit2.Repository, old_tree: pygit2.Tree, new_tree: pygit2.Tree
) -> pygit2.Diff:
    diff = old_tree.diff_to_tree(new_tree, flags=DIFF_FLAGS)
    setting = (config_value(repo, "diff.renames") or "true").lower()
    if setting in ("false", "no", "off", "0"):
        return diff
    find = DiffFind.FIND_RENAMES
    if setting in ("copies", "copy"):
        find |= DiffFind.FIND_COPIES
    diff.find_similar(flags=find, rename_threshold=RENAME_THRESHOLD, rename_limit=RENAME_LIMIT)
    return diff


def _delta_path(delta: pygit2.DiffDelta) -> str:
    return str(delta.new_file.path if delta.status_char() != "D" else delta.old_file.path)


def _change(
    repo: pygit2.Repository, patch: pygit2.Patch, similarity: int | None, abbrev: _Abbreviator
) -> FileChange:
    delta = patch.delta
    status = delta.status_char()
    old_exists, new_exists = status != "A", status != "D"
    binary = _is_binary(repo, delta)
    _, additions, deletions = patch.line_stats
    data = _fix_patch(patch.data, delta, similarity, binary, abbrev)
    return FileChange(
        status=STATUS_NAMES.get(status, status),
        old_path=delta.old_file.path if old_exists else None,
        new_path=delta.new_file.path if new_exists else None,
        old_mode=int(delta.old_file.mode) if old_exists else 0,
        new_mode=int(delta.new_file.mode) if new_exists else 0,
        old_id=str(delta.old_file.id),
        new_id=str(delta.new_file.id),
        old_size=_blob_size(repo, delta.old_file) if old_exists else 0,
        new_size=_blob_size(repo, delta.new_file) if new_exists else 0,
        binary=binary,
        additions=0 if binary else additions,
        deletions=0 if binary else deletions,
        similarity=similarity if status in "RC" else None,
        patch=data,
    )


def _fix_patch(
    data: bytes,
    delta: pygit2.DiffDelta,
    similarity: int | None,
    binary: bool,
    abbrev: _Abbreviator,
) -> bytes:
    header, hunk_start, hunks = data.partition(b"\n@@ ")
    if similarity is not None:
        header = SIMILARITY_LINE.sub(b"similarity index %d%%" % similarity, header, count=1)

    def index_line(match: re.Match[bytes]) -> bytes:
        old = abbrev.abbreviate(str(delta.old_file.id))
        new = abbrev.abbreviate(str(delta.new_file.id))
        return b"index %s..%s%s" % (old.encode(), new.encode(), match.group("mode") or b"")

    header = INDEX_LINE.sub(index_line, header, count=1)
    # git ends a ---/+++ line with a tab when the name has a space, so that tools can parse it.
    header = FILE_LINE.sub(lambda match: match.group(0) + b"\t", header)
    if not hunk_start and not binary:
        # git prints ---/+++ only above hunks; libgit2 also prints them for an empty file.
        header = re.sub(rb"^--- .*\n\+\+\+ .*\n", b"", header, flags=re.MULTILINE)
    return header + hunk_start + hunks


def _is_binary(repo: pygit2.Repository, delta: pygit2.DiffDelta) -> bool:
    if delta.flags & DiffFlag.BINARY:
        return True
    if delta.flags & DiffFlag.NOT_BINARY:
        return False
    # Unchanged content (a pure mode change or exact rename) is never loaded by libgit2.
    for side in (delta.old_file, delta.new_file):
        blob = _blob(repo, side)
        if blob is not None and blob.is_binary:
            return True
    return False


def _blob(repo: pygit2.Repository, side: pygit2.DiffFile) -> pygit2.Blob | None:
    if side.id == pygit2.Oid(hex="0" * 40) or side.mode == FileMode.COMMIT:
        return None
    obj = repo.get(side.id)
    return obj if isinstance(obj, pygit2.Blob) else None


def _blob_size(repo: pygit2.Repository, side: pygit2.DiffFile) -> int:
    blob = _blob(repo, side)
    return blob.size if blob is not None else 0


def _git_similarity(repo: pygit2.Repository, delta: pygit2.DiffDelta) -> int:
    """The similarity git reports for a rename or copy, in percent (0 when git would not pair)."""
    if delta.old_file.id == delta.new_file.id:
        return 100
    regular = (FileMode.BLOB, FileMode.BLOB_EXECUTABLE)
    if delta.old_file.mode not in regular or delta.new_file.mode not in regular:
        return 0  # git pairs symlinks only when they are identical
    old, new = _blob(repo, delta.old_file), _blob(repo, delta.new_file)
    if old is None or new is None:
        return 0
    if max(old.size, new.size) > SCORE_SIZE_LIMIT:
        return int(delta.similarity)
    return similarity_score(old.data, new.data) * 100 // MAX_SCORE


def similarity_score(old: bytes, new: bytes) -> int:
    """git's estimate of how much of `new` comes from `old`, out of MAX_SCORE.

    `estimate_similarity` in git's diffcore-rename.c: both files are cut into chunks ending at
    a newline or 64 bytes long, hashed; the bytes of chunks they share over the larger size.
    Like git up to 2.43, a last chunk without a newline is not counted (2.44 counts it).
    """
    max_size, base_size = max(len(old), len(new)), min(len(old), len(new))
    minimum = RENAME_THRESHOLD * MAX_SCORE // 100
    if max_size == 0 or max_size * (MAX_SCORE - minimum) < (max_size - base_size) * MAX_SCORE:
        return 0
    old_spans, new_spans = _span_counts(old), _span_counts(new)
    copied = sum(min(count, new_spans[span]) for span, count in old_spans.items())
    return copied * MAX_SCORE // max_size


def _span_counts(data: bytes) -> Counter[int]:
    text = b"\0" not in data[:BINARY_PROBE_BYTES]
    counts: Counter[int] = Counter()
    length, accum1, accum2 = 0, 0, 0
    size = len(data)
    for position, byte in enumerate(data):
        if text and byte == 13 and position + 1 < size and data[position + 1] == 10:
            continue  # CR of a CRLF
        previous = accum1
        accum1 = (((accum1 << 7) ^ (accum2 >> 25)) + byte) & WORD_MASK
        accum2 = ((accum2 << 7) ^ (previous >> 25)) & WORD_MASK
        length += 1
        if length < 64 and byte != 10:
            continue
        counts[((accum1 + accum2 * 0x61) & WORD_MASK) % SPAN_HASH_BASE] += length
        length, accum1, accum2 = 0, 0, 0
    return counts


class _Abbreviator:
    """git's abbreviated object names: `core.abbrev`, or 7 digits growing with the number of
    packed objects (`find_unique_abbrev`), then longer until no other object shares it."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self._repo = repo
        self._length: int | None = None

    def abbreviate(self, hex_id: str) -> str:
        length = self._minimum_length()
        if hex_id == "0" * len(hex_id):
            return hex_id[:length]
        while length < len(hex_id) and not self._unique(hex_id[:length]):
            length += 1
        return hex_id[:length]

    def _unique(self, prefix: str) -> bool:
        try:
            self._repo.get(prefix)
        except (pygit2.AmbiguousError, ValueError):
            return False
        return True

    def _minimum_length(self) -> int:
        if self._length is None:
            self._length = self._configured_length()
        return self._length

    def _configured_length(self) -> int:
        setting = (config_value(self._repo, "core.abbrev") or "auto").strip().lower()
        if setting in ("no", "false", "off"):
            return 40
        if setting.isdigit():
            return min(max(int(setting), 4), 40)
        bits = _packed_object_count(common_dir(self._repo) / "objects" / "pack").bit_length()
        return max(DEFAULT_ABBREV, (bits + 1) // 2)


def _packed_object_count(pack_dir: Path) -> int:
    """Objects in the pack indexes: git sizes abbreviations by this (loose ones not counted)."""
    total = 0
    for index in pack_dir.glob("pack-*.idx"):
        try:
            with index.open("rb") as handle:
                head = handle.read(8 + 256 * 4)
        except OSError:
            continue
        offset = 8 if head[:4] == b"\xfftOc" else 0
        if len(head) >= offset + 256 * 4:
            total += struct.unpack_from(">I", head, offset + 255 * 4)[0]
    return total


def quote_path(path: str) -> str:
    """A path as git prints it: C-quoted when it has special or non-ASCII bytes (core.quotePath)."""
    raw = path.encode("utf-8", errors="surrogateescape")
    if not any(byte < 0x20 or byte >= 0x7F or byte in b'"\\' for byte in raw):
        return path
    escapes = {7: "a", 8: "b", 9: "t", 10: "n", 11: "v", 12: "f", 13: "r", 34: '"', 92: "\\"}
    out = []
    for byte in raw:
        if byte in escapes:
            out.append("\\" + escapes[byte])
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(chr(byte))
    return '"' + "".join(out) + '"'


def name_only_lines(changes: list[FileChange]) -> list[str]:
    """`git diff --name-only`: each changed file's (new) path."""
    return [quote_path(change.path) for change in changes]


def stat_lines(changes: list[FileChange], width: int = 80) -> list[str]:
    """`git diff --stat` for a terminal `width` columns wide (git's `show_stats`)."""
    if not changes:
        return []
    names = [_stat_name(change) for change in changes]
    max_len = max(len(name) for name in names)
    text_changes = [c.additions + c.deletions for c in changes if not c.binary]
    max_change = max(text_changes, default=0)
    binary_widths = [_binary_width(c) for c in changes if c.binary]
    bin_width = max(binary_widths, default=0)
    number_width = max(len(str(max_change)), 3 if binary_widths else 0)
    width = max(width, 16 + 6 + number_width)
    graph_width = max_change if max_change + 4 > bin_width else bin_width - 4
    name_width = max_len
    if name_width + number_width + 6 + graph_width > width:
        if graph_width > width * 3 // 8 - number_width - 6:
            graph_width = max(width * 3 // 8 - number_width - 6, 6)
        if name_width > width - number_width - 6 - graph_width:
            name_width = width - number_width - 6 - graph_width
        else:
            graph_width = width - number_width - 6 - name_width
    lines = [
        _stat_line(change, name, name_width, number_width, graph_width, max_change)
        for change, name in zip(changes, names, strict=True)
    ]
    insertions = sum(c.additions for c in changes if not c.binary)
    deletions = sum(c.deletions for c in changes if not c.binary)
    return [*lines, _stat_summary(len(changes), insertions, deletions)]


def _binary_sizes(change: FileChange) -> tuple[int, int]:
    """(old, new) byte counts git shows for a binary file: zeros when the content is the same."""
    if change.old_id == change.new_id:
        return 0, 0
    return change.old_size, change.new_size


def _binary_width(change: FileChange) -> int:
    old, new = _binary_sizes(change)
    return 14 + len(str(old)) + len(str(new))


def _stat_line(
    change: FileChange,
    name: str,
    name_width: int,
    number_width: int,
    graph_width: int,
    max_change: int,
) -> str:
    prefix = ""
    if len(name) > name_width:
        prefix = "..."
        name = name[len(name) - max(name_width - 3, 0) :]
        slash = name.find("/")
        if slash >= 0:
            name = name[slash:]
    padding = " " * max(name_width - len(prefix) - len(name), 0)
    if change.binary:
        line = f" {prefix}{name}{padding} | {'Bin':>{number_width}}"
        old, new = _binary_sizes(change)
        return f"{line} {old} -> {new} bytes" if old or new else line
    added, deleted = change.additions, change.deletions
    total = added + deleted
    if graph_width <= max_change:
        scaled = _scale(total, graph_width, max_change)
        if scaled < 2 and added and deleted:
            scaled = 2
        if added < deleted:
            added = _scale(added, graph_width, max_change)
            deleted = scaled - added
        else:
            deleted = _scale(deleted, graph_width, max_change)
            added = scaled - deleted
    count = f"{total:>{number_width}}" + (" " if total else "")
    return f" {prefix}{name}{padding} | {count}{'+' * added}{'-' * deleted}"


def _scale(value: int, width: int, max_change: int) -> int:
    return 0 if not value else 1 + value * (width - 1) // max_change


def _stat_summary(files: int, insertions: int, deletions: int) -> str:
    parts = [f" {files} file{'' if files == 1 else 's'} changed"]
    if insertions or not deletions:
        parts.append(f"{insertions} insertion{'' if insertions == 1 else 's'}(+)")
    if deletions or not insertions:
        parts.append(f"{deletions} deletion{'' if deletions == 1 else 's'}(-)")
    return ", ".join(parts)


def _stat_name(change: FileChange) -> str:
    if change.status not in ("renamed", "copied") or change.old_path is None:
        return quote_path(change.path)
    return _rename_name(change.old_path, change.path)


def _rename_name(old: str, new: str) -> str:
    """`a/{b => c}/d`: git's `pprint_rename`."""
    if quote_path(old) != old or quote_path(new) != new:
        return f"{quote_path(old)} => {quote_path(new)}"
    prefix = 0
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            break
        if a == "/":
            prefix = i + 1
    suffix = 0
    adjust = 1 if prefix else 0
    i, j = len(old), len(new)
    # Walk back from the ends (the terminating NUL compares equal) over the common suffix.
    while prefix - adjust <= i and prefix - adjust <= j and _at(old, i) == _at(new, j):
        if _at(old, i) == "/":
            suffix = len(old) - i
        i, j = i - 1, j - 1
    old_mid = old[prefix : max(len(old) - suffix, prefix)]
    new_mid = new[prefix : max(len(new) - suffix, prefix)]
    if prefix + suffix:
        return f"{old[:prefix]}{{{old_mid} => {new_mid}}}{old[len(old) - suffix :]}"
    return f"{old_mid} => {new_mid}"


def _at(text: str, index: int) -> str:
    return text[index] if 0 <= index < len(text) else ""

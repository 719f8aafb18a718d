"""The interpreter probe's answer, kept on disk between runs while nothing it read has changed.

Asking the `python` on PATH for its packages costs a Python start-up (≈60 ms), which a
program that ends at once cannot hide. The answer depends on the interpreter binary, the
environment variables Python reads, and the files behind `sys.path`: the probe reports every
path it read (the `sys.path` entries, site directories, `.pth` files, each found
distribution's metadata, `pyvenv.cfg`) with its `stat`, taken *before* reading it. A cached
answer is used only when the interpreter and every one of those paths stat the same as then:
installing, removing or upgrading a package adds or removes entries of a site directory, which
changes that directory's stat. An answer is not cached when the program probed is not the
interpreter itself (a pyenv shim or wrapper script picks its interpreter anew each time) or
when anything it read changed too recently for a timestamp to tell (git's "racy" problem).

The file is never a source of truth: a missing, foreign, truncated or corrupt one is ignored,
and one that cannot be written only costs speed. Format: docs/format.md.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from gitexp.cachefile import write_atomically

# The probe's own code decides its answer too: the key holds a digest of it.
PROBE_FILE = Path(__file__).resolve().parent / "_probe" / "probe.py"
CACHE_PATH = ("experiments", ".cache", "python-probe-v1")
MAGIC = b"gitexp-python-probe-cache"
FORMAT_VERSION = 1
MAX_ENTRIES = 32
# A path changed less than this long before the probe read it may change again within the
# same timestamp tick (1-2 s on some filesystems) without its stat showing it.
RACY_SECONDS = 3.0
# Besides PYTHON*: what decides the user site directory, which libpython is loaded, and the
# variables of venv and conda.
KEYED_VARIABLES = ("HOME", "LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX")

Stat = list[int]


class ProbeCache:
    """Probe answers stored in `path`, keyed by interpreter, packages asked and environment."""

    def __init__(
        self, path: Path, racy_seconds: float = RACY_SECONDS, probe_file: Path = PROBE_FILE
    ) -> None:
        self.path = path
        self.racy_seconds = racy_seconds
        self.probe_file = probe_file  # the program that answers; its code is part of the key

    def key(self, python: str, packages: Sequence[str], env: Mapping[str, str]) -> str | None:
        """What decides the probe's answer before it reads any file; None: not cacheable.

        Taken before the probe starts, so an interpreter replaced meanwhile is not keyed by
        its new self.
        """
        if not os.path.isabs(python):
            return None
        binary = os.path.realpath(python)
        stat = _stat(binary)
        if stat is None:
            return None
        variables = sorted(
            (name, value)
            for name, value in env.items()
            if name.startswith("PYTHON") or name in KEYED_VARIABLES
        )
        probe = hashlib.sha256(self.probe_file.read_bytes()).hexdigest()
        material = orjson.dumps(
            [FORMAT_VERSION, probe, python, binary, stat, list(packages), variables]
        )
        return hashlib.sha256(material).hexdigest()

    def lookup(self, key: str) -> dict[str, Any] | None:
        """The cached answer for `key`, or None when there is none still valid."""
        entries = _read(self.path)
        for slot in (key, _in_directory(key, _cwd())):
            found = _valid_answer(entries.get(slot))
            if found is not None:
                return found
        return None

    def store(
        self, key: str, python: str, found: Mapping[str, Any], report: Mapping[str, Any]
    ) -> None:
        """Keep `found` when the probe's `report` of what it read makes it safe to reuse."""
        if not _reusable(python, found, report, self.racy_seconds):
            return
        entries = _read(self.path)
        entries.pop(key, None)  # an answer that stopped holding in every directory
        if report.get("cwd") is not None:
            key = _in_directory(key, report["cwd"])  # one answer per directory run from
        entries.pop(key, None)
        entries[key] = {
            "cwd": report.get("cwd"),
            "depends": report["depends"],
            "found": dict(found),
        }
        while len(entries) > MAX_ENTRIES:
            del entries[next(iter(entries))]  # oldest written first
        _write(self.path, entries)


def _valid_answer(entry: object) -> dict[str, Any] | None:
    """The answer of a cache entry when nothing it depends on has changed since."""
    if not isinstance(entry, dict):
        return None
    depends, found = entry.get("depends"), entry.get("found")
    if not isinstance(depends, list) or not isinstance(found, dict):
        return None
    if not isinstance(found.get("packages"), dict):
        return None
    if entry.get("cwd") is not None and entry["cwd"] != _cwd():
        return None
    for item in depends:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return None
        if _stat(item[0]) != item[1]:
            return None
    return found


def _reusable(
    python: str, found: Mapping[str, Any], report: Mapping[str, Any], racy_seconds: float
) -> bool:
    executable = found.get("executable")
    if "error" in found or not isinstance(executable, str) or not executable:
        return False
    if os.path.realpath(executable) != os.path.realpath(python):
        return False  # a launcher (pyenv shim, wrapper script) that may pick another one
    depends, checked_at = report.get("depends"), report.get("checked_at")
    if not report.get("complete") or not isinstance(depends, list):
        return False
    if not isinstance(checked_at, (int, float)) or report.get("cwd") not in (None, _cwd()):
        return False
    racy_after_ns = int((checked_at - racy_seconds) * 1e9)
    for item in depends:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            return False
        if not os.path.isabs(item[0]):
            return False  # relative to the directory the probe ran in
        stat = item[1]
        if stat is None:
            continue
        if not (isinstance(stat, list) and len(stat) == 5 and all(type(v) is int for v in stat)):
            return False
        if stat[1] >= racy_after_ns:  # ctime: even a backdated mtime moves it
            return False
    return True


def _in_directory(key: str, cwd: str | None) -> str:
    """The key of an answer that holds only in `cwd` (a relative `sys.path` entry)."""
    return hashlib.sha256(orjson.dumps([key, cwd])).hexdigest()


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _stat(path: str) -> Stat | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return [st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_size]


def _read(path: Path) -> dict[str, Any]:
    """The entries of the cache file; empty unless it is whole and ours."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    header, _, body = data.partition(b"\n")
    parts = header.split(b" ")
    if len(parts) != 4 or parts[:2] != [MAGIC, str(FORMAT_VERSION).encode()]:
        return {}
    if parts[2] != str(len(body)).encode() or parts[3] != str(zlib.crc32(body)).encode():
        return {}  # truncated or damaged
    try:
        entries = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return entries if isinstance(entries, dict) else {}


def _write(path: Path, entries: dict[str, Any]) -> None:
    """Replace the cache file atomically; a read-only repository just goes without."""
    body = orjson.dumps(entries)
    header = f"{MAGIC.decode()} {FORMAT_VERSION} {len(body)} {zlib.crc32(body)}"
    write_atomically(path, header.encode() + b"\n" + body)

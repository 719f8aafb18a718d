"""Archives from elsewhere: `git exp import` (and `--dry-run`) streams with bounded memory,
refuses a compressed bomb once past the size its manifest declares, and parses every object
before writing anything, so a refused archive leaves the repository as it was
(docs/guarantees.md). Archives are crafted by hand, as an attacker would.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from conftest import git
from helpers_e2e import assert_one_error_line
from helpers_guarantees import peak_rss

NAME = "train"
RUN_ID = "20261120.001.bomb"
BOMB_BYTES = 512 * 1024 * 1024
MAX_RSS_BYTES = 200 * 1024 * 1024
IDENT = b"Eve <eve@example.com> 1700000000 +0000"


class Zeros(io.RawIOBase):
    """`size` zero bytes, read without ever holding them."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def git_object(kind: bytes, body: bytes) -> tuple[str, bytes]:
    data = kind + b" %d\0" % len(body) + body
    return hashlib.sha1(data).hexdigest(), data


def manifest(commit: str, members: int, content_bytes: int) -> bytes:
    ref = f"refs/experiments/{NAME}/{RUN_ID}"
    run = {"id": f"{NAME}/{RUN_ID}", "ref": ref, "commit": commit, "record": None}
    fields = {"format": "gitexp-export", "version": 1, "objects": members, "runs": [run]}
    return json.dumps({**fields, "members": members, "bytes": content_bytes}).encode()


def write_archive(path: Path, commit: str, objects: list[tuple[str, bytes]]) -> Path:
    """An archive of `objects` whose manifest declares exactly what follows it."""
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        members = [
            ("manifest.json", manifest(commit, len(objects), sum(len(d) for _, d in objects)))
        ]
        for name, data in [*members, *((f"objects/{oid}", data) for oid, data in objects)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def repository_state(repo: Path) -> tuple[str, str]:
    """Every ref, and the object database's counts: what a refused import leaves as it was."""
    refs = git(repo, "for-each-ref", "--format=%(objectname) %(refname)")
    return refs, git(repo, "count-objects", "-v")


@pytest.mark.slow
@pytest.mark.parametrize("dry_run", [False, True])
def test_a_compressed_bomb_is_refused_with_bounded_memory(
    repo_dir: Path, tmp_path: Path, dry_run: bool
) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz", compresslevel=1) as archive:
        declared = manifest("0" * 40, 1, 100)
        info = tarfile.TarInfo("manifest.json")
        info.size = len(declared)
        archive.addfile(info, io.BytesIO(declared))
        info = tarfile.TarInfo(f"objects/{'1' * 40}")
        info.size = BOMB_BYTES
        archive.addfile(info, io.BufferedReader(Zeros(BOMB_BYTES)))
    assert bomb.stat().st_size < BOMB_BYTES // 100
    before = repository_state(repo_dir)

    result, rss = peak_rss(repo_dir, "import", *(["--dry-run"] if dry_run else []), str(bomb))

    assert result.returncode == 1
    assert_one_error_line(
        result.stderr,
        "refusing bomb.tar.gz: it holds more members or bytes than its manifest declares",
    )
    assert rss < MAX_RSS_BYTES, f"peak RSS {rss / 2**20:.0f} MiB"
    assert repository_state(repo_dir) == before


def corrupt_objects(case: str) -> tuple[str, list[tuple[str, bytes]], str]:
    """(commit, objects, what the refusal says) of a run whose objects `git fsck --strict`
    would reject, though each hashes to its name."""
    blob_id, blob = git_object(b"blob", b"weights\n")
    entry = b"100644 a\0" + bytes.fromhex(blob_id)
    trees = {
        "duplicate-entries": (entry + entry, "has b'a' twice or out of order"),
        "group-writable": (entry.replace(b"100644", b"100664"), "has the mode b'100664'"),
        "dot-git": (entry.replace(b" a\0", b" .GIT\0"), "is named b'.GIT'"),
        "missing-blob": (b"100644 a\0" + bytes(20), "needed by"),
    }
    tree_body, reason = trees.get(case, (entry, ""))
    tree_id, tree = git_object(b"tree", tree_body)
    author = b"Eve <eve@example.com> 01700000000 +0000" if case == "padded-date" else IDENT
    commit_body = b"tree %s\nauthor %s\ncommitter %s\n\nrun\n" % (tree_id.encode(), author, IDENT)
    commit_id, commit = git_object(b"commit", commit_body)
    objects = [(commit_id, commit), (tree_id, tree)]
    if case != "missing-blob":
        objects.append((blob_id, blob))
    return commit_id, objects, reason or "no valid 'author' line"


CASES = ["duplicate-entries", "group-writable", "dot-git", "missing-blob", "padded-date"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dry_run", [False, True])
def test_an_object_fsck_would_reject_writes_nothing(
    repo_dir: Path, tmp_path: Path, case: str, dry_run: bool
) -> None:
    commit, objects, reason = corrupt_objects(case)
    archive = write_archive(tmp_path / "corrupt.tar.gz", commit, objects)
    before = repository_state(repo_dir)

    result, _ = peak_rss(repo_dir, "import", *(["--dry-run"] if dry_run else []), str(archive))

    assert result.returncode == 1, result.stdout
    message = assert_one_error_line(result.stderr)
    assert message.startswith("refusing corrupt.tar.gz: ") and reason in message
    assert repository_state(repo_dir) == before
    git(repo_dir, "fsck", "--strict", "--no-progress")
    git(repo_dir, "gc", "-q")


def test_a_sound_crafted_archive_imports_and_passes_fsck(repo_dir: Path, tmp_path: Path) -> None:
    commit, objects, _ = corrupt_objects("sound")
    archive = write_archive(tmp_path / "sound.tar.gz", commit, objects)

    result, _ = peak_rss(repo_dir, "import", str(archive))

    assert result.returncode == 0, result.stderr
    assert git(repo_dir, "rev-parse", f"refs/experiments/{NAME}/{RUN_ID}").strip() == commit
    git(repo_dir, "fsck", "--strict", "--no-progress")

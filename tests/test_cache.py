"""The listing cache: a second listing reads one file, and is never wrong for it.

Every test compares a listing made through the cache with a cold one (no cache file), and
changes the repository the ways users do: plain `git notes`, new runs, `git exp gc`, a
damaged cache file, a repository gitexp cannot write to.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import orjson
import psutil
import pygit2
import pytest
from click.testing import CliRunner
from conftest import git
from helpers import SIGNATURE, finished_record, libgit2_home, make_run

from gitexp import cache
from gitexp.cli import cli
from gitexp.cli.common import JSON_UNSAFE
from gitexp.commands.gc import collect_garbage
from gitexp.commands.rm import mark_deleted
from gitexp.listing import SUMMARY_VERSION, Run, list_runs, log_entries
from gitexp.record import dump_record, new_record

pytestmark = pytest.mark.usefixtures(libgit2_home.__name__)

HOST = socket.gethostname()


def started(hour: int) -> str:
    return f"2026-11-20T{hour:02d}:00:00.000+00:00"


def listing(runs: list[Run]) -> list[tuple[Any, ...]]:
    """Everything a listing shows of each run, records included."""
    return [
        (
            run.id,
            run.ref,
            run.commit,
            run.status,
            run.problem,
            run.started,
            run.deleted,
            run.tags,
            run.message,
            run.duration_s,
            run.log_entry(),
            run.record,
            run.as_json(),
        )
        for run in runs
    ]


def cold_listing(repo_dir: Path) -> list[tuple[Any, ...]]:
    """The listing with no cache file to start from (the file is put back as it was)."""
    path = cache.cache_file(pygit2.Repository(str(repo_dir)))
    saved = path.read_bytes() if path.is_file() else None
    if saved is not None:
        path.unlink()
    try:
        return listing(list_runs(pygit2.Repository(str(repo_dir))))
    finally:
        if saved is not None:
            path.write_bytes(saved)


def cached_notes_commit(repo_dir: Path) -> str | None:
    """The notes commit the cache file says it was built from."""
    listing, _ = _segments(cache.cache_file(pygit2.Repository(str(repo_dir))).read_bytes())
    return orjson.loads(listing)["notes"]


def _without_stamp_time(data: bytes) -> tuple[Any, bytes]:
    """A cache file's content but for when its refs stamp was taken."""
    listing, entries = _segments(data)
    value = orjson.loads(listing)
    if value["refs"] is not None:
        value["refs"] = value["refs"][:2]
    return value, entries


def _segments(data: bytes) -> tuple[bytes, bytes]:
    """(listing, entries): the two JSON documents of a cache file."""
    header, _, body = data.partition(b"\n")
    listing_length = int(header.split(b" ")[3])
    return body[:listing_length], body[listing_length:]


@pytest.fixture
def repo(repo_dir: Path) -> pygit2.Repository:
    """A repository with runs of every kind a listing meets."""
    repo = pygit2.Repository(str(repo_dir))
    metrics = {
        "loss": {"last": 0.25, "min": 0.2, "max": 1.0, "count": 10, "step": 9},
        "val_acc": {"last": 0.9, "min": 0.5, "max": 0.9, "count": 10, "step": 9},
    }
    make_run(
        repo,
        "train",
        "20261120.001.aaaa",
        finished_record(
            "train",
            "20261120.001.aaaa",
            started(10),
            metrics=metrics,
            tags=["best", 3],
            message="first line\nsecond line",
            duration_s=12.5,
            params={"lr": 0.1},
        ),
    )
    make_run(repo, "train", "20261120.002.bbbb", finished_record("train", "b", started(11)))
    make_run(repo, "eval", "20261120.001.cccc", b"{not json")
    make_run(repo, "eval", "20261120.002.dddd", None)
    make_run(repo, "eval", "20261120.003.eeee", new_record(status="failed"))  # no started_at
    return repo


def test_a_cache_hit_lists_exactly_what_a_cold_read_does(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    cold = listing(list_runs(repo))
    path = cache.cache_file(repo)
    assert path.is_file()
    assert path.parent == Path(git(repo_dir, "rev-parse", "--git-common-dir").strip()).resolve() / (
        "experiments/.cache"
    )
    assert (
        cached_notes_commit(repo_dir) == git(repo_dir, "rev-parse", cache.store.NOTES_REF).strip()
    )
    written = path.read_bytes()
    warm = listing(list_runs(pygit2.Repository(str(repo_dir))))
    assert warm == cold
    assert path.read_bytes() == written  # nothing changed: nothing rewritten
    statuses = {run[0]: run[3] for run in warm}
    assert statuses["eval/20261120.001.cccc"] == "unreadable"
    assert statuses["eval/20261120.002.dddd"] == "crashed"  # a ref without a note, an hour old
    first = next(run for run in warm if run[0] == "train/20261120.001.aaaa")
    assert first[7:10] == (["best"], "first line", 12.5)
    assert first[10][4].endswith("val_acc=0.9 loss=0.25")


def test_log_prints_the_same_through_the_cache(repo: pygit2.Repository, repo_dir: Path) -> None:
    runner = CliRunner()
    outputs = []
    for _ in range(2):
        plain = runner.invoke(cli, ["log", "--all"], catch_exceptions=False)
        as_json = runner.invoke(cli, ["log", "--json"], catch_exceptions=False)
        assert plain.exit_code == 0 and as_json.exit_code == 0
        outputs.append((plain.output, as_json.output))
    assert outputs[0] == outputs[1]
    assert "eval/20261120.001.cccc" in outputs[0][0] and "not valid JSON" in outputs[0][0]
    assert len(orjson.loads(outputs[0][1])) == 5


def test_a_note_changed_by_plain_git_is_picked_up(repo: pygit2.Repository, repo_dir: Path) -> None:
    runs = {run.id: run for run in list_runs(repo)}
    commit = runs["train/20261120.002.bbbb"].commit
    changed = finished_record("train", "b", started(23), tags=["by-hand"], message="edited")
    changed["status"] = "failed"
    note_file = repo_dir.parent / "note.json"
    note_file.write_bytes(orjson.dumps(changed))
    # git rewrites the notes tree in its own layout: every note may move (a delete and an add).
    git(repo_dir, "notes", "--ref=experiments", "add", "-f", "-F", str(note_file), commit)
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert listing(warm) == cold_listing(repo_dir)
    (run,) = [run for run in warm if run.commit == commit]
    assert (run.status, run.tags, run.message) == ("failed", ["by-hand"], "edited")
    assert run.started > runs["train/20261120.002.bbbb"].started
    assert (
        cached_notes_commit(repo_dir) == git(repo_dir, "rev-parse", cache.store.NOTES_REF).strip()
    )

    git(repo_dir, "notes", "--ref=experiments", "remove", commit)
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert listing(warm) == cold_listing(repo_dir)
    assert [run.problem for run in warm if run.commit == commit] == [
        "no record was written for this run"
    ]


def test_runs_added_and_removed_by_gc_are_picked_up(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    list_runs(repo)
    make_run(repo, "new", "20261120.001.ffff", finished_record("new", "f", started(22)))
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert "new/20261120.001.ffff" in [run.id for run in warm]
    assert listing(warm) == cold_listing(repo_dir)

    mark_deleted(repo, ["aaaa"], True, {})
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert [run.deleted for run in warm if run.run_id.endswith("aaaa")] == [True]
    assert listing(warm) == cold_listing(repo_dir)

    report = collect_garbage(pygit2.Repository(str(repo_dir)))
    assert [run.id for run in report.removed] == ["train/20261120.001.aaaa"]
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert "train/20261120.001.aaaa" not in [run.id for run in warm]
    assert listing(warm) == cold_listing(repo_dir)


def test_a_cache_whose_notes_commit_is_gone_is_rebuilt(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    list_runs(repo)
    # Replace the notes history by a fresh root commit, and drop the old one from the odb.
    git(repo_dir, "update-ref", "-d", cache.store.NOTES_REF)
    make_run(repo, "solo", "20261120.001.gggg", finished_record("solo", "g", started(9)))
    git(repo_dir, "reflog", "expire", "--expire=now", "--all")
    git(repo_dir, "gc", "--prune=now", "--quiet")
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert listing(warm) == cold_listing(repo_dir)
    assert [run.id for run in warm if run.record is not None] == ["solo/20261120.001.gggg"]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _flipped(data: bytes) -> bytes:
    body = bytearray(data)
    body[-5] ^= 0x01
    return bytes(body)


def _forged_entries(data: bytes) -> bytes:
    # A well-formed file of another summary version: must be rebuilt, not misread.
    header, _, body = data.partition(b"\n")
    parts = header.split(b" ")
    parts[2] = b"999"
    return b" ".join(parts) + b"\n" + body


def _flipped_listing(data: bytes) -> bytes:
    body = bytearray(data)
    body[data.index(b"\n") + 20] ^= 0x01
    return bytes(body)


def _foreign_json(data: bytes) -> bytes:
    listing = orjson.dumps({"notes": None, "refs": None, "runs": []})
    return _with_header(listing, orjson.dumps({"notes": None, "entries": {}}))


def _with_header(listing: bytes, entries: bytes) -> bytes:
    header = " ".join(
        [
            cache.MAGIC.decode(),
            f"{cache.FORMAT_VERSION} {SUMMARY_VERSION}",
            f"{len(listing)} {zlib.crc32(listing)}",
            f"{len(entries)} {zlib.crc32(entries)}",
        ]
    )
    return header.encode() + b"\n" + listing + entries


@pytest.mark.parametrize(
    "damage",
    [
        _truncated,
        _flipped,
        _flipped_listing,
        _forged_entries,
        lambda data: b"",
        lambda data: os.urandom(4096),
        lambda data: b'{"notes": null, "entries": {}}',
        lambda data: data.replace(b"\n", b" ", 1),
    ],
    ids=[
        "truncated",
        "bit-flip",
        "bit-flip-in-listing",
        "other-version",
        "empty",
        "garbage",
        "bare-json",
        "no-header",
    ],
)
def test_a_damaged_cache_is_ignored_and_rebuilt(
    repo: pygit2.Repository, repo_dir: Path, damage: Any
) -> None:
    cold = listing(list_runs(repo))
    path = cache.cache_file(repo)
    good = path.read_bytes()
    path.write_bytes(damage(good))
    assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold
    assert _without_stamp_time(path.read_bytes()) == _without_stamp_time(good)


def test_foreign_json_with_a_valid_header_for_an_old_tip_is_not_trusted(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    # A correct checksum over entries for "no notes": the tip differs, so it is rebuilt.
    cold = listing(list_runs(repo))
    path = cache.cache_file(repo)
    path.write_bytes(_foreign_json(path.read_bytes()))
    assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold


def test_a_cache_that_cannot_be_written_still_lists_correctly(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    path = cache.cache_file(repo)
    path.parent.parent.mkdir(parents=True, exist_ok=True)
    path.parent.write_text("a file where the cache directory would go\n")  # stops root too
    cold = listing(list_runs(repo))
    for _ in range(2):
        assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold
    make_run(repo, "new", "20261120.001.hhhh", finished_record("new", "h", started(22)))
    assert "new/20261120.001.hhhh" in [run.id for run in list_runs(repo)]
    assert path.parent.is_file()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_cache_directory_still_lists_correctly(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    list_runs(repo)
    path = cache.cache_file(repo)
    path.parent.chmod(0o555)
    try:
        make_run(repo, "new", "20261120.001.iiii", finished_record("new", "i", started(22)))
        warm = list_runs(pygit2.Repository(str(repo_dir)))
        assert "new/20261120.001.iiii" in [run.id for run in warm]
        assert listing(warm) == cold_listing(repo_dir)
    finally:
        path.parent.chmod(0o755)


def test_a_cached_running_record_still_turns_crashed(repo_dir: Path) -> None:
    repo = pygit2.Repository(str(repo_dir))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        process = psutil.Process(child.pid)
        host = {"hostname": HOST, "pid": child.pid, "pid_started_at": process.create_time()}
        record = new_record(id="train/x", name="train", started_at=started(12), host=host)
        make_run(repo, "train", "20261120.001.live", record)
        make_run(repo, "bare", "20261120.001.none", None, seconds_ago=0)  # starting now
        _age_ref_storage(repo_dir)
        assert [run.status for run in list_runs(repo)] == ["running", "running"]
        assert [entry[1] for entry in log_entries(repo)] == ["running", "running"]
    finally:
        child.kill()
        child.wait()
    notes_before = git(repo_dir, "rev-parse", cache.store.NOTES_REF).strip()
    # Through the cached rows too (the refs are an hour old: the rows are trusted).
    statuses = {entry[0]: entry[1] for entry in log_entries(pygit2.Repository(str(repo_dir)))}
    assert statuses == {"bare/20261120.001.none": "running", "train/20261120.001.live": "crashed"}
    (run,) = [run for run in list_runs(pygit2.Repository(str(repo_dir))) if run.name == "train"]
    assert cached_notes_commit(repo_dir) == notes_before  # served from the cache
    assert run.status == "crashed"
    assert run.as_json()["status"] == "crashed"
    assert run.record is not None and run.record["status"] == "running"


def test_only_the_notes_that_changed_are_read_again(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    runs = {run.id: run for run in list_runs(repo)}
    untouched = runs["train/20261120.001.aaaa"]
    note_path = f"{cache.store.NOTES_REF}:{untouched.commit[:2]}/{untouched.commit[2:]}"
    blob = git(repo_dir, "rev-parse", note_path).strip()
    # Lose the untouched note's blob: reading it again would fail, so the listing proves it
    # came from the cache, even though git re-lays out every note in the next notes commit.
    (repo_dir / ".git" / "objects" / blob[:2] / blob[2:]).unlink()
    changed = runs["train/20261120.002.bbbb"].commit
    git(repo_dir, "notes", "--ref=experiments", "add", "-f", "-m", '{"status": "failed"}', changed)
    warm = {run.id: run for run in list_runs(pygit2.Repository(str(repo_dir)))}
    assert warm["train/20261120.002.bbbb"].status == "failed"
    kept = warm["train/20261120.001.aaaa"]
    assert (kept.status, kept.tags, kept.message) == ("succeeded", ["best"], "first line")


def _age_ref_storage(repo_dir: Path, seconds: float = 3600) -> None:
    """Date the run refs' storage back, as in any repository whose runs are not brand new."""
    when = time.time() - seconds
    common = Path(git(repo_dir, "rev-parse", "--git-common-dir").strip())
    if not common.is_absolute():
        common = repo_dir / common
    paths = [common / "refs" / "experiments", common / "packed-refs"]
    paths += [path for path in paths[0].iterdir() if path.is_dir()]
    for path in paths:
        if path.exists():
            os.utime(path, (when, when))


def _drop_cached_run(repo_dir: Path, run_id: str) -> None:
    """Remove one run from the cached listing, keeping the file valid (checksum and all)."""
    path = cache.cache_file(pygit2.Repository(str(repo_dir)))
    mtime = path.stat().st_mtime_ns
    listing, entries = _segments(path.read_bytes())
    body = orjson.loads(listing)
    body["runs"] = [row for row in body["runs"] if not row[0].endswith(f"/{run_id}")]
    path.write_bytes(_with_header(orjson.dumps(body), entries))
    os.utime(path, ns=(mtime, mtime))


def test_the_cached_list_of_runs_is_used_while_no_run_ref_changed(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    _age_ref_storage(repo_dir)
    cold = listing(list_runs(repo))
    _drop_cached_run(repo_dir, "20261120.002.bbbb")
    # Proof that the run refs were not listed again: the doctored listing is what shows.
    warm = list_runs(pygit2.Repository(str(repo_dir)))
    assert [run[0] for run in listing(warm)] == [run[0] for run in cold if "bbbb" not in run[0]]


def test_a_cached_list_of_runs_as_new_as_its_refs_is_not_trusted(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    # The refs were written a moment ago: a change within the same timestamp tick could
    # leave their stamp equal, so the refs are listed again.
    cold = listing(list_runs(repo))
    _drop_cached_run(repo_dir, "20261120.002.bbbb")
    assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold


def test_a_listing_stamped_right_after_a_ref_changed_is_not_trusted_however_late_saved(
    repo: pygit2.Repository, repo_dir: Path
) -> None:
    # The refs changed just before they were stamped; the cache file is written (much)
    # later, as a cold listing of 100,000 runs may be: a ref created in between, within the
    # same timestamp tick, would not change the stamp. What counts is when it was taken.
    cold = listing(list_runs(repo))
    path = cache.cache_file(repo)
    later = time.time() + 10
    os.utime(path, (later, later))
    _drop_cached_run(repo_dir, "20261120.002.bbbb")
    assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold


@pytest.mark.parametrize(
    "change",
    [
        lambda repo, repo_dir: make_run(
            repo, "new", "20261120.001.jjjj", finished_record("new", "j", started(22))
        ),
        lambda repo, repo_dir: git(
            repo_dir, "update-ref", "-d", "refs/experiments/train/20261120.002.bbbb"
        ),
        lambda repo, repo_dir: git(repo_dir, "pack-refs", "--all"),
        lambda repo, repo_dir: git(
            repo_dir,
            "update-ref",
            "refs/experiments/eval/20261120.003.eeee",
            "refs/experiments/train/20261120.001.aaaa",
        ),
    ],
    ids=["new-run", "ref-deleted", "refs-packed", "ref-moved"],
)
@pytest.mark.parametrize("aged", [True, False], ids=["then-aged", "fresh"])
def test_a_run_ref_change_is_seen_through_a_trusted_cache(
    repo: pygit2.Repository, repo_dir: Path, change: Any, aged: bool
) -> None:
    _age_ref_storage(repo_dir, 7200)
    list_runs(repo)
    assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold_listing(repo_dir)
    change(repo, repo_dir)
    if aged:  # as if the change were made long ago: only the stamp tells
        _age_ref_storage(repo_dir, 3600)
    assert listing(list_runs(pygit2.Repository(str(repo_dir)))) == cold_listing(repo_dir)
    refs = git(repo_dir, "for-each-ref", "--format=%(refname) %(objectname)", "refs/experiments")
    listed = {f"{run.ref} {run.commit}" for run in list_runs(pygit2.Repository(str(repo_dir)))}
    assert listed == set(refs.split("\n")) - {""}


def _exact_record(name: str, run_id: str, commit: str, **fields: Any) -> dict[str, Any]:
    record = finished_record(name, run_id, started(8), **fields)
    record["commit"] = commit
    return record


def test_log_json_is_every_record_as_json_byte_for_byte(repo_dir: Path) -> None:
    """Notes copied as they are and records re-serialised print the same array."""
    repo = pygit2.Repository(str(repo_dir))
    _, commit = make_run(repo, "exact", "20261120.001.kkkk")
    metrics = {"loss": {"last": 0.5, "min": 0.5, "max": 0.5, "count": 1, "step": 0}}
    exact = _exact_record(
        "exact", "20261120.001.kkkk", commit, message="é ünïcode \u0085 \u202e", metrics=metrics
    )
    cache.store.update_note(repo, commit, lambda _old: dump_record(exact), SIGNATURE)
    # The same snapshot under a second ref: its note names the first run, not this one.
    git(repo_dir, "update-ref", "refs/experiments/copy/20261120.001.llll", commit)
    _, compact_commit = make_run(repo, "compact", "20261120.001.mmmm")
    compact = _exact_record("compact", "20261120.001.mmmm", compact_commit)
    cache.store.update_note(repo, compact_commit, lambda _old: orjson.dumps(compact), SIGNATURE)
    _, dead_commit = make_run(repo, "dead", "20261120.001.nnnn")
    dead = _exact_record("dead", "20261120.001.nnnn", dead_commit)
    dead["status"] = "running"
    dead["host"] = {"hostname": HOST, "pid": 2**22 + 17, "pid_started_at": 1.0}
    cache.store.update_note(repo, dead_commit, lambda _old: dump_record(dead), SIGNATURE)
    make_run(repo, "broken", "20261120.001.oooo", b"{not json")
    make_run(repo, "bare", "20261120.001.pppp", None)

    runs = list_runs(repo)
    by_id = {run.id: run for run in runs}
    assert by_id["exact/20261120.001.kkkk"].summary.exact is True
    assert by_id["dead/20261120.001.nnnn"].status == "crashed"
    expected = orjson.dumps([run.as_json() for run in runs], option=orjson.OPT_INDENT_2)
    expected = expected.decode().translate(JSON_UNSAFE).encode() + b"\n"
    for _ in range(2):  # cold, then through the cache
        result = CliRunner().invoke(cli, ["log", "--json", "--all"], catch_exceptions=False)
        assert result.exit_code == 0
        assert result.stdout_bytes == expected
    copy = next(item for item in orjson.loads(expected) if item["name"] == "copy")
    assert copy["ref"] == "refs/experiments/copy/20261120.001.llll"
    assert "\\u0085" in expected.decode() and "\\u202e" in expected.decode()


@pytest.mark.parametrize(
    "options", [[], ["--all"], ["-n", "2"], ["-r", "--all"], ["-r", "-n", "3"]]
)
def test_the_plain_listing_prints_what_the_filtered_one_does(
    repo: pygit2.Repository, repo_dir: Path, options: list[str]
) -> None:
    """`git exp log` prints from the cache's rows; a `--where` listing goes through runs."""
    mark_deleted(repo, ["aaaa"], True, {})
    everything = ["--where", "status exists or not status exists"]
    _age_ref_storage(repo_dir)
    runner = CliRunner()
    for _ in range(3):  # cold, then racy, then through the trusted cache
        plain = runner.invoke(cli, ["log", *options], catch_exceptions=False)
        filtered = runner.invoke(cli, ["log", *options, *everything], catch_exceptions=False)
        assert plain.exit_code == filtered.exit_code == 0
        assert plain.output == filtered.output
    assert ("(deleted)" in plain.output) == ("--all" in options)

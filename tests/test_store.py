"""The storage layer: run refs and the notes that hold records, checked with real git.

The concurrency tests run real processes at the same time: `git notes add` and
`repo.create_note` lose updates under that load, so only a compare-and-swap survives them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pygit2
import pytest
from conftest import git
from helpers import SIGNATURE, fsck, libgit2_home

from gitexp import store
from gitexp.errors import GitExpError

pytestmark = pytest.mark.usefixtures(libgit2_home.__name__)

NOTES = store.NOTES_REF

# A writer process: waits for the start file so that all writers begin together.
WRITER = textwrap.dedent(
    """
    import json, os, sys, time
    import pygit2
    from gitexp import store

    repo_path, start_file, mode, label, *commits = sys.argv[1:]
    repo = pygit2.Repository(repo_path)
    signature = pygit2.Signature("Writer", "writer@example.com")
    while not os.path.exists(start_file):
        time.sleep(0.002)
    if mode == "create":
        for n in range(40):
            ref = f"refs/experiments/race/20260101.{n:03d}.aaaa"
            if store.create_ref(repo, ref, pygit2.Oid(hex=commits[0])):
                print(ref)
            time.sleep(0.002)  # keeps the writers in step, all racing for the same ref
    elif mode == "distinct":
        for commit in commits:
            note = f"note {commit}\\n".encode()
            store.update_note(repo, commit, lambda old, n=note: n, signature)
    else:
        def add_key(old, key):
            record = json.loads(old) if old else {}
            record[key] = True
            return json.dumps(record, sort_keys=True).encode()
        for n in range(int(mode)):
            store.update_note(repo, commits[0], lambda old, k=f"{label}-{n}": add_key(old, k),
                              signature)
    """
)


def open_repo(repo_dir: Path) -> pygit2.Repository:
    return pygit2.Repository(str(repo_dir))


def make_commits(repo: pygit2.Repository, count: int, prefix: str = "c") -> list[str]:
    """`count` distinct commits (no ref points at them), cheap to make."""
    tree = repo.TreeBuilder().write()
    return [
        str(repo.create_commit(None, SIGNATURE, SIGNATURE, f"{prefix} {n}\n", tree, []))
        for n in range(count)
    ]


def notes_listing(repo_dir: Path) -> dict[str, str]:
    """annotated object -> note blob, as `git notes list` sees them."""
    lines = git(repo_dir, "notes", "--ref", "experiments", "list").splitlines()
    return {obj: blob for blob, obj in (line.split() for line in lines)}


def show_note(repo_dir: Path, commit: str) -> str:
    return git(repo_dir, "notes", "--ref", "experiments", "show", commit)


def notes_tip(repo_dir: Path) -> str | None:
    out = git(repo_dir, "rev-parse", "-q", "--verify", NOTES, check=False).strip()
    return out or None


def notes_tree_paths(repo_dir: Path) -> list[str]:
    return git(repo_dir, "ls-tree", "-r", "--name-only", NOTES).splitlines()


def run_writers(repo_dir: Path, tmp_path: Path, jobs: list[list[str]]) -> list[str]:
    """Start one writer process per job, release them together; return their outputs."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    start = tmp_path / "start"
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(repo_dir), str(start), *job],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for job in jobs
    ]
    time.sleep(0.3)  # let the interpreters import pygit2 and reach the start line
    start.touch()
    failures = []
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        outputs.append(out.decode())
        if process.returncode != 0:
            failures.append(err.decode())
    assert failures == [], failures[0]
    return outputs


def test_update_note_creates_the_notes_ref_and_git_reads_it(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    (commit,) = make_commits(repo, 1)
    assert store.read_note(repo, commit) is None
    seen: list[bytes | None] = []

    def change(old: bytes | None) -> bytes:
        seen.append(old)
        return b'{"status": "running"}\n'

    assert store.update_note(repo, commit, change, SIGNATURE) == b'{"status": "running"}\n'
    assert seen == [None]
    assert show_note(repo_dir, commit) == '{"status": "running"}\n'
    assert store.read_note(repo, commit) == b'{"status": "running"}\n'
    assert git(repo_dir, "log", "-1", "--format=%s", NOTES).strip() == "Notes added by 'git exp'"
    assert git(repo_dir, "rev-list", "--count", NOTES).strip() == "1"

    store.update_note(repo, commit, lambda old: (old or b"") + b"more\n", SIGNATURE)
    assert show_note(repo_dir, commit) == '{"status": "running"}\nmore\n'
    assert git(repo_dir, "rev-list", "--count", NOTES).strip() == "2"
    assert list(notes_listing(repo_dir)) == [commit]
    fsck(repo_dir)


def test_read_note_of_a_commit_without_one(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    first, second = make_commits(repo, 2)
    store.update_note(repo, first, lambda _old: b"first\n", SIGNATURE)
    assert store.read_note(repo, second) is None
    assert store.read_all_notes(repo) == {first: b"first\n"}


def test_read_all_notes_without_a_notes_ref(repo_dir: Path) -> None:
    assert store.read_all_notes(open_repo(repo_dir)) == {}


def test_sixteen_concurrent_writers_lose_no_note(repo_dir: Path, tmp_path: Path) -> None:
    repo = open_repo(repo_dir)
    commits = make_commits(repo, 160)
    jobs = [["distinct", str(n), *commits[n * 10 : n * 10 + 10]] for n in range(16)]
    run_writers(repo_dir, tmp_path, jobs)
    listing = notes_listing(repo_dir)
    assert sorted(listing) == sorted(commits)
    for commit in commits[::7]:
        assert show_note(repo_dir, commit) == f"note {commit}\n"
    assert git(repo_dir, "rev-list", "--count", NOTES).strip() == "160"
    assert store.read_all_notes(open_repo(repo_dir)) == {c: f"note {c}\n".encode() for c in commits}
    fsck(repo_dir)


def test_concurrent_read_modify_write_of_one_note_keeps_every_key(
    repo_dir: Path, tmp_path: Path
) -> None:
    repo = open_repo(repo_dir)
    (commit,) = make_commits(repo, 1)
    run_writers(repo_dir, tmp_path, [["5", f"writer{n}", commit] for n in range(8)])
    record = json.loads(show_note(repo_dir, commit))
    assert sorted(record) == sorted(f"writer{w}-{n}" for w in range(8) for n in range(5))
    assert git(repo_dir, "rev-list", "--count", NOTES).strip() == "40"


def test_change_runs_again_on_the_latest_note_when_the_ref_moved(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    ours, theirs = make_commits(repo, 2)
    store.update_note(repo, ours, lambda _old: b"v1\n", SIGNATURE)
    calls: list[bytes | None] = []

    def change(old: bytes | None) -> bytes:
        calls.append(old)
        if len(calls) == 1:  # someone else writes between our read and our swap
            git(repo_dir, "notes", "--ref", "experiments", "add", "-m", "by git", theirs)
            git(repo_dir, "notes", "--ref", "experiments", "add", "-f", "-m", "v2", ours)
        return (old or b"") + b"ours\n"

    assert store.update_note(repo, ours, change, SIGNATURE) == b"v2\nours\n"
    assert calls == [b"v1\n", b"v2\n"]
    assert show_note(repo_dir, ours) == "v2\nours\n"
    assert show_note(repo_dir, theirs) == "by git\n"


def test_note_written_flat_by_git_is_replaced_in_place(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    flat, other = make_commits(repo, 2)
    git(repo_dir, "notes", "--ref", "experiments", "add", "-m", "from git", flat)
    assert notes_tree_paths(repo_dir) == [flat]  # git's layout for few notes: flat
    seen: list[bytes | None] = []
    store.update_note(repo, flat, lambda old: seen.append(old) or b"from gitexp\n", SIGNATURE)
    assert seen == [b"from git\n"]
    assert notes_tree_paths(repo_dir) == [flat]  # same place, no second copy
    assert show_note(repo_dir, flat) == "from gitexp\n"
    store.update_note(repo, other, lambda _old: b"other\n", SIGNATURE)
    assert sorted(notes_listing(repo_dir)) == sorted([flat, other])
    assert store.read_all_notes(repo) == {flat: b"from gitexp\n", other: b"other\n"}
    # git can still edit both, whatever layout each is in.
    git(repo_dir, "notes", "--ref", "experiments", "append", "-m", "appended", other)
    assert store.read_note(repo, other) == b"other\n\nappended\n"
    fsck(repo_dir)


def fast_import_notes(repo_dir: Path, commits: list[str]) -> None:
    """Let git itself write many notes at once (it fans them out as it sees fit)."""
    lines = ["commit refs/notes/experiments", "committer T <t@e> 1700000000 +0000", "data 3", "git"]
    if notes_tip(repo_dir):
        lines.append(f"from {NOTES}^0")
    for commit in commits:
        body = f"git note {commit}\n"
        lines += [f"N inline {commit}", f"data {len(body)}", body.rstrip("\n")]
    stream = "\n".join(lines) + "\n\n"
    subprocess.run(
        ["git", "fast-import", "--quiet"],
        cwd=repo_dir,
        input=stream,
        text=True,
        check=True,
        capture_output=True,
    )


def test_notes_fanned_out_by_git_and_gitexp_see_each_other(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    by_git = make_commits(repo, 300, "git")
    by_gitexp = make_commits(repo, 30, "gitexp")
    fast_import_notes(repo_dir, by_git)
    paths = notes_tree_paths(repo_dir)
    assert len(paths) == 300
    assert all(len(path) == 41 and path[2] == "/" for path in paths)  # 2/38 fan-out

    for commit in by_gitexp:
        store.update_note(repo, commit, lambda _old, c=commit: f"gitexp {c}\n".encode(), SIGNATURE)
    store.update_note(repo, by_git[0], lambda old: (old or b"") + b"edited\n", SIGNATURE)

    expected = {c: f"git note {c}\n".encode() for c in by_git}
    expected.update({c: f"gitexp {c}\n".encode() for c in by_gitexp})
    expected[by_git[0]] += b"edited\n"
    assert store.read_all_notes(repo) == expected
    assert sorted(notes_listing(repo_dir)) == sorted(expected)
    for commit in [*by_gitexp[:5], by_git[0], by_git[-1]]:
        assert show_note(repo_dir, commit).encode() == expected[commit]
    assert len(notes_tree_paths(repo_dir)) == 330  # one entry per note, none duplicated

    # git rewrites the notes tree its own way; gitexp still finds everything.
    extra = make_commits(repo, 3, "later")
    for commit in extra:
        git(repo_dir, "notes", "--ref", "experiments", "add", "-m", f"later {commit}", commit)
        expected[commit] = f"later {commit}\n".encode()
    git(repo_dir, "notes", "--ref", "experiments", "remove", by_gitexp[1])
    del expected[by_gitexp[1]]
    assert store.read_all_notes(repo) == expected
    for commit in (by_gitexp[2], by_git[5], extra[0]):
        assert store.read_note(repo, commit) == expected[commit]
    fsck(repo_dir)


def test_few_notes_written_by_gitexp_are_readable_after_git_flattens(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    commits = make_commits(repo, 5)
    for commit in commits[:4]:
        store.update_note(repo, commit, lambda _old, c=commit: c.encode(), SIGNATURE)
    git(repo_dir, "notes", "--ref", "experiments", "add", "-m", "git", commits[4])
    assert sorted(notes_listing(repo_dir)) == sorted(commits)
    store.update_note(repo, commits[0], lambda _old: b"again", SIGNATURE)
    assert len(notes_tree_paths(repo_dir)) == 5
    assert show_note(repo_dir, commits[0]) == "again"
    assert store.read_all_notes(repo)[commits[0]] == b"again"


def test_update_note_on_a_packed_notes_ref(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    first, second = make_commits(repo, 2)
    store.update_note(repo, first, lambda _old: b"one", SIGNATURE)
    git(repo_dir, "pack-refs", "--all")
    assert not (repo_dir / ".git" / "refs" / "notes" / "experiments").exists()
    store.update_note(open_repo(repo_dir), second, lambda _old: b"two", SIGNATURE)
    assert sorted(notes_listing(repo_dir)) == sorted([first, second])


def test_stale_notes_lock_fails_with_its_path_and_writes_nothing(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = open_repo(repo_dir)
    first, second = make_commits(repo, 2)
    store.update_note(repo, first, lambda _old: b"before", SIGNATURE)
    tip = notes_tip(repo_dir)
    lock = repo_dir / ".git" / "refs" / "notes" / "experiments.lock"
    lock.write_text("")
    monkeypatch.setattr(store, "RETRY_SECONDS", 0.3)
    began = time.monotonic()
    with pytest.raises(GitExpError) as caught:
        store.update_note(repo, first, lambda _old: b"after", SIGNATURE)
    assert time.monotonic() - began < 3
    assert str(lock) in str(caught.value)
    assert "\n" not in str(caught.value)
    with pytest.raises(GitExpError):
        store.update_note(repo, second, lambda _old: b"new", SIGNATURE)
    assert notes_tip(repo_dir) == tip
    assert show_note(repo_dir, first) == "before"
    assert list(notes_listing(repo_dir)) == [first]
    assert lock.read_text() == ""
    lock.unlink()
    store.update_note(repo, first, lambda _old: b"after", SIGNATURE)
    assert show_note(repo_dir, first) == "after"
    fsck(repo_dir)


def test_stale_lock_before_the_notes_ref_exists(
    repo_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = open_repo(repo_dir)
    (commit,) = make_commits(repo, 1)
    lock = repo_dir / ".git" / "refs" / "notes" / "experiments.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    monkeypatch.setattr(store, "RETRY_SECONDS", 0.3)
    with pytest.raises(GitExpError, match=r"experiments\.lock"):
        store.update_note(repo, commit, lambda _old: b"x", SIGNATURE)
    assert notes_tip(repo_dir) is None


def test_stale_lock_in_a_linked_worktree_names_the_shared_lock(
    repo_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    linked = tmp_path / "linked"
    git(repo_dir, "worktree", "add", "-q", "--detach", str(linked))
    repo = pygit2.Repository(str(linked))
    (commit,) = make_commits(repo, 1)
    store.update_note(repo, commit, lambda _old: b"x", SIGNATURE)
    assert show_note(repo_dir, commit) == "x"  # notes are shared by all worktrees
    lock = repo_dir / ".git" / "refs" / "notes" / "experiments.lock"
    lock.write_text("")
    monkeypatch.setattr(store, "RETRY_SECONDS", 0.3)
    with pytest.raises(GitExpError) as caught:
        store.update_note(repo, commit, lambda _old: b"y", SIGNATURE)
    assert str(lock) in str(caught.value)


def test_create_ref_never_forces(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    first, second = make_commits(repo, 2)
    ref = "refs/experiments/train/20260101.001.abcd"
    assert store.create_ref(repo, ref, pygit2.Oid(hex=first)) is True
    assert git(repo_dir, "rev-parse", ref).strip() == first
    assert store.create_ref(repo, ref, pygit2.Oid(hex=second)) is False
    assert git(repo_dir, "rev-parse", ref).strip() == first
    git(repo_dir, "pack-refs", "--all")
    assert store.create_ref(open_repo(repo_dir), ref, pygit2.Oid(hex=second)) is False
    assert git(repo_dir, "rev-parse", ref).strip() == first


def test_concurrent_create_ref_has_exactly_one_winner_per_ref(
    repo_dir: Path, tmp_path: Path
) -> None:
    # libgit2's own create(force=False) checks before it locks: 8 processes racing for the
    # same 40 refs used to "win" some of them twice, the later winner overwriting the first.
    repo = open_repo(repo_dir)
    commits = make_commits(repo, 8)
    outputs = run_writers(
        repo_dir, tmp_path, [["create", str(n), c] for n, c in enumerate(commits)]
    )
    winners: dict[str, str] = {}
    for commit, output in zip(commits, outputs, strict=True):
        for ref in output.split():
            assert ref not in winners, f"{ref} was created twice"
            winners[ref] = commit
    assert len(winners) == 40
    for ref, commit in winners.items():
        assert git(repo_dir, "rev-parse", ref).strip() == commit


def test_create_ref_with_a_stale_lock(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = open_repo(repo_dir)
    (commit,) = make_commits(repo, 1)
    ref = "refs/experiments/train/20260101.001.abcd"
    lock = repo_dir / ".git" / f"{ref}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    monkeypatch.setattr(store, "RETRY_SECONDS", 0.3)
    with pytest.raises(GitExpError) as caught:
        store.create_ref(repo, ref, pygit2.Oid(hex=commit))
    assert str(lock) in str(caught.value)
    assert git(repo_dir, "for-each-ref", "refs/experiments/") == ""


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize(
    ("existing", "wanted"),
    [
        ("refs/experiments/train", "refs/experiments/train/20260101.001.abcd"),
        ("refs/experiments/train/20260101.001.abcd/x", "refs/experiments/train/20260101.001.abcd"),
    ],
)
def test_create_ref_where_a_ref_is_in_the_way_fails_at_once(
    repo_dir: Path, existing: str, wanted: str, pack: bool
) -> None:
    repo = open_repo(repo_dir)
    (commit,) = make_commits(repo, 1)
    git(repo_dir, "update-ref", existing, commit)
    if pack:
        git(repo_dir, "pack-refs", "--all")
    before = git(repo_dir, "for-each-ref")
    began = time.monotonic()
    with pytest.raises(GitExpError, match=rf"^could not update {wanted}: "):
        store.create_ref(open_repo(repo_dir), wanted, pygit2.Oid(hex=commit))
    assert time.monotonic() - began < 2
    assert git(repo_dir, "for-each-ref") == before
    git(repo_dir, "update-ref", "refs/heads/still-fine", commit)  # git is not confused


def test_list_and_delete_run_refs(repo_dir: Path) -> None:
    repo = open_repo(repo_dir)
    first, second = make_commits(repo, 2)
    refs = {
        "refs/experiments/train/20260101.001.abcd": first,
        "refs/experiments/eval/20260102.001.wxyz": second,
    }
    for ref, commit in refs.items():
        assert store.create_ref(repo, ref, pygit2.Oid(hex=commit))
    git(repo_dir, "update-ref", "refs/heads/not-a-run", first)
    git(repo_dir, "update-ref", "refs/experimentsX/also-not", first)
    git(repo_dir, "pack-refs", "--all")
    repo = open_repo(repo_dir)
    assert dict(store.list_run_refs(repo)) == refs
    store.delete_ref(repo, "refs/experiments/train/20260101.001.abcd")
    store.delete_ref(repo, "refs/experiments/train/20260101.001.abcd")  # already gone: fine
    assert git(repo_dir, "for-each-ref", "--format=%(refname)", "refs/experiments/") == (
        "refs/experiments/eval/20260102.001.wxyz\n"
    )

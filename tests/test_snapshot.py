"""snapshot_tree / commit_snapshot against real git.

The oracle for every tree: `cp -p <index> tmp; GIT_INDEX_FILE=tmp git add -A; git write-tree`
(minus the files gitexp skips on purpose). The user's index file, HEAD, refs and status must
be exactly as they were.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pygit2
import pytest
from conftest import git
from helpers import SIGNATURE, fsck, libgit2_home, ls_tree, oracle_tree, repo_state
from helpers_e2e import git_exp, only_run

from gitexp.errors import GitExpError
from gitexp.snapshot import SnapshotTree, commit_snapshot, snapshot_tree

BIG = 10 * 1024 * 1024

pytestmark = pytest.mark.usefixtures(libgit2_home.__name__)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory outside the working tree for the oracle's index copy."""
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def check_snapshot(
    repo_dir: Path,
    scratch: Path,
    *,
    max_file_size: int = BIG,
    leave_out: Sequence[str] = (),
) -> SnapshotTree:
    """Snapshot, compare with git's own tree, and check the repository was left alone."""
    before = repo_state(repo_dir)
    files_before = git_dir_files(repo_dir)
    repo = pygit2.Repository(str(repo_dir))
    snapshot = snapshot_tree(repo, max_file_size, os.environ)
    assert repo_state(repo_dir) == before
    assert git_dir_files(repo_dir) == files_before, "the snapshot left files in the git dir"
    expected = oracle_tree(repo_dir, scratch, leave_out)
    assert ls_tree(repo_dir, str(snapshot.tree)) == ls_tree(repo_dir, expected)
    assert str(snapshot.tree) == expected
    assert repo_state(repo_dir) == before
    return snapshot


def git_dir_files(repo_dir: Path) -> set[str]:
    """The files at the top of the git dir (the index copy goes there; `sharedindex.*` too,
    were git to write a split index), minus git-lfs's own store."""
    git_dir = Path(git(repo_dir, "rev-parse", "--absolute-git-dir").strip())
    return {path.name for path in git_dir.iterdir()} - {"lfs"}


def commit(repo_dir: Path, message: str = "commit") -> None:
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", message)


def modes(repo_dir: Path, tree: str) -> dict[str, str]:
    """Path -> mode of every entry of `tree`."""
    return {line.split("\t")[1]: line.split()[0] for line in ls_tree(repo_dir, tree)}


def head(repo_dir: Path) -> str:
    return git(repo_dir, "rev-parse", "HEAD").strip()


def test_clean_tree_is_head_tree(repo_dir: Path, scratch: Path) -> None:
    snapshot = check_snapshot(repo_dir, scratch)
    assert str(snapshot.tree) == git(repo_dir, "rev-parse", "HEAD^{tree}").strip()
    assert snapshot.head == head(repo_dir)
    assert snapshot.branch == "main"
    assert snapshot.dirty is False
    assert snapshot.untracked == []
    assert snapshot.skipped == []


def test_staged_only_edit(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "README").write_text("staged\n")
    git(repo_dir, "add", "README")
    snapshot = check_snapshot(repo_dir, scratch)
    assert snapshot.dirty is True
    assert git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:README") == "staged\n"


def test_unstaged_edit_on_top_of_staged_one(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "README").write_text("staged\n")
    git(repo_dir, "add", "README")
    (repo_dir / "README").write_text("staged\nand then unstaged\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:README") == (
        "staged\nand then unstaged\n"
    )


def test_unstaged_edit_reverting_a_staged_one(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "README").write_text("staged\n")
    git(repo_dir, "add", "README")
    (repo_dir / "README").write_text("hello\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert snapshot.dirty is False


def test_deleted_tracked_files(repo_dir: Path, scratch: Path) -> None:
    for name in ("staged_rm", "unstaged_rm", "cached_rm", "staged_then_back", "kept"):
        (repo_dir / name).write_text(f"{name}\n")
    commit(repo_dir)
    git(repo_dir, "rm", "-q", "staged_rm")
    (repo_dir / "unstaged_rm").unlink()
    git(repo_dir, "rm", "-q", "--cached", "cached_rm")  # still on disk: untracked again
    git(repo_dir, "rm", "-q", "staged_then_back")
    (repo_dir / "staged_then_back").write_text("back\n")
    snapshot = check_snapshot(repo_dir, scratch)
    names = {line.split("\t")[1] for line in ls_tree(repo_dir, str(snapshot.tree))}
    assert names == {"README", "kept", "cached_rm", "staged_then_back"}


def test_new_file_staged_then_deleted(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "fleeting").write_text("x\n")
    git(repo_dir, "add", "fleeting")
    (repo_dir / "fleeting").unlink()
    snapshot = check_snapshot(repo_dir, scratch)
    assert snapshot.dirty is False


def test_untracked_files_in_nested_directories(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "a" / "b" / "c").mkdir(parents=True)
    (repo_dir / "a" / "top.py").write_text("top\n")
    (repo_dir / "a" / "b" / "c" / "deep.py").write_text("deep\n")
    (repo_dir / "a" / "b" / "empty").mkdir()
    (repo_dir / "new.txt").write_text("")
    snapshot = check_snapshot(repo_dir, scratch)
    assert sorted(snapshot.untracked) == ["a/b/c/deep.py", "a/top.py", "new.txt"]
    info = snapshot.git_info()
    assert info["untracked_count"] == 3
    assert info["untracked"] == snapshot.untracked


def test_ignored_files_are_left_out(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / ".gitignore").write_text("*.log\nbuild/\n")
    (repo_dir / "sub" / "deeper").mkdir(parents=True)
    (repo_dir / "sub" / ".gitignore").write_text("*.tmp\n")
    (repo_dir / ".git" / "info" / "exclude").write_text("secret.txt\n")
    (repo_dir / "build").mkdir()
    files = {
        "run.log": False,
        "build/out.bin": False,
        "secret.txt": False,
        "sub/secret.txt": False,
        "sub/x.tmp": False,
        "sub/deeper/y.tmp": False,
        "sub/other.log": False,
        "sub/code.py": True,
    }
    for name in files:
        (repo_dir / name).write_text(name)
    snapshot = check_snapshot(repo_dir, scratch)
    in_tree = {line.split("\t")[1] for line in ls_tree(repo_dir, str(snapshot.tree))}
    for name, kept in files.items():
        assert (name in in_tree) is kept, name
    assert not any(name.endswith(".tmp") for name in snapshot.untracked)


def test_a_nested_negation_re_includes_a_file(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / ".gitignore").write_text("*.log\n")
    (repo_dir / "sub").mkdir()
    (repo_dir / "sub" / ".gitignore").write_text("!keep.log\n")
    (repo_dir / "sub" / "keep.log").write_text("kept")
    snapshot = check_snapshot(repo_dir, scratch)
    assert "sub/keep.log" in snapshot.untracked


def test_tracked_file_matching_an_ignore_rule_keeps_its_edits(
    repo_dir: Path, scratch: Path
) -> None:
    (repo_dir / "tracked.log").write_text("v1\n")
    commit(repo_dir)
    (repo_dir / ".gitignore").write_text("*.log\n")
    (repo_dir / "tracked.log").write_text("v2\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:tracked.log") == "v2\n"


def test_executable_bit_changes(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "was_exec.sh").write_text("#!/bin/sh\n")
    (repo_dir / "was_exec.sh").chmod(0o755)
    (repo_dir / "staged_exec.sh").write_text("#!/bin/sh\n")
    commit(repo_dir)
    (repo_dir / "README").chmod(0o755)  # unstaged +x
    (repo_dir / "was_exec.sh").chmod(0o644)  # unstaged -x
    git(repo_dir, "update-index", "--chmod=+x", "staged_exec.sh")  # staged only
    (repo_dir / "new_exec.sh").write_text("#!/bin/sh\n")
    (repo_dir / "new_exec.sh").chmod(0o755)
    snapshot = check_snapshot(repo_dir, scratch)
    assert modes(repo_dir, str(snapshot.tree)) == {
        "README": "100755",
        "was_exec.sh": "100644",
        "staged_exec.sh": "100644",  # the working tree wins: the file is not executable
        "new_exec.sh": "100755",
    }


def test_symlinks(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "dir").mkdir()
    (repo_dir / "dir" / "target.txt").write_text("target\n")
    (repo_dir / "to_file").symlink_to("dir/target.txt")
    (repo_dir / "dangling").symlink_to("does/not/exist")
    (repo_dir / "to_dir").symlink_to("dir")
    (repo_dir / "tracked_link").symlink_to("README")
    (repo_dir / "becomes_link").write_text("file\n")
    commit(repo_dir)
    (repo_dir / "tracked_link").unlink()
    (repo_dir / "tracked_link").symlink_to("dir/target.txt")  # retargeted
    (repo_dir / "becomes_link").unlink()
    (repo_dir / "becomes_link").symlink_to("README")  # file -> symlink
    (repo_dir / "new_link").symlink_to("README")
    (repo_dir / "new_dangling").symlink_to("nowhere")
    (repo_dir / "to_file").unlink()
    (repo_dir / "to_file").write_text("now a file\n")  # symlink -> file
    snapshot = check_snapshot(repo_dir, scratch)
    entries = modes(repo_dir, str(snapshot.tree))
    assert entries["new_dangling"] == entries["becomes_link"] == entries["to_dir"] == "120000"
    assert entries["to_file"] == "100644"
    assert git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:new_dangling") == "nowhere"


def test_names_with_spaces_unicode_and_odd_characters(repo_dir: Path, scratch: Path) -> None:
    names = [
        "with space.txt",
        "données/été.py",
        "日本語/ファイル.txt",
        "-leading-dash",
        "quote\"and'apostrophe",
        "tab\there",
        "back\\slash",
        "emoji 🚀.md",
    ]
    tracked = "tracked é.txt"
    (repo_dir / tracked).write_text("v1\n")
    commit(repo_dir)
    (repo_dir / tracked).write_text("v2\n")
    for name in names:
        (repo_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / name).write_text(name)
    snapshot = check_snapshot(repo_dir, scratch)
    assert sorted(snapshot.untracked) == sorted(names)


def test_typechange_between_file_and_directory(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "was_dir").mkdir()
    (repo_dir / "was_dir" / "inner.txt").write_text("inner\n")
    (repo_dir / "was_file").write_text("file\n")
    commit(repo_dir)
    (repo_dir / "was_dir" / "inner.txt").unlink()
    (repo_dir / "was_dir").rmdir()
    (repo_dir / "was_dir").write_text("now a file\n")
    (repo_dir / "was_file").unlink()
    (repo_dir / "was_file").mkdir()
    (repo_dir / "was_file" / "inner.txt").write_text("now a dir\n")
    check_snapshot(repo_dir, scratch)


def test_intent_to_add(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "planned.py").write_text("planned\n")
    git(repo_dir, "add", "--intent-to-add", "planned.py")
    snapshot = check_snapshot(repo_dir, scratch)
    assert git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:planned.py") == "planned\n"


def test_text_attributes_are_applied_like_git_add(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / ".gitattributes").write_text("*.txt text eol=lf\n")
    (repo_dir / "crlf.txt").write_bytes(b"one\r\ntwo\r\n")
    check_snapshot(repo_dir, scratch)


def test_unborn_head(tmp_path: Path, scratch: Path) -> None:
    path = tmp_path / "empty"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    empty = check_snapshot(path, scratch)
    assert empty.head is None
    assert empty.branch == "trunk"
    assert empty.untracked == []
    (path / "staged.py").write_text("staged\n")
    git(path, "add", "staged.py")
    (path / "sub").mkdir()
    (path / "sub" / "new.py").write_text("new\n")
    snapshot = check_snapshot(path, scratch)
    assert snapshot.head is None
    assert snapshot.branch == "trunk"
    assert snapshot.dirty is True
    assert snapshot.untracked == ["sub/new.py"]
    repo = pygit2.Repository(str(path))
    commit_id = commit_snapshot(repo, snapshot, "exp: x\n", SIGNATURE)
    assert git(path, "rev-list", "--parents", "-n1", str(commit_id)).split() == [str(commit_id)]
    assert repo.head_is_unborn
    fsck(path)


def test_detached_head(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "checkout", "-q", "--detach")
    (repo_dir / "README").write_text("detached edit\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert snapshot.branch is None
    assert snapshot.head == head(repo_dir)


def test_branch_with_slashes(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "checkout", "-q", "-b", "feature/deep/name")
    assert check_snapshot(repo_dir, scratch).branch == "feature/deep/name"


def make_conflict(repo_dir: Path) -> None:
    (repo_dir / "both.txt").write_text("base\n")
    (repo_dir / "deleted_theirs.txt").write_text("base\n")
    (repo_dir / "deleted_ours.txt").write_text("base\n")
    commit(repo_dir, "base")
    git(repo_dir, "checkout", "-q", "-b", "other")
    (repo_dir / "both.txt").write_text("theirs\n")
    (repo_dir / "deleted_ours.txt").write_text("theirs\n")
    (repo_dir / "deleted_theirs.txt").unlink()
    (repo_dir / "added_both.txt").write_text("theirs\n")
    commit(repo_dir, "theirs")
    git(repo_dir, "checkout", "-q", "main")
    (repo_dir / "both.txt").write_text("ours\n")
    (repo_dir / "deleted_theirs.txt").write_text("ours\n")
    (repo_dir / "deleted_ours.txt").unlink()
    (repo_dir / "added_both.txt").write_text("ours\n")
    commit(repo_dir, "ours")
    git(repo_dir, "merge", "-q", "other", check=False)
    assert git(repo_dir, "ls-files", "--unmerged"), "the merge should have conflicted"


def test_merge_conflict_snapshots_the_working_tree_files(repo_dir: Path, scratch: Path) -> None:
    make_conflict(repo_dir)
    snapshot = check_snapshot(repo_dir, scratch)
    both = git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:both.txt")
    assert both == (repo_dir / "both.txt").read_text()
    assert "<<<<<<<" in both
    assert snapshot.head == head(repo_dir)


def test_merge_conflict_with_a_conflicted_file_removed(repo_dir: Path, scratch: Path) -> None:
    make_conflict(repo_dir)
    (repo_dir / "both.txt").unlink()
    (repo_dir / "deleted_ours.txt").unlink(missing_ok=True)
    snapshot = check_snapshot(repo_dir, scratch)
    names = {line.split("\t")[1] for line in ls_tree(repo_dir, str(snapshot.tree))}
    assert "both.txt" not in names


def test_large_untracked_files_are_skipped_and_listed(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "tracked.bin").write_bytes(b"t")
    commit(repo_dir)
    (repo_dir / "data").mkdir()
    (repo_dir / "data" / "dump.bin").write_bytes(b"x" * 2000)
    (repo_dir / "ckpt.pt").write_bytes(b"y" * 1001)
    (repo_dir / "exactly.bin").write_bytes(b"z" * 1000)
    (repo_dir / "small.py").write_text("small\n")
    (repo_dir / "tracked.bin").write_bytes(b"t" * 5000)  # tracked files are never skipped
    snapshot = check_snapshot(
        repo_dir, scratch, max_file_size=1000, leave_out=["ckpt.pt", "data/dump.bin"]
    )
    assert sorted(snapshot.skipped, key=lambda item: str(item["path"])) == [
        {"path": "ckpt.pt", "size": 1001, "reason": "larger than exp.maxFileSize"},
        {"path": "data/dump.bin", "size": 2000, "reason": "larger than exp.maxFileSize"},
    ]
    assert sorted(snapshot.untracked) == ["exactly.bin", "small.py"]
    assert snapshot.git_info()["skipped"] == snapshot.skipped


def test_large_staged_new_file_is_kept(repo_dir: Path, scratch: Path) -> None:
    # Already in the index: the user chose to commit it, so it is not an untracked dump.
    (repo_dir / "big.bin").write_bytes(b"b" * 5000)
    git(repo_dir, "add", "big.bin")
    snapshot = check_snapshot(repo_dir, scratch, max_file_size=1000)
    assert snapshot.skipped == []


def test_nested_repository_is_skipped_and_listed(repo_dir: Path, scratch: Path) -> None:
    nested = repo_dir / "vendor" / "lib"
    nested.mkdir(parents=True)
    git(nested, "init", "-q")
    (nested / "code.py").write_text("nested\n")
    git(nested, "add", "code.py")
    git(nested, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "n")
    empty = repo_dir / "scratchpad"
    empty.mkdir()
    git(empty, "init", "-q")  # no commit at all
    (empty / "notes.txt").write_text("x\n")
    (repo_dir / "vendor" / "sibling.py").write_text("sibling\n")
    snapshot = check_snapshot(repo_dir, scratch, leave_out=["vendor/lib", "scratchpad"])
    assert sorted(snapshot.skipped, key=lambda item: str(item["path"])) == [
        {"path": "scratchpad/", "size": None, "reason": "nested repository"},
        {"path": "vendor/lib/", "size": None, "reason": "nested repository"},
    ]
    assert snapshot.untracked == ["vendor/sibling.py"]


@pytest.fixture
def with_submodule(repo_dir: Path, tmp_path: Path) -> Path:
    upstream = tmp_path / "upstream"
    upstream.mkdir()
    git(upstream, "init", "-q", "-b", "main")
    (upstream / "lib.py").write_text("v1\n")
    git(upstream, "add", "lib.py")
    git(upstream, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "-m", "v1")
    git(
        repo_dir,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(upstream),
        "deps/lib",
    )
    git(repo_dir, "commit", "-q", "-m", "add submodule")
    return repo_dir / "deps" / "lib"


def test_submodule_gitlink_is_kept(repo_dir: Path, scratch: Path, with_submodule: Path) -> None:
    (with_submodule / "lib.py").write_text("dirty inside the submodule\n")
    (with_submodule / "untracked_in_sub.py").write_text("x\n")
    (repo_dir / "README").write_text("changed\n")
    snapshot = check_snapshot(repo_dir, scratch)
    gitlink = git(repo_dir, "ls-tree", str(snapshot.tree), "deps/lib").split()
    assert gitlink[:3] == ["160000", "commit", git(with_submodule, "rev-parse", "HEAD").strip()]
    assert snapshot.skipped == []


def test_submodule_moved_to_a_new_commit_keeps_the_index_commit(
    repo_dir: Path, scratch: Path, with_submodule: Path
) -> None:
    # docs/format.md: "a submodule keeps the commit recorded in the index" (unlike git add -A).
    recorded = git(repo_dir, "rev-parse", ":deps/lib").strip()
    (with_submodule / "lib.py").write_text("v2\n")
    git(with_submodule, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qam", "v2")
    (repo_dir / "README").write_text("changed\n")
    before = repo_state(repo_dir)
    snapshot = snapshot_tree(pygit2.Repository(str(repo_dir)), BIG, os.environ)
    assert repo_state(repo_dir) == before
    expected = oracle_tree(repo_dir, scratch)
    assert git(repo_dir, "rev-parse", f"{snapshot.tree}:deps/lib").strip() == recorded
    assert git(repo_dir, "diff-tree", "-r", "--name-only", expected, str(snapshot.tree)) == (
        "deps/lib\n"
    )


def test_linked_worktree(repo_dir: Path, scratch: Path, tmp_path: Path) -> None:
    linked = tmp_path / "linked"
    git(repo_dir, "worktree", "add", "-q", "-b", "side", str(linked))
    (linked / "README").write_text("edited in the linked worktree\n")
    (linked / "only_here.py").write_text("x\n")
    main_index = (repo_dir / ".git" / "index").read_bytes()
    snapshot = check_snapshot(linked, scratch)
    assert snapshot.branch == "side"
    assert snapshot.untracked == ["only_here.py"]
    assert (repo_dir / ".git" / "index").read_bytes() == main_index


def test_git_dir_elsewhere_behind_a_dot_git_file(tmp_path: Path, scratch: Path) -> None:
    # Opened again by its git dir alone, such a repository has no working tree of its own.
    work = tmp_path / "work"
    git(tmp_path, "init", "-q", "-b", "main", f"--separate-git-dir={tmp_path / 'gitdir'}", "work")
    (work / "README").write_text("hello\n")
    git(work, "add", "README")
    git(work, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "-m", "initial")
    (work / "README").write_text("edited\n")
    (work / "new.py").write_text("new\n")
    snapshot = check_snapshot(work, scratch)
    assert snapshot.untracked == ["new.py"]
    assert snapshot.dirty is True


def test_sparse_checkout_keeps_files_outside_the_cone(repo_dir: Path, scratch: Path) -> None:
    for name in ("inside/a.py", "outside/b.py"):
        (repo_dir / name).parent.mkdir(exist_ok=True)
        (repo_dir / name).write_text(name)
    commit(repo_dir)
    git(repo_dir, "sparse-checkout", "set", "inside")
    assert not (repo_dir / "outside").exists()
    snapshot = check_snapshot(repo_dir, scratch)
    assert git(repo_dir, "cat-file", "-p", f"{snapshot.tree}:outside/b.py") == "outside/b.py"


def test_snapshot_is_repeatable_and_leaves_repo_object_usable(
    repo_dir: Path, scratch: Path
) -> None:
    (repo_dir / "README").write_text("staged\n")
    git(repo_dir, "add", "README")
    (repo_dir / "new.py").write_text("new\n")
    repo = pygit2.Repository(str(repo_dir))
    first = snapshot_tree(repo, BIG, os.environ)
    second = snapshot_tree(repo, BIG, os.environ)
    assert first.tree == second.tree
    assert "new.py" not in repo.index  # the staging was only ever in the private copy
    assert repo.status()["new.py"] == pygit2.enums.FileStatus.WT_NEW


def test_a_reused_repo_object_sees_the_index_git_changed_since(
    repo_dir: Path, scratch: Path
) -> None:
    # Each snapshot starts from the index file as it is then, whoever holds `repo`.
    repo = pygit2.Repository(str(repo_dir))
    clean = snapshot_tree(repo, BIG, os.environ)
    assert str(clean.tree) == oracle_tree(repo_dir, scratch)
    (repo_dir / ".gitignore").write_text("*.log\n")
    (repo_dir / "kept.log").write_text("tracked although ignored\n")
    git(repo_dir, "add", ".gitignore")
    git(repo_dir, "add", "-f", "kept.log")  # only the index says this file belongs in the tree
    staged = snapshot_tree(repo, BIG, os.environ)
    assert str(staged.tree) == oracle_tree(repo_dir, scratch)
    assert git(repo_dir, "ls-tree", "--name-only", str(staged.tree), "kept.log").strip()
    (repo_dir / "new.py").write_text("new\n")
    (repo_dir / "README").write_text("edited after staging\n")
    dirty = snapshot_tree(repo, BIG, os.environ)
    assert str(dirty.tree) == oracle_tree(repo_dir, scratch)
    git(repo_dir, "add", "-A")
    git(repo_dir, "commit", "-q", "-m", "everything")
    after_commit = snapshot_tree(repo, BIG, os.environ)
    assert str(after_commit.tree) == git(repo_dir, "rev-parse", "HEAD^{tree}").strip()
    assert after_commit.dirty is False
    staged_entries = sorted((entry.path, str(entry.id), int(entry.mode)) for entry in repo.index)
    listed = [line.split(maxsplit=3) for line in git(repo_dir, "ls-files", "-s").splitlines()]
    assert staged_entries == sorted((path, oid, int(mode, 8)) for mode, oid, _, path in listed)


def test_commit_snapshot_parent_is_head_and_fsck_is_clean(repo_dir: Path, scratch: Path) -> None:
    (repo_dir / "README").write_text("edited\n")
    (repo_dir / "link").symlink_to("README")
    (repo_dir / "run.sh").write_text("#!/bin/sh\n")
    (repo_dir / "run.sh").chmod(0o755)
    snapshot = check_snapshot(repo_dir, scratch)
    repo = pygit2.Repository(str(repo_dir))
    refs_before = git(repo_dir, "for-each-ref")
    commit_id = commit_snapshot(repo, snapshot, "exp: train/x\n\ntrain.py\n", SIGNATURE)
    assert git(repo_dir, "rev-parse", f"{commit_id}^").strip() == head(repo_dir)
    assert git(repo_dir, "rev-parse", f"{commit_id}^{{tree}}").strip() == str(snapshot.tree)
    assert git(repo_dir, "log", "-1", "--format=%B", str(commit_id)).startswith("exp: train/x")
    assert git(repo_dir, "for-each-ref") == refs_before
    diff = git(repo_dir, "diff", "--name-status", "HEAD", str(commit_id)).splitlines()
    assert sorted(diff) == ["A\tlink", "A\trun.sh", "M\tREADME"]
    fsck(repo_dir)


def test_commit_snapshot_with_submodule_and_conflict_is_fsck_clean(
    repo_dir: Path, scratch: Path, with_submodule: Path
) -> None:
    make_conflict(repo_dir)
    snapshot = check_snapshot(repo_dir, scratch)
    repo = pygit2.Repository(str(repo_dir))
    commit_id = commit_snapshot(repo, snapshot, "exp\n", SIGNATURE)
    assert git(repo_dir, "rev-list", "--parents", "-n1", str(commit_id)).split()[1:] == [
        head(repo_dir)
    ]
    fsck(repo_dir)


def test_fifo_is_left_out_like_git_does(repo_dir: Path, scratch: Path) -> None:
    os.mkfifo(repo_dir / "pipe")  # hashing it would block forever
    (repo_dir / "real.py").write_text("real\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert snapshot.untracked == ["real.py"]
    assert snapshot.skipped == []


def test_undecodable_and_newline_names(repo_dir: Path, scratch: Path) -> None:
    os.mkdir(os.path.join(os.fsencode(repo_dir), b"dir\xff"))
    with open(os.path.join(os.fsencode(repo_dir), b"dir\xff", b"latin1-\xe9.txt"), "wb") as f:
        f.write(b"bytes\n")
    (repo_dir / "new\nline.txt").write_text("newline\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert len(snapshot.untracked) == 2


def test_user_environment_cannot_redirect_the_status(
    repo_dir: Path, scratch: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo_dir / "README").write_text("stashed\n")
    git(repo_dir, "stash", "-q")
    (repo_dir / "new.py").write_text("new\n")
    (repo_dir / "README").write_text("edited\n")
    git(repo_dir, "config", "status.showUntrackedFiles", "no")
    git(repo_dir, "config", "status.renames", "copies")
    git(repo_dir, "config", "status.branch", "true")  # `# branch.*` and `# stash` headers
    git(repo_dir, "config", "status.showStash", "true")
    monkeypatch.setenv("GIT_INDEX_FILE", str(tmp_path / "elsewhere.index"))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "not-a-repo"))
    monkeypatch.setenv("GIT_WORK_TREE", str(tmp_path))
    repo = pygit2.Repository(str(repo_dir))
    snapshot = snapshot_tree(repo, BIG, os.environ)
    monkeypatch.delenv("GIT_INDEX_FILE")
    monkeypatch.delenv("GIT_DIR")
    monkeypatch.delenv("GIT_WORK_TREE")
    assert str(snapshot.tree) == oracle_tree(repo_dir, scratch)
    assert snapshot.untracked == ["new.py"]
    assert not (tmp_path / "elsewhere.index").exists()


def test_submodule_directory_removed_keeps_the_gitlink(
    repo_dir: Path, scratch: Path, with_submodule: Path
) -> None:
    recorded = git(repo_dir, "rev-parse", ":deps/lib").strip()
    git(repo_dir, "submodule", "deinit", "-q", "-f", "deps/lib")
    snapshot = check_snapshot(repo_dir, scratch)  # deinit leaves an empty directory
    assert git(repo_dir, "rev-parse", f"{snapshot.tree}:deps/lib").strip() == recorded
    (repo_dir / "deps" / "lib").rmdir()
    snapshot = snapshot_tree(pygit2.Repository(str(repo_dir)), BIG, os.environ)
    assert git(repo_dir, "rev-parse", f"{snapshot.tree}:deps/lib").strip() == recorded


# --- what git honours: the snapshot is made by git, on a private copy of the index ----------

ROT13 = "tr A-Za-z N-ZA-Mn-za-m"


def blob(repo_dir: Path, tree: object, path: str) -> str:
    return git(repo_dir, "cat-file", "-p", f"{tree}:{path}")


@pytest.mark.skipif(shutil.which("git-lfs") is None, reason="git-lfs is not installed")
def test_a_git_lfs_file_is_snapshotted_as_its_pointer(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "lfs", "install", "--local")
    git(repo_dir, "lfs", "track", "*.bin")
    (repo_dir / "tracked.bin").write_bytes(b"weights v1\0" * 100)
    commit(repo_dir)
    (repo_dir / "tracked.bin").write_bytes(b"weights v2\0" * 100)
    (repo_dir / "new.bin").write_bytes(b"\0\1\2 a checkpoint" * 100)
    snapshot = check_snapshot(repo_dir, scratch)
    for path in ("tracked.bin", "new.bin"):
        pointer = blob(repo_dir, snapshot.tree, path)
        assert pointer.startswith("version https://git-lfs.github.com/spec/v1\n"), pointer
        assert f"size {(repo_dir / path).stat().st_size}\n" in pointer
    assert snapshot.untracked == ["new.bin"]


def test_a_clean_filter_is_honoured_and_a_touched_file_is_not_dirty(
    repo_dir: Path, scratch: Path
) -> None:
    git(repo_dir, "config", "filter.rot.clean", ROT13)
    git(repo_dir, "config", "filter.rot.smudge", ROT13)
    (repo_dir / ".gitattributes").write_text("*.secret filter=rot\n")
    (repo_dir / "key.secret").write_text("Hello plaintext\n")
    commit(repo_dir)
    assert blob(repo_dir, "HEAD", "key.secret") == "Uryyb cynvagrkg\n"
    later = (repo_dir / "key.secret").stat().st_mtime_ns + 5_000_000_000
    os.utime(repo_dir / "key.secret", ns=(later, later))  # touched, not changed
    touched = check_snapshot(repo_dir, scratch)
    assert touched.dirty is False
    assert str(touched.tree) == git(repo_dir, "rev-parse", "HEAD^{tree}").strip()
    (repo_dir / "key.secret").write_text("Changed plaintext\n")
    (repo_dir / "new.secret").write_text("Also secret\n")
    changed = check_snapshot(repo_dir, scratch)
    assert changed.dirty is True
    assert blob(repo_dir, changed.tree, "key.secret") == "Punatrq cynvagrkg\n"
    assert blob(repo_dir, changed.tree, "new.secret") == "Nyfb frperg\n"


def test_core_autocrlf_is_applied(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "config", "core.autocrlf", "true")
    (repo_dir / "windows.txt").write_bytes(b"one\r\ntwo\r\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert blob(repo_dir, snapshot.tree, "windows.txt") == "one\ntwo\n"


def make_sparse_repo(repo_dir: Path, *sparse_args: str) -> None:
    """`inside/` in the sparse cone, `outside/` out of it."""
    for name in ("inside/a.py", "inside/gone.py", "outside/b.py", "outside/deep/c.py"):
        (repo_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / name).write_text(name)
    commit(repo_dir)
    git(repo_dir, "sparse-checkout", "set", *sparse_args, "inside")
    assert not (repo_dir / "outside").exists()
    (repo_dir / "inside" / "a.py").write_text("edited\n")
    (repo_dir / "inside" / "gone.py").unlink()
    (repo_dir / "inside" / "new.py").write_text("new\n")


def test_sparse_index(repo_dir: Path, scratch: Path) -> None:
    make_sparse_repo(repo_dir, "--sparse-index")
    assert "outside/" in git(repo_dir, "ls-files", "--sparse").split(), "no sparse index"
    snapshot = check_snapshot(repo_dir, scratch)
    names = {line.split("\t")[1] for line in ls_tree(repo_dir, str(snapshot.tree))}
    assert names == {"README", "inside/a.py", "inside/new.py", "outside/b.py", "outside/deep/c.py"}
    assert snapshot.untracked == ["inside/new.py"]


def test_a_deletion_in_a_sparse_checkout_is_seen(repo_dir: Path, scratch: Path) -> None:
    make_sparse_repo(repo_dir)  # a full index with skip-worktree bits: libgit2 missed this
    snapshot = check_snapshot(repo_dir, scratch)
    names = {line.split("\t")[1] for line in ls_tree(repo_dir, str(snapshot.tree))}
    assert "inside/gone.py" not in names
    assert "outside/b.py" in names


def test_split_index(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "config", "core.splitIndex", "true")
    git(repo_dir, "config", "splitIndex.maxPercentChange", "0")  # every write: a new shared one
    for number in range(30):
        (repo_dir / f"file{number}.txt").write_text(f"{number}\n")
    commit(repo_dir)
    git(repo_dir, "update-index", "--split-index")
    (repo_dir / "file3.txt").write_text("edited\n")
    git(repo_dir, "add", "file3.txt")  # an entry of the split index, beside its shared index
    (repo_dir / "file4.txt").write_text("unstaged\n")
    (repo_dir / "file5.txt").unlink()
    (repo_dir / "new.txt").write_text("new\n")
    assert any(name.startswith("sharedindex.") for name in git_dir_files(repo_dir))
    snapshot = check_snapshot(repo_dir, scratch)  # no new sharedindex.* file either
    assert blob(repo_dir, snapshot.tree, "file3.txt") == "edited\n"
    assert blob(repo_dir, snapshot.tree, "file4.txt") == "unstaged\n"
    assert snapshot.untracked == ["new.txt"]


def test_untracked_cache(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "config", "core.untrackedCache", "true")
    (repo_dir / "dir").mkdir()
    (repo_dir / "dir" / "old.py").write_text("old\n")
    git(repo_dir, "status", "--porcelain")  # writes the cache into the index
    assert b"UNTR" in (repo_dir / ".git" / "index").read_bytes()
    (repo_dir / "dir" / "new.py").write_text("new\n")
    snapshot = check_snapshot(repo_dir, scratch)
    assert snapshot.untracked == ["dir/new.py", "dir/old.py"]


@pytest.mark.skipif(
    "feature: fsmonitor--daemon" not in git(Path.cwd(), "version", "--build-options"),
    reason="this git has no built-in fsmonitor daemon (git 2.39 on Linux does not)",
)
def test_fsmonitor(repo_dir: Path, scratch: Path) -> None:
    git(repo_dir, "config", "core.fsmonitor", "true")
    try:
        git(repo_dir, "status", "--porcelain")  # starts the daemon, writes its token
        (repo_dir / "README").write_text("edited\n")
        (repo_dir / "new.py").write_text("new\n")
        snapshot = check_snapshot(repo_dir, scratch)
        assert snapshot.untracked == ["new.py"]
        assert blob(repo_dir, snapshot.tree, "README") == "edited\n"
    finally:
        git(repo_dir, "fsmonitor--daemon", "stop", check=False)


def test_a_racily_clean_edit_is_seen(repo_dir: Path) -> None:
    # An edit in the instant the index was written keeps size and mtime (ctime not trusted
    # here): git then compares contents, as long as the index copy keeps the index's mtime.
    git(repo_dir, "config", "core.trustctime", "false")
    (repo_dir / "README").write_text("aaa\n")
    stamp = (repo_dir / "README").stat().st_mtime_ns - 10_000_000_000
    os.utime(repo_dir / "README", ns=(stamp, stamp))  # older than the index: not smudged
    git(repo_dir, "add", "README")
    (repo_dir / "README").write_text("bbb\n")
    os.utime(repo_dir / "README", ns=(stamp, stamp))
    os.utime(repo_dir / ".git" / "index", ns=(stamp, stamp))
    snapshot = snapshot_tree(pygit2.Repository(str(repo_dir)), BIG, os.environ)
    assert blob(repo_dir, snapshot.tree, "README") == "bbb\n"


def test_the_users_hooks_do_not_see_the_private_index(repo_dir: Path, scratch: Path) -> None:
    hook = repo_dir / ".git" / "hooks" / "post-index-change"
    hook.write_text(f"#!/bin/sh\ntouch '{scratch}/hook-ran'\n")
    hook.chmod(0o755)
    git(repo_dir, "add", "README")
    (scratch / "hook-ran").unlink()  # the hook works
    (repo_dir / "README").write_text("edited\n")
    snapshot = snapshot_tree(pygit2.Repository(str(repo_dir)), BIG, os.environ)
    assert not (scratch / "hook-ran").exists()
    assert blob(repo_dir, snapshot.tree, "README") == "edited\n"


def test_a_failing_filter_is_an_error_and_leaves_nothing_behind(repo_dir: Path) -> None:
    git(repo_dir, "config", "filter.broken.clean", "false")
    git(repo_dir, "config", "filter.broken.required", "true")
    (repo_dir / ".gitattributes").write_text("*.x filter=broken\n")
    (repo_dir / "data.x").write_text("x\n")
    before = repo_state(repo_dir)
    files_before = git_dir_files(repo_dir)
    with pytest.raises(GitExpError, match=r"^cannot snapshot the working tree: git .* failed: "):
        snapshot_tree(pygit2.Repository(str(repo_dir)), BIG, os.environ)
    assert repo_state(repo_dir) == before
    assert git_dir_files(repo_dir) == files_before


@pytest.mark.parametrize("layout", ["sparse-index", "split-index"])
def test_git_exp_run_records_runs_in_sparse_and_split_index_repositories(
    repo_dir: Path, layout: str
) -> None:
    if layout == "sparse-index":
        make_sparse_repo(repo_dir, "--sparse-index")
    else:
        git(repo_dir, "update-index", "--split-index")
        (repo_dir / "README").write_text("edited\n")
        (repo_dir / "inside").mkdir()
        (repo_dir / "inside" / "new.py").write_text("new\n")
    (repo_dir / "inside" / "train.py").write_text("print('trained')\n")
    index = (repo_dir / ".git" / "index").read_bytes()
    result = git_exp(repo_dir, "run", sys.executable, "inside/train.py")
    assert result.returncode == 0, result.stderr
    assert (repo_dir / ".git" / "index").read_bytes() == index
    _, commit_id, record = only_run(repo_dir)
    assert record["status"] == "succeeded"
    assert record["git"]["dirty"] is True
    assert blob(repo_dir, commit_id, "inside/train.py") == "print('trained')\n"
    assert "inside/new.py" in record["git"]["untracked"]


def test_ctrl_c_while_git_stages_leaves_nothing_behind(repo_dir: Path) -> None:
    # The clean filter runs inside `git update-index`, while the index copy and its lock exist.
    git(repo_dir, "config", "filter.interrupt.clean", f"kill -INT {os.getpid()}; sleep 2; cat")
    (repo_dir / ".gitattributes").write_text("*.x filter=interrupt\n")
    (repo_dir / "data.x").write_text("x\n")
    before = repo_state(repo_dir)
    files_before = git_dir_files(repo_dir)
    with pytest.raises(KeyboardInterrupt):
        snapshot_tree(pygit2.Repository(str(repo_dir)), BIG, os.environ)
    assert repo_state(repo_dir) == before
    assert git_dir_files(repo_dir) == files_before

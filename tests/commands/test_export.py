"""`git exp export` and `git exp import`: runs with their objects, records and run directories
travel between clones in a tar.gz; damaged and hostile archives are refused whole."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pygit2
import pytest
from conftest import git
from helpers_archive import (
    Member,
    archive_members,
    clone_of,
    extra_member,
    make_remote_and_clone,
    rewrite_archive,
    write_archive,
)
from helpers_e2e import (
    assert_one_error_line,
    fsck,
    git_exp,
    invoke_main,
    repo_state,
    run_core,
    run_refs,
    user_env,
)

from gitexp.commands.export import export_to_file, reachable_objects, runs_to_export
from gitexp.commands.importing import import_runs, read_archive
from gitexp.display import format_size
from gitexp.errors import GitExpError, UsageError
from gitexp.record import update_record
from gitexp.repository import identity

RUN_FILES = ("output.log", "metrics.jsonl", "params.json", "artifacts.jsonl", "artifacts/last.pt")


@pytest.fixture
def clones(tmp_path: Path) -> tuple[Path, Path]:
    """Clone `a` with three runs, and clone `b` made before any run existed."""
    remote, a = make_remote_and_clone(tmp_path)
    b = clone_of(remote, tmp_path / "b")
    (a / "train.py").write_text((a / "train.py").read_text() + "# an uncommitted edit\n")
    for tag in ("first", "second", "third"):
        result, _ = run_core(a, "train.py", tags=[tag])
        assert result.exit_status == 0
    return a, b


def runs_of(clone: Path) -> dict[str, dict[str, Any]]:
    result = git_exp(clone, "log", "--all", "--json")
    assert result.returncode == 0, result.stderr
    return {run["id"]: run for run in json.loads(result.stdout)}


def oldest_two(clone: Path) -> list[str]:
    return sorted(runs_of(clone))[:2]


def export(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = git_exp(clone, "export", *args)
    assert result.returncode == 0, result.stderr
    return result


def without_run_dir(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "run_dir"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_round_trip_into_a_clone_that_never_saw_the_runs(
    clones: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = clones
    archive = tmp_path / "runs.tar.gz"
    wanted = oldest_two(a)
    before = repo_state(b)

    out = export(a, *wanted, "-o", str(archive)).stdout
    assert out.startswith("exported 2 runs (") and out.endswith(f") to {archive}\n")
    result = git_exp(b, "import", str(archive))

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    theirs, ours = runs_of(a), runs_of(b)
    assert sorted(ours) == wanted
    for run_id in wanted:
        assert without_run_dir(ours[run_id]) == without_run_dir(theirs[run_id])
        run_dir = Path(ours[run_id]["run_dir"])
        assert run_dir == b / ".git" / "experiments" / run_id
        for name in RUN_FILES:
            assert sha256(run_dir / name) == sha256(Path(theirs[run_id]["run_dir"]) / name)
        assert (run_dir / "output.log").read_text() == "training done\n"
    unpacked = sum(
        path.stat().st_size
        for run_id in wanted
        for path in (b / ".git" / "experiments" / run_id).rglob("*")
        if path.is_file()
    )
    assert result.stdout == (
        f"imported 2 runs, 0 already present, {format_size(unpacked)} unpacked\n"
    )
    assert {ref: sha for ref, sha in run_refs(b).items()} == {
        ref: sha for ref, sha in run_refs(a).items() if ref.endswith(tuple(wanted))
    }
    show = git_exp(b, "show", wanted[0])
    assert show.returncode == 0 and "first" in show.stdout and "loss" in show.stdout
    diff = git(b, "diff", "main", f"refs/experiments/{wanted[0]}")
    assert "+# an uncommitted edit" in diff
    artifact = git_exp(b, "artifact", wanted[0], "last.pt", "--verify")
    assert artifact.returncode == 0, artifact.stderr
    assert artifact.stdout.strip() == str(b / ".git/experiments" / wanted[0] / "artifacts/last.pt")
    fsck(b)
    assert repo_state(b) == before

    again = git_exp(b, "import", str(archive))
    assert again.returncode == 0, again.stderr
    assert again.stdout == "imported 0 runs, 2 already present, 0 B unpacked\n"
    assert runs_of(b) == ours


def test_import_reports_and_dry_run_writes_nothing(
    clones: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = clones
    archive = tmp_path / "runs.tar.gz"
    export(a, "--all", "-o", str(archive))
    refs_before = git(b, "for-each-ref")
    monkeypatch.chdir(b)

    code, out, err = invoke_main(monkeypatch, "import", "--dry-run", str(archive))
    assert (code, err) == (0, "")
    assert out.startswith("would import 3 runs, 0 already present, ")
    assert out.endswith(" (dry run: nothing changed)\n")
    assert git(b, "for-each-ref") == refs_before
    assert not (b / ".git" / "experiments").exists()

    code, out, err = invoke_main(monkeypatch, "import", "--json", str(archive))
    assert code == 0, err
    report = json.loads(out)
    assert sorted(report["imported"]) == sorted(runs_of(a))
    assert report["present"] == report["conflicts"] == report["warnings"] == []
    assert report["bytes_unpacked"] > 0
    every_run = list(run_refs(a))
    assert report["objects"] == len(git(a, "rev-list", "--objects", *every_run).splitlines())


def test_records_of_runs_already_here_are_merged_never_replaced(
    clones: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = clones
    run = oldest_two(a)[0]
    export(a, run, "-o", str(tmp_path / "one.tar.gz"))
    assert git_exp(b, "import", str(tmp_path / "one.tar.gz")).returncode == 0
    assert git_exp(b, "tag", run, "from-b").returncode == 0
    assert git_exp(a, "tag", run, "from-a").returncode == 0
    export(a, run, "-o", str(tmp_path / "two.tar.gz"))

    result = git_exp(b, "import", str(tmp_path / "two.tar.gz"))

    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(", 1 record of runs here updated\n")
    record = runs_of(b)[run]
    assert record["tags"] == ["first", "from-b", "from-a"]
    assert record["run_dir"] == str(b / ".git" / "experiments" / run)


def test_importing_a_run_collected_here_brings_it_back(
    clones: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = clones
    assert git_exp(a, "push").returncode == 0  # shared: gc keeps its record, marked
    run = oldest_two(a)[0]
    export(a, run, "-o", str(tmp_path / "one.tar.gz"))
    assert git_exp(a, "rm", run).returncode == 0
    assert git_exp(a, "gc").returncode == 0
    assert runs_of(a).get(run) is None

    result = git_exp(a, "import", str(tmp_path / "one.tar.gz"))

    assert result.returncode == 0, result.stderr
    record = runs_of(a)[run]
    assert record["deleted"] is None  # as a restore: shown, and safe from the next gc
    assert run in git_exp(a, "log").stdout
    assert (a / ".git" / "experiments" / run / "output.log").is_file()
    assert json.loads(git_exp(a, "gc", "--json").stdout)["runs_removed"] == 0


def test_a_run_id_taken_here_by_another_snapshot_is_reported_not_overwritten(
    clones: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = clones
    run = oldest_two(a)[0]
    export(a, run, "-o", str(tmp_path / "runs.tar.gz"))
    head = git(b, "rev-parse", "HEAD").strip()
    git(b, "update-ref", f"refs/experiments/{run}", head)

    result = git_exp(b, "import", str(tmp_path / "runs.tar.gz"))

    assert result.returncode == 0
    assert result.stderr == f"warning: {run} exists here with another snapshot; kept yours\n"
    assert result.stdout.startswith("imported 0 runs, 0 already present")
    assert run_refs(b) == {f"refs/experiments/{run}": head}
    assert not (b / ".git" / "experiments" / run).exists()


def test_run_dirs_go_under_this_clones_logdir(clones: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = clones
    export(a, "--all", "-o", str(tmp_path / "runs.tar.gz"))
    shared = tmp_path / "shared-logs"
    result = git_exp(
        b, "import", str(tmp_path / "runs.tar.gz"), env=user_env({"GITEXP_LOGDIR": str(shared)})
    )
    assert result.returncode == 0, result.stderr
    for run_id, record in runs_of(b).items():
        assert record["run_dir"] == str(shared / run_id)
        assert (shared / run_id / "metrics.jsonl").is_file()
    assert [p.name for p in shared.iterdir()] == ["train"]  # no staging directory left


# --- selecting and writing -----------------------------------------------------------------------


def test_selection_all_where_and_nothing(clones: tuple[Path, Path]) -> None:
    a, _ = clones
    repo = pygit2.Repository(str(a))
    ids = sorted(runs_of(a))
    assert git_exp(a, "rm", ids[2]).returncode == 0

    assert [run.id for run in runs_to_export(repo, [], all_runs=True)] == ids
    assert [run.id for run in runs_to_export(repo, [], where="tags == second")] == [ids[1]]
    assert [run.id for run in runs_to_export(repo, [], where="status == succeeded")] == ids[:2]
    assert [run.id for run in runs_to_export(repo, [ids[2], ids[2][-4:]])] == [ids[2]]
    with pytest.raises(UsageError, match=r"name the runs to export \(RUN...\), or use --all"):
        runs_to_export(repo, [])
    with pytest.raises(GitExpError, match="no run matches: nothing to export"):
        runs_to_export(repo, [], where="status == failed")


def test_existing_file_is_kept_unless_force(
    clones: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = clones
    target = tmp_path / "runs.tar.gz"
    target.write_bytes(b"precious")
    monkeypatch.chdir(a)
    code, out, err = invoke_main(monkeypatch, "export", "@", "-o", str(target))
    assert (code, out) == (1, "")
    assert_one_error_line(err, f"{target} exists already (use --force to replace it)")
    assert target.read_bytes() == b"precious"
    code, out, err = invoke_main(monkeypatch, "export", "@", "-o", str(target), "--force")
    assert code == 0, err
    assert tarfile.is_tarfile(target)
    assert sorted(p.name for p in tmp_path.iterdir() if "runs.tar.gz" in p.name) == [target.name]


def test_export_to_stdout_and_json(clones: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = clones
    piped = subprocess.run(
        ["git", "exp", "export", "@", "-o", "-"], cwd=a, env=user_env(), capture_output=True
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr.decode().startswith("exported 1 run (")
    (tmp_path / "piped.tar.gz").write_bytes(piped.stdout)
    assert git_exp(b, "import", str(tmp_path / "piped.tar.gz")).returncode == 0
    assert list(runs_of(b)) == [sorted(runs_of(a))[-1]]

    both = git_exp(a, "export", "@", "-o", "-", "--json")
    assert both.returncode == 2
    assert_one_error_line(both.stderr, "--json cannot go with -o - (stdout carries the archive)")
    report = json.loads(export(a, "--all", "-o", str(tmp_path / "all.tar.gz"), "--json").stdout)
    assert report["archive_bytes"] == (tmp_path / "all.tar.gz").stat().st_size
    assert [run["files"] for run in report["runs"]] == [len(RUN_FILES)] * 3


def test_missing_run_dirs_and_symlinks_are_left_out_with_a_warning(
    clones: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = clones
    first, second = oldest_two(a)
    records = runs_of(a)
    gone = Path(records[first]["run_dir"])
    for path in sorted(gone.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    gone.rmdir()
    (Path(records[second]["run_dir"]) / "secrets").symlink_to("/etc/passwd")

    result = export(a, first, second, "-o", str(tmp_path / "runs.tar.gz"))

    assert result.stderr.splitlines() == [
        f"warning: run directory of {first} is not here ({gone}): exported without it",
        f"warning: {second}: secrets is a symlink: left out",
    ]
    assert git_exp(b, "import", str(tmp_path / "runs.tar.gz")).returncode == 0
    imported = runs_of(b)
    assert imported[first]["run_dir"] == str(gone)  # nothing unpacked: the record is as it was
    assert not (b / ".git" / "experiments" / first).exists()
    assert not (Path(imported[second]["run_dir"]) / "secrets").exists()


def test_reachable_objects_are_git_rev_list_objects(clones: tuple[Path, Path]) -> None:
    a, _ = clones
    repo = pygit2.Repository(str(a))
    commits = [run.commit for run in runs_to_export(repo, [], all_runs=True)]
    found = {str(oid) for oid in reachable_objects(repo, commits, [])}
    expected = {line.split()[0] for line in git(a, "rev-list", "--objects", *commits).splitlines()}
    assert found == expected


# --- damaged and hostile archives -----------------------------------------------------------------


@pytest.fixture
def archive(clones: tuple[Path, Path], tmp_path: Path) -> Path:
    a, _ = clones
    export(a, *oldest_two(a), "-o", str(tmp_path / "runs.tar.gz"))
    return tmp_path / "runs.tar.gz"


def refused(b: Path, archive: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Import `archive` into `b`: it must fail with one line and change nothing at all."""
    before = (git(b, "for-each-ref"), git(b, "count-objects", "-v"), repo_state(b))
    monkeypatch.chdir(b)
    code, out, err = invoke_main(monkeypatch, "import", str(archive))
    assert (code, out) == (1, "")
    message = assert_one_error_line(err)
    assert (git(b, "for-each-ref"), git(b, "count-objects", "-v"), repo_state(b)) == before
    assert not (b / ".git" / "experiments").exists()
    return message


def test_a_modified_object_is_refused(
    clones: tuple[Path, Path], archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = clones
    blob = next(
        member.name
        for member, data in archive_members(archive)
        if data is not None and data.startswith(b"blob ") and b"gitexp.log" in data
    )

    def tamper(members: list[Member]) -> list[Member]:
        return [(m, d.replace(b"loss", b"LOSS") if m.name == blob and d else d) for m, d in members]

    bad = rewrite_archive(archive, archive.with_name("bad.tar.gz"), tamper)
    assert refused(b, bad, monkeypatch) == (
        f"refusing bad.tar.gz: object {blob.split('/')[1]} does not match its hash "
        "(the archive is damaged or was altered)"
    )


def test_a_missing_object_is_refused_before_any_ref_is_made(
    clones: tuple[Path, Path], archive: Path
) -> None:
    _, b = clones
    tree = next(
        member.name
        for member, data in archive_members(archive)
        if data is not None and data.startswith(b"tree ")
    )
    bad = rewrite_archive(
        archive, archive.with_name("short.tar.gz"), lambda ms: [m for m in ms if m[0].name != tree]
    )
    repo = pygit2.Repository(str(b))
    with pytest.raises(GitExpError, match=f"object {tree.split('/')[1]} \\(needed by"):
        import_runs(repo, bad, env_logdir=None, environ={})
    assert run_refs(b) == {}
    assert git(b, "rev-parse", "-q", "--verify", "refs/notes/experiments", check=False) == ""


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (extra_member("../escaped.txt"), "leaves the directory it is unpacked in ('..')"),
        (extra_member("/tmp/absolute.txt"), "is an absolute path"),
        (
            extra_member("rundirs/{run}/../../../../escaped.txt"),
            "leaves the directory it is unpacked in ('..')",
        ),
        (
            extra_member("rundirs/{run}/link", type=tarfile.SYMTYPE, linkname="/etc/passwd"),
            "is a link (to '/etc/passwd')",
        ),
        (
            extra_member("rundirs/{run}/hard", type=tarfile.LNKTYPE, linkname="../../etc/passwd"),
            "is a link (to '../../etc/passwd')",
        ),
        (extra_member("rundirs/{run}/fifo", type=tarfile.FIFOTYPE), "is a device, fifo or other"),
        (extra_member("hooks/pre-push"), "is not part of a gitexp export"),
        (extra_member("manifest.json", b"{}"), "member 'manifest.json' appears twice"),
        (extra_member("rundirs/other/20260101.001.abcd/x"), "a run not in its manifest"),
    ],
    ids=[
        "dotdot",
        "absolute",
        "deep-dotdot",
        "symlink",
        "hardlink",
        "fifo",
        "unknown",
        "duplicate",
        "stranger",
    ],
)
def test_hostile_members_are_refused(
    clones: tuple[Path, Path],
    archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    member: Member,
    reason: str,
) -> None:
    a, b = clones
    info, data = member
    info.name = info.name.format(run=oldest_two(a)[0])
    bad = rewrite_archive(archive, archive.with_name("evil.tar.gz"), lambda ms: [*ms, (info, data)])
    message = refused(b, bad, monkeypatch)
    assert message.startswith("refusing evil.tar.gz: ")
    assert reason in message
    assert not (tmp_path / "escaped.txt").exists()


def test_not_an_archive_and_a_foreign_tar_are_refused(
    clones: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = clones
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert refused(b, text, monkeypatch).startswith(f"cannot read {text}: ")
    foreign = write_archive(tmp_path / "foreign.tar.gz", [extra_member("manifest.json", b"[]")])
    assert refused(b, foreign, monkeypatch) == (
        "refusing foreign.tar.gz: it is not a gitexp export (no valid manifest.json)"
    )
    assert refused(b, tmp_path / "absent.tar.gz", monkeypatch) == (
        f"no such file: {tmp_path / 'absent.tar.gz'}"
    )


def test_a_truncated_archive_is_refused(
    clones: tuple[Path, Path], archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, b = clones
    cut = archive.with_name("cut.tar.gz")
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert refused(b, cut, monkeypatch).startswith(f"cannot read {cut}: ")


def test_a_manifest_record_of_another_commit_is_refused(archive: Path, tmp_path: Path) -> None:
    def swap(members: list[Member]) -> list[Member]:
        changed = []
        for member, data in members:
            if member.name == "manifest.json" and data is not None:
                manifest = json.loads(data)
                manifest["runs"][0]["record"]["commit"] = manifest["runs"][1]["commit"]
                data = json.dumps(manifest).encode()
            changed.append((member, data))
        return changed

    bad = rewrite_archive(archive, tmp_path / "swapped.tar.gz", swap)
    with pytest.raises(GitExpError, match=r"in its manifest\.json is of another run"):
        read_archive(bad, tmp_path)


def test_export_to_file_never_leaves_a_partial_file(
    clones: tuple[Path, Path], tmp_path: Path
) -> None:
    a, _ = clones
    repo = pygit2.Repository(str(a))
    runs = runs_to_export(repo, [], all_runs=True)
    with pytest.raises(GitExpError, match="is a directory"):
        export_to_file(repo, runs, tmp_path, force=True)
    update_record(repo, runs[0].commit, lambda r: r.update(run_dir=None), identity(repo, {}))
    report = export_to_file(repo, runs_to_export(repo, [], all_runs=True), tmp_path / "x.tar.gz")
    assert report.warnings == []  # its directory is <logdir>/<name>/<id>, whatever the record says
    assert report.runs[0].files > 0
    assert [
        p.name for p in tmp_path.iterdir() if p.name.endswith("x.tar.gz") or ".gitexp-" in p.name
    ] == ["x.tar.gz"]

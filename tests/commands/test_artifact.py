"""Artifacts: `gitexp.artifact` in the program, the record's `artifacts`, `git exp artifact`."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import click
import pygit2
import pytest
from conftest import git
from helpers_e2e import git_exp, invoke_main, note, repo_state, run_core, write_program
from helpers_lifecycle import fake_run, sha256_of

import gitexp
from gitexp import child, rundir
from gitexp.cli.showtext import render_run
from gitexp.commands.artifact import find_artifact, list_artifacts
from gitexp.commands.show import show_run
from gitexp.errors import GitExpError

TRAIN = """
import os, gitexp
os.makedirs("ckpt", exist_ok=True)
for epoch in range(3):
    with open("ckpt/model.pt", "wb") as f:
        f.write(bytes([epoch]) * (1000 + epoch))
    gitexp.artifact("ckpt/model.pt", name="last.pt")
    if epoch == 1:
        print("best", gitexp.artifact("ckpt/model.pt", name="best.pt"))
with open("ckpt/model.pt", "wb") as f:
    f.write(b"overwritten after the last call")
"""


@pytest.fixture
def child_state() -> Iterator[None]:
    child._reset_for_tests()
    yield
    child._reset_for_tests()


@pytest.fixture
def run_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child_state: None) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    monkeypatch.setenv("GITEXP_RUN", "train/20260101.001.abcd")
    monkeypatch.setenv("GITEXP_RUN_DIR", str(run_dir))
    monkeypatch.setenv("GITEXP_METRICS", str(run_dir / "metrics.jsonl"))
    monkeypatch.chdir(tmp_path)
    return run_dir


@pytest.fixture
def trained(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> dict[str, object]:
    """One finished run of TRAIN; its record."""
    write_program(repo_dir / "train.py", TRAIN)
    result, _ = run_core(repo_dir, "train.py")
    capfd.readouterr()
    assert result.exit_status == 0
    return result.record


# --- the child side --------------------------------------------------------------------------


def test_outside_a_run_it_is_a_no_op(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child_state: None
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"weights")
    assert gitexp.artifact("model.pt") is None
    assert gitexp.artifact("does-not-exist.pt", name="x") is None
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("model.pt", ""),
        ("model.pt", "."),
        ("model.pt", ".."),
        ("model.pt", "../escape.pt"),
        ("model.pt", "/etc/passwd"),
        ("model.pt", "a/b"),
        ("model.pt", "nul\0name"),
        ("", None),
        ("ckpt/", None),
        ("..", None),
        ("bad\0path", None),
    ],
)
def test_names_that_leave_the_run_directory_are_refused(
    run_env: Path, path: str, name: str | None
) -> None:
    (run_env.parent / "model.pt").write_bytes(b"weights")
    with pytest.raises(ValueError, match=r"^gitexp\.artifact: invalid "):
        gitexp.artifact(path, name=name)
    assert not (run_env / "artifacts.jsonl").exists()
    assert not (run_env.parent / "escape.pt").exists()


def test_bad_names_are_refused_outside_a_run_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child_state: None
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        gitexp.artifact("model.pt", name="../x")


def test_the_file_is_copied_hashed_and_listed(run_env: Path) -> None:
    source = run_env.parent / "model.pt"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # more than one copy chunk
    expected = sha256_of(source)

    stored = gitexp.artifact("model.pt")

    assert stored == run_env / "artifacts" / "model.pt"
    assert stored.read_bytes() == source.read_bytes()
    assert not os.path.samefile(stored, source)
    source.write_bytes(b"the program overwrites its checkpoint")
    assert sha256_of(stored) == expected
    (line,) = (run_env / "artifacts.jsonl").read_text().splitlines()
    entry = json.loads(line)
    assert entry.pop("logged_at").startswith(("20", "19"))
    assert entry == {
        "name": "model.pt",
        "path": "artifacts/model.pt",
        "size": 3 * 1024 * 1024 + 17,
        "sha256": expected,
        "source": "model.pt",
    }
    assert sorted(os.listdir(run_env / "artifacts")) == ["model.pt"]  # no temporary left


def test_the_same_name_again_replaces_it(run_env: Path) -> None:
    source = run_env.parent / "model.pt"
    source.write_bytes(b"epoch 1")
    gitexp.artifact(source, name="best.pt")
    (run_env.parent / "other.bin").write_bytes(b"other")
    gitexp.artifact("other.bin")
    source.write_bytes(b"epoch 2, better")
    gitexp.artifact(source, name="best.pt")

    assert len((run_env / "artifacts.jsonl").read_text().splitlines()) == 3
    entries, bad = rundir.read_artifacts(run_env)
    assert bad == 0
    assert [(e["name"], e["size"]) for e in entries] == [("best.pt", 15), ("other.bin", 5)]
    assert entries[0]["source"] == str(source)
    assert (run_env / "artifacts" / "best.pt").read_bytes() == b"epoch 2, better"


def test_a_missing_source_raises_and_records_nothing(run_env: Path) -> None:
    with pytest.raises(FileNotFoundError):
        gitexp.artifact("nope.pt")
    assert not (run_env / "artifacts.jsonl").exists()
    assert os.listdir(run_env / "artifacts") == []


def test_lines_written_by_other_programs(tmp_path: Path) -> None:
    lines = [
        b'{"name": "a.bin", "path": "artifacts/a.bin", "size": 1, "sha256": "00"}',
        b'{"name": "b.bin", "path": "out/b.bin", "extra": "ignored"}',
        b'{"name": "c.bin", "path": "../../etc/passwd"}',
        b'{"name": "d.bin", "path": "/etc/passwd"}',
        b'{"name": "../e", "path": "artifacts/e"}',
        b'{"name": "f.bin"}',
        b"not json",
        b"",
        b'{"name": "a.bin", "path": "artifacts/a.bin", "size": 2, "sha256": "11"}',
    ]
    (tmp_path / "artifacts.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    entries, bad = rundir.read_artifacts(tmp_path)

    assert bad == 5
    assert entries == [
        {
            "name": "a.bin",
            "path": "artifacts/a.bin",
            "size": 2,
            "sha256": "11",
            "source": None,
            "logged_at": None,
        },
        {
            "name": "b.bin",
            "path": "out/b.bin",
            "size": None,
            "sha256": None,
            "source": None,
            "logged_at": None,
        },
    ]


# --- the record and the commands -------------------------------------------------------------


def test_the_record_lists_the_artifacts(repo_dir: Path, trained: dict[str, object]) -> None:
    record = note(repo_dir, str(trained["commit"]))  # read back by git
    assert record == trained
    run_dir = Path(str(record["run_dir"]))
    artifacts = record["artifacts"]
    assert isinstance(artifacts, list)
    assert [(a["name"], a["size"], a["source"]) for a in artifacts] == [
        ("last.pt", 1002, "ckpt/model.pt"),
        ("best.pt", 1001, "ckpt/model.pt"),
    ]
    for entry in artifacts:
        stored = run_dir / entry["path"]
        assert sha256_of(stored) == entry["sha256"]
    assert (run_dir / "artifacts" / "best.pt").read_bytes() == b"\x01" * 1001
    assert (run_dir / "artifacts" / "last.pt").read_bytes() == b"\x02" * 1002
    assert "problems" not in record


def test_show_lists_artifacts(repo_dir: Path, trained: dict[str, object]) -> None:
    run = show_run(pygit2.Repository(str(repo_dir)), "@")
    lines = click.unstyle("\n".join(render_run(run))).splitlines()
    start = lines.index("artifacts")
    sha = {a["name"]: a["sha256"] for a in trained["artifacts"]}  # type: ignore[attr-defined]
    assert lines[start + 1 : start + 3] == [
        f"  last.pt      1002 B  sha256 {sha['last.pt'][:12]}",
        f"  best.pt      1001 B  sha256 {sha['best.pt'][:12]}",
    ]


def test_find_and_list(repo_dir: Path, trained: dict[str, object]) -> None:
    repo = pygit2.Repository(str(repo_dir))
    run_dir = Path(str(trained["run_dir"]))

    run, found = find_artifact(repo, "@", "best.pt", verify=True)

    assert run.id == trained["id"]
    assert found.file == run_dir / "artifacts" / "best.pt"
    assert (found.state, found.verified) == ("ok", True)
    _, listed = list_artifacts(repo, "@")
    assert [(a.name, a.state, a.verified) for a in listed] == [
        ("last.pt", "ok", False),
        ("best.pt", "ok", False),
    ]

    with pytest.raises(GitExpError) as unknown:
        find_artifact(repo, "@", "worst.pt")
    assert str(unknown.value) == (
        f"run {trained['id']} has no artifact 'worst.pt' (it has: last.pt, best.pt)"
    )


def test_changed_and_missing_files_are_reported(repo_dir: Path, trained: dict[str, object]) -> None:
    repo = pygit2.Repository(str(repo_dir))
    stored = Path(str(trained["run_dir"])) / "artifacts" / "best.pt"
    stored.write_bytes(b"\x09" * 1001)  # same size: only --verify notices

    assert find_artifact(repo, "@", "best.pt")[1].state == "ok"
    with pytest.raises(GitExpError) as changed:
        find_artifact(repo, "@", "best.pt", verify=True)
    digest = sha256_of(stored)[:12]
    artifacts: list[dict[str, str]] = trained["artifacts"]  # type: ignore[assignment]
    recorded = next(a for a in artifacts if a["name"] == "best.pt")
    assert str(changed.value) == (
        f"artifact 'best.pt' of {trained['id']} changed since it was recorded: {stored} has "
        f"sha256 {digest}, not the {recorded['sha256'][:12]} recorded"
    )

    stored.write_bytes(b"short")
    with pytest.raises(GitExpError, match=r"has 5 bytes, not the 1001 recorded$"):
        find_artifact(repo, "@", "best.pt")
    stored.unlink()
    with pytest.raises(GitExpError) as missing:
        find_artifact(repo, "@", "best.pt")
    assert str(missing.value) == (
        f"artifact 'best.pt' of {trained['id']} is missing: {stored} does not exist"
    )


def test_a_record_cannot_point_outside_its_run_directory(repo_dir: Path, tmp_path: Path) -> None:
    repo = pygit2.Repository(str(repo_dir))
    secret = tmp_path / "secret.txt"
    secret.write_text("not an artifact")
    run_dir = tmp_path / "logdir" / "train" / "20260101.001.aaaa"
    entry = {"name": "evil", "path": "../../../secret.txt", "size": 15, "sha256": None}
    fake_run(repo, "train", "20260101.001.aaaa", run_dir, artifacts=[entry])

    with pytest.raises(GitExpError) as caught:
        find_artifact(repo, "aaaa", "evil")
    assert str(caught.value) == (
        "artifact 'evil' of train/20260101.001.aaaa has a path outside its run directory: "
        "'../../../secret.txt'"
    )


def test_a_running_run_lists_what_it_recorded_so_far(repo_dir: Path, tmp_path: Path) -> None:
    repo = pygit2.Repository(str(repo_dir))
    run_dir = tmp_path / "logdir" / "train" / "20260101.001.bbbb"
    line = {"name": "step100.pt", "path": "artifacts/step100.pt", "size": 3, "sha256": "x"}
    fake_run(
        repo,
        "train",
        "20260101.001.bbbb",
        run_dir,
        files={"artifacts/step100.pt": b"abc", "artifacts.jsonl": json.dumps(line).encode()},
        status="running",
        host={"hostname": "another-machine", "pid": 1},
    )

    _, listed = list_artifacts(repo, "bbbb", env_logdir=str(tmp_path / "logdir"))

    assert [(a.name, a.state, a.file) for a in listed] == [
        ("step100.pt", "ok", run_dir / "artifacts" / "step100.pt")
    ]


def test_cli(repo_dir: Path, trained: dict[str, object], monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = Path(str(trained["run_dir"]))
    run_id = trained["id"]
    before = repo_state(repo_dir)

    code, out, err = invoke_main(monkeypatch, "artifact", "@", "best.pt")
    assert (code, out, err) == (0, f"{run_dir}/artifacts/best.pt\n", "")

    code, out, err = invoke_main(monkeypatch, "artifact", "@", "best.pt", "--json", "--verify")
    assert code == 0, err
    assert json.loads(out)["file"] == f"{run_dir}/artifacts/best.pt"
    assert json.loads(out)["verified"] is True

    code, out, err = invoke_main(monkeypatch, "artifact", "@")
    assert code == 0, err
    assert [line.split()[0] for line in out.splitlines()] == ["last.pt", "best.pt"]
    assert out.splitlines()[1].endswith(f"  {run_dir}/artifacts/best.pt")

    code, out, err = invoke_main(monkeypatch, "artifact", "@", "nope")
    assert (code, out) == (1, "")
    assert err == f"error: run {run_id} has no artifact 'nope' (it has: last.pt, best.pt)\n"

    (run_dir / "artifacts" / "last.pt").unlink()
    code, out, err = invoke_main(monkeypatch, "artifact", "@")
    assert code == 1
    assert out.splitlines()[0].endswith("[missing]")
    assert err == (
        f"error: 1 of 2 artifacts of {run_id} are not as recorded: 'last.pt' is missing: "
        f"{run_dir}/artifacts/last.pt does not exist\n"
    )
    code, out, _ = invoke_main(monkeypatch, "artifact", "@", "--json")
    assert code == 1
    assert [(a["name"], a["state"]) for a in json.loads(out)] == [
        ("last.pt", "missing"),
        ("best.pt", "ok"),
    ]
    assert repo_state(repo_dir) == before


def test_a_run_without_artifacts(repo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = pygit2.Repository(str(repo_dir))
    fake_run(repo, "train", "20260101.001.cccc")
    code, out, err = invoke_main(monkeypatch, "artifact", "cccc")
    assert (code, out, err) == (0, "", "train/20260101.001.cccc has no artifacts\n")
    code, out, err = invoke_main(monkeypatch, "artifact", "cccc", "--json")
    assert (code, out, err) == (0, "[]\n", "")
    code, out, err = invoke_main(monkeypatch, "artifact", "cccc", "x")
    assert (code, err) == (1, "error: run train/20260101.001.cccc has no artifacts\n")


def test_end_to_end_with_a_shell_program(repo_dir: Path) -> None:
    """Any language can record an artifact: copy the file, append the JSON line."""
    write_program(
        repo_dir / "train.sh",
        """
        #!/bin/sh
        mkdir -p "$GITEXP_RUN_DIR/artifacts"
        printf 'weights' > "$GITEXP_RUN_DIR/artifacts/model.bin"
        printf '{"name": "model.bin", "path": "artifacts/model.bin", "size": 7}\\n' \\
            >> "$GITEXP_RUN_DIR/artifacts.jsonl"
        """,
        executable=True,
    )
    ran = git_exp(repo_dir, "run", "./train.sh")
    assert ran.returncode == 0, ran.stderr

    printed = git_exp(repo_dir, "artifact", "@", "model.bin")

    assert printed.returncode == 0, printed.stderr
    assert Path(printed.stdout.strip()).read_bytes() == b"weights"
    shown = git_exp(repo_dir, "show", "@").stdout
    assert "  model.bin         7 B  sha256 -" in shown.splitlines()
    unknown = git_exp(repo_dir, "artifact", "@", "other")
    assert unknown.returncode == 1
    assert unknown.stderr.endswith("has no artifact 'other' (it has: model.bin)\n")
    assert git(repo_dir, "status", "--porcelain") == "?? train.sh\n"

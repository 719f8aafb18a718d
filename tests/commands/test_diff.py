"""`git exp diff`: the code part agrees with real `git diff`, then params, metrics, environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pygit2
import pytest
from conftest import git
from helpers_diff import git_bytes, invoke, on_a_terminal, snapshot_run
from helpers_e2e import add_all_tree, git_exp, repo_state, run_core, user_env, write_program

from gitexp.commands.diff import (
    CodeFormat,
    code_changes,
    code_text,
    diff_environment,
    diff_metrics,
    diff_runs,
    git_colours,
)
from gitexp.errors import GitExpError
from gitexp.revisions import UnknownRevisionError

A_ID, B_ID = "train/20260101.001.aaaa", "train/20260101.002.bbbb"
A_RECORD = {
    "params": {"lr": 0.1, "epochs": 10, "momentum": 0.9, "flag": True},
    "metrics": {
        "loss": {"last": 0.5, "min": 0.4, "max": 2.0, "count": 10, "step": 9},
        "val_acc": {"last": 0.8, "min": 0.5, "max": 0.85, "count": 10, "step": 9},
        "old_metric": {"last": 1, "min": 1, "max": 1, "count": 1, "step": 0},
    },
    "python": {"executable": "/usr/bin/python3", "version": "3.10.12", "implementation": "CPython"},
    "packages": {"torch": "2.1.0", "numpy": "1.26.0"},
    "env": {"CUDA_VISIBLE_DEVICES": "0"},
    "gpus": [{"index": 0, "name": "A100", "uuid": "GPU-1", "memory_total_mib": 81920}],
    "host": {"hostname": "box1", "platform": "Linux-6.1", "cpu_count": 8, "memory_bytes": 64},
}
B_RECORD = {
    "params": {"lr": 0.01, "epochs": 10, "dropout": 0.5, "flag": 1},
    "metrics": {
        "loss": {"last": 0.3, "min": 0.3, "max": 2.0, "count": 10, "step": 9},
        "val_acc": {"last": 0.9, "min": 0.5, "max": 0.9, "count": 10, "step": 9},
        "new_metric": {"last": 7, "min": 7, "max": 7, "count": 1, "step": 0},
    },
    "python": {"executable": "/usr/bin/python3", "version": "3.11.4", "implementation": "CPython"},
    "packages": {"torch": "2.2.0", "jax": "0.4.1"},
    "env": {"CUDA_VISIBLE_DEVICES": "0"},
    "gpus": [{"index": 0, "name": "A100", "uuid": "GPU-2", "memory_total_mib": 81920}],
    "host": {"hostname": "box2", "platform": "Linux-6.1", "cpu_count": 8, "memory_bytes": 64},
}


# Two versions that git's myers and histogram algorithms diff differently.
ALGO_A = "b\n{\na\nc\na\nx\nx\nx\n}\nx\nb\na\n"
ALGO_B = "x\na\nx\nx\n{\na\n}\nx\nc\n}\nb\n{\n"


def write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def first_version(repo: Path) -> None:
    write(
        repo / "src/model.py", "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(30))
    )
    write(repo / "src/pkg/long_module_name.py", "".join(f"line {i}\n" for i in range(40)))
    write(repo / "gone.txt", "bye\n")
    write(repo / "run.sh", "#!/bin/sh\necho hi\n")
    write(repo / "data.bin", bytes(range(256)) * 4)
    write(repo / "noeol", "a\nb")
    write(repo / "big.txt", "".join(f"row {i}\n" for i in range(300)))
    write(repo / "conf/exact.cfg", "same content\n")
    write(repo / "algo.txt", ALGO_A)
    write(repo / "notes.tc", "first\n")
    write(repo / "na\u00efve.txt", "first\n")
    for i, lines in enumerate((3, 8)):
        # Mostly a last line without a newline, which git's similarity ignores (libgit2's not).
        write(repo / f"o{i}.txt", "".join(f"line number {j}\n" for j in range(lines)) + "z" * 63)


def second_version(repo: Path) -> None:
    model = (repo / "src/model.py").read_text()
    model = model.replace("return x + 5", "return x * 5").replace(
        "return x + 20", "return x - 20\n    # changed"
    )
    write(repo / "src/model.py", model)
    (repo / "gone.txt").unlink()
    renamed = (repo / "src/pkg/long_module_name.py").read_text().replace("line 3\n", "line 3!\n")
    (repo / "src/pkg/long_module_name.py").unlink()
    write(repo / "src/pkg/renamed_module.py", renamed)
    (repo / "run.sh").chmod(0o755)
    write(repo / "data.bin", bytes(range(256)) * 5)
    write(repo / "new.txt", "new file\n")
    write(repo / "empty_new", "")
    os.symlink("new.txt", repo / "link")
    write(repo / "noeol", "a\nc")
    write(repo / "caf\u00e9 \u00e0.txt", "unicode name\n")
    write(repo / "big.txt", "".join(f"row {i * 7}\n" for i in range(280)))
    (repo / "conf/exact.cfg").rename(repo / "exact.cfg")
    write(repo / "algo.txt", ALGO_B)
    write(repo / "notes.tc", "second\n")
    write(repo / "na\u00efve.txt", "second\n")
    for i in range(2):
        text = (repo / f"o{i}.txt").read_text().replace("line number 0", "LINE NUMBER 0")
        (repo / f"o{i}.txt").unlink()
        write(repo / f"n{i}.txt", text)


@pytest.fixture
def two_runs(repo_dir: Path) -> tuple[str, str]:
    """Runs A and B of the same repository, the working tree changed in every usual way."""
    first_version(repo_dir)
    _, a = snapshot_run(repo_dir, "20260101.001.aaaa", A_RECORD)
    second_version(repo_dir)
    _, b = snapshot_run(
        repo_dir, "20260101.002.bbbb", B_RECORD, started_at="2026-01-02T10:00:00+00:00"
    )
    return a, b


def repo() -> pygit2.Repository:
    return pygit2.Repository(".")


def git_diff(repo_dir: Path, *args: str) -> bytes:
    return git_bytes(repo_dir, "diff", *args)


def code_bytes(
    a: str,
    b: str | None,
    paths: tuple[str, ...] = (),
    code_format: CodeFormat = "patch",
    stat_width: int | None = None,
) -> bytes:
    """The code part of `git exp diff A B -- PATHS` as the core function returns it."""
    result = diff_runs(repo(), a, b, os.environ)
    environ = dict(os.environ)
    cwd = os.getcwd()
    shown = code_text(
        repo(), result, paths, environ, cwd=cwd, code_format=code_format, stat_width=stat_width
    )
    return shown.output


def test_patches_agree_with_git_diff(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    expected = git_diff(repo_dir, a, b)
    assert b"rename from src/pkg/long_module_name.py" in expected  # the cases are all there
    assert b"old mode 100644\nnew mode 100755" in expected
    assert b"Binary files a/data.bin and b/data.bin differ" in expected
    assert b"similarity index 100%\nrename from conf/exact.cfg" in expected
    assert b"new file mode 120000" in expected
    assert b"\\ No newline at end of file" in expected
    assert b"new file mode 100644\nindex 0000000..e69de29\n" in expected
    assert b"deleted file mode 100644" in expected
    assert b"rename from o0.txt" not in expected and b"rename from o1.txt" in expected
    assert code_bytes(A_ID, B_ID) == expected
    assert code_bytes(B_ID, A_ID) == git_diff(repo_dir, b, a)


@pytest.mark.parametrize("width", [80, 50, 200])
def test_stat_and_names_agree_with_git(
    repo_dir: Path, two_runs: tuple[str, str], width: int
) -> None:
    a, b = two_runs
    stat = code_bytes(A_ID, B_ID, code_format="stat", stat_width=width)
    assert stat == git_diff(repo_dir, f"--stat={width}", a, b)
    names = code_bytes(A_ID, B_ID, code_format="name-only")
    assert names == git_diff(repo_dir, "--name-only", a, b)


def test_stat_width_follows_columns(
    repo_dir: Path, two_runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    b = two_runs[1]
    monkeypatch.setenv("COLUMNS", "57")
    result = invoke("diff", "main", b, "--stat")
    assert result.stdout_bytes == git_diff(repo_dir, "--stat", "main", b)
    assert result.stdout_bytes != git_diff(repo_dir, "--stat=80", "main", b)


PATHSPECS = [
    ("src",),
    ("src/",),
    ("src/pkg/renamed_module.py",),  # only the new side of a rename: an add, as in git
    ("src/pkg/long_module_name.py",),
    ("*.txt",),
    ("s?c/*",),
    ("su",),
    ("exact.cfg", "conf"),
    (":!src", ":^*.bin"),
    (":(exclude)src", ":(exclude)*.txt"),
    (":(glob)src/**/*.py",),
    (":(glob)*.txt",),  # unlike a plain pattern, `*` stops at `/`
    (":(icase)SRC/MODEL.PY", ":(icase)Data.BIN"),
    (":(literal)*.txt",),
    (":/noeol",),
    ("no-such-path",),
]


@pytest.mark.parametrize("paths", PATHSPECS)
def test_pathspecs_agree_with_git(
    repo_dir: Path, two_runs: tuple[str, str], paths: tuple[str, ...]
) -> None:
    a, b = two_runs
    assert code_bytes(A_ID, B_ID, paths) == git_diff(repo_dir, a, b, "--", *paths)
    expected_stat = git_diff(repo_dir, "--stat=80", a, b, "--", *paths)
    assert code_bytes(A_ID, B_ID, paths, code_format="stat", stat_width=80) == expected_stat


def test_pathspecs_are_relative_to_the_current_directory(
    repo_dir: Path, two_runs: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_runs
    monkeypatch.chdir(repo_dir / "src")
    paths = ("pkg", "../noeol", ":(icase)MODEL.py")
    result = invoke("diff", A_ID, B_ID, "--name-only", "--", *paths)
    assert result.exit_code == 0, result.output
    expected = git(repo_dir / "src", "diff", "--name-only", a, b, "--", *paths)
    assert result.stdout == expected
    assert expected.splitlines() == ["noeol", "src/model.py", "src/pkg/renamed_module.py"]


def test_abbreviations_follow_core_abbrev(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    git(repo_dir, "config", "core.abbrev", "12")
    expected = git_diff(repo_dir, a, b)
    assert re.search(rb"^index [0-9a-f]{12}\.\.[0-9a-f]{12} 100644$", expected, re.MULTILINE)
    assert code_bytes(A_ID, B_ID) == expected


def test_revisions_and_the_working_tree(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    (repo_dir / "src/model.py").write_text("changed after the run\n")
    (repo_dir / "untracked.txt").write_text("not yet added\n")
    (repo_dir / ".gitignore").write_text("*.log\n")
    (repo_dir / "ignored.log").write_text("never shown\n")
    worktree_tree = add_all_tree(repo_dir, repo_dir.parent / "oracle")
    assert code_bytes(A_ID, None) == git_diff(repo_dir, a, worktree_tree)
    assert code_bytes("HEAD", None) == git_diff(repo_dir, "HEAD", worktree_tree)
    assert code_bytes("HEAD", B_ID) == git_diff(repo_dir, "HEAD", b)
    assert code_bytes(a, b) == git_diff(repo_dir, a, b)  # shas are revisions


def use_diff_config(repo_dir: Path) -> None:
    """The user's diff settings: histogram, colour always, raw UTF-8 names, a textconv."""
    git(repo_dir, "config", "diff.algorithm", "histogram")
    git(repo_dir, "config", "color.diff", "always")
    git(repo_dir, "config", "core.quotePath", "false")
    git(repo_dir, "config", "diff.tc.textconv", "sed s/^/converted:/")
    (repo_dir / ".gitattributes").write_text("*.tc diff=tc\n")


SIDES = [
    ("runs", A_ID, B_ID),
    ("run and HEAD", A_ID, "HEAD"),
    ("run and working tree", A_ID, None),
]


@pytest.mark.parametrize(("case", "a_spec", "b_spec"), SIDES, ids=[case for case, *_ in SIDES])
def test_the_users_diff_config_applies(
    repo_dir: Path, two_runs: tuple[str, str], case: str, a_spec: str, b_spec: str | None
) -> None:
    commits = {A_ID: two_runs[0], B_ID: two_runs[1], "HEAD": "HEAD"}
    use_diff_config(repo_dir)
    a = commits[a_spec]
    b = commits[b_spec] if b_spec else add_all_tree(repo_dir, repo_dir.parent / "oracle")
    expected = git_diff(repo_dir, a, b)
    runs = (two_runs[0], two_runs[1] if b_spec else b, "--", "algo.txt")
    myers = git_bytes(repo_dir, "-c", "diff.algorithm=myers", "diff", *runs)
    assert myers != git_diff(repo_dir, *runs)  # the algorithm shows
    assert b"\x1b[31m-converted:first\x1b[m" in expected
    assert "a/na\u00efve.txt".encode() in expected  # not quoted
    result = invoke("diff", a_spec, *([b_spec] if b_spec else []))
    assert result.exit_code == 0, result.output
    if case == "runs":
        assert result.stdout_bytes.startswith(expected + b"\nA: \x1b[")  # a coloured record
    else:
        assert result.stdout_bytes.split(b"\nrecord: ")[0] == expected
    names = invoke("diff", a_spec, *([b_spec] if b_spec else []), "--name-only")
    assert names.stdout_bytes == git_diff(repo_dir, "--name-only", a, b)


def test_cli_matches_git_byte_for_byte_for_revisions(
    repo_dir: Path, two_runs: tuple[str, str]
) -> None:
    a, b = two_runs
    git(repo_dir, "branch", "base", a)
    git(repo_dir, "branch", "tip", b)
    result = invoke("diff", "base", "tip")
    assert result.exit_code == 0
    assert result.stdout_bytes == git_diff(repo_dir, "base", "tip")  # no record part
    result = invoke("diff", "base", "tip", "--stat", "--stat-width", "80")
    assert result.stdout_bytes == git_diff(repo_dir, "--stat=80", "base", "tip")
    use_diff_config(repo_dir)
    for options, paths in (([], []), (["--stat"], []), (["--name-only"], ["*.t?", ":!src"])):
        expected = git_diff(repo_dir, *options, "base", "tip", "--", *paths)
        result = invoke("diff", "base", "tip", *options, "--", *paths)
        assert result.stdout_bytes == expected, options


def test_a_run_wins_over_a_revision_of_the_same_name(
    repo_dir: Path, two_runs: tuple[str, str]
) -> None:
    a, b = two_runs
    git(repo_dir, "branch", "bbbb", a)  # `bbbb` is also the random part of run B
    result = diff_runs(repo(), "bbbb", "HEAD", os.environ)
    assert result.a.kind == "run" and result.a.commit == b
    assert diff_runs(repo(), "refs/heads/bbbb", "HEAD", os.environ).a.commit == a


def test_record_differences(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    result = diff_runs(repo(), A_ID, B_ID, os.environ)
    assert result.params == {
        "changed": {"lr": {"a": 0.1, "b": 0.01}, "flag": {"a": True, "b": 1}},
        "added": {"dropout": 0.5},
        "removed": {"momentum": 0.9},
    }
    assert result.metrics == {
        "loss": {
            "a": {"last": 0.5, "min": 0.4, "max": 2.0},
            "b": {"last": 0.3, "min": 0.3, "max": 2.0},
            "delta": {"last": -0.2, "min": -0.1, "max": 0.0},
        },
        "val_acc": {
            "a": {"last": 0.8, "min": 0.5, "max": 0.85},
            "b": {"last": 0.9, "min": 0.5, "max": 0.9},
            "delta": {"last": 0.1, "min": 0.0, "max": 0.05},
        },
        "old_metric": {"a": {"last": 1, "min": 1, "max": 1}, "b": None, "delta": None},
        "new_metric": {"a": None, "b": {"last": 7, "min": 7, "max": 7}, "delta": None},
    }
    assert result.environment == {
        "python": {"version": {"a": "3.10.12", "b": "3.11.4"}},
        "packages": {
            "changed": {"torch": {"a": "2.1.0", "b": "2.2.0"}},
            "added": {"jax": "0.4.1"},
            "removed": {"numpy": "1.26.0"},
        },
        "env": {"changed": {}, "added": {}, "removed": {}},
        "gpus": None,  # another card of the same model: not a difference
        "host": {"hostname": {"a": "box1", "b": "box2"}},
    }
    assert result.record_differs()


def test_environment_and_metric_edge_cases() -> None:
    gpu = {"index": 0, "name": "A100", "memory_total_mib": 81920, "driver_version": "535"}
    env = diff_environment({"gpus": [gpu]}, {"gpus": [], "python": {"version": "3.12.1"}})
    assert env["gpus"] == {"a": [gpu], "b": []}
    assert env["python"] == {"version": {"a": None, "b": "3.12.1"}}
    metrics = diff_metrics(
        {"m": {"last": None, "min": 1, "max": "x"}}, {"m": {"last": 2, "min": 1.5, "max": 3}}
    )
    assert metrics["m"]["delta"] == {"last": None, "min": 0.5, "max": None}


def test_text_output_of_the_record_part(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    result = invoke("diff", "aaaa", "bbbb", "--no-code")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"A: {A_ID}   B: {B_ID}",
        "params:",
        "  ~ lr: 0.1 → 0.01",
        "  ~ flag: true → 1",
        "  + dropout: 0.5",
        "  - momentum: 0.9",
        "metrics:",
        "  metric      stat     A    B    B−A",
        "  loss        last   0.5  0.3   -0.2",
        "              min    0.4  0.3   -0.1",
        "              max      2    2      0",
        "  val_acc     last   0.8  0.9   +0.1",
        "              min    0.5  0.5      0",
        "              max   0.85  0.9  +0.05",
        "  old_metric  last     1    -      -",
        "  new_metric  last     -    7      -",
        "environment:",
        "  ~ python.version: 3.10.12 → 3.11.4",
        "  ~ host.hostname: box1 → box2",
        "  ~ packages.torch: 2.1.0 → 2.2.0",
        "  + packages.jax: 0.4.1",
        "  - packages.numpy: 1.26.0",
    ]


def test_code_then_record(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    result = invoke("diff", A_ID, B_ID, "--", "noeol")
    patch = git_diff(repo_dir, a, b, "--", "noeol")
    assert result.stdout_bytes.startswith(patch + b"\nA: ")
    result = invoke("diff", A_ID, "HEAD", "--stat")
    assert result.stdout.endswith(
        "\nrecord: B (HEAD) is a git revision, not a run: only the code is compared\n"
    )
    names = invoke("diff", A_ID, B_ID, "--name-only").stdout
    assert names == git(repo_dir, "diff", "--name-only", a, b)  # like git: names only


def test_colour(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    coloured = invoke("diff", A_ID, B_ID, "--color", "--", "noeol").stdout_bytes
    expected = git_diff(repo_dir, "--color=always", a, b, "--", "noeol")
    assert b"\x1b[32m+\x1b[m\x1b[32mc\x1b[m" in expected
    assert coloured.startswith(expected + b"\n")
    assert b"\x1b[33mtrain/20260101.001.aaaa\x1b[0m" in coloured  # the record part too
    git(repo_dir, "config", "color.diff", "always")
    plain = invoke("diff", A_ID, B_ID, "--no-color", "--", "noeol").stdout_bytes
    assert plain.startswith(git_diff(repo_dir, "--no-color", a, b, "--", "noeol") + b"\nA: ")
    assert b"\x1b[" not in plain


def test_colour_is_gits_decision(repo_dir: Path) -> None:
    environ = {**os.environ, "TERM": "xterm"}
    assert git_colours(repo(), environ, stdout_is_tty=True)  # color.ui=auto by default
    assert not git_colours(repo(), environ, stdout_is_tty=False)
    assert not git_colours(repo(), {**environ, "TERM": "dumb"}, stdout_is_tty=True)
    assert git_colours(repo(), {**environ, "GIT_PAGER_IN_USE": "true"}, stdout_is_tty=False)
    git(repo_dir, "config", "color.ui", "never")
    assert not git_colours(repo(), environ, stdout_is_tty=True)
    git(repo_dir, "config", "color.diff", "always")
    assert git_colours(repo(), environ, stdout_is_tty=False)


def test_a_terminal_gets_gits_colours(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    git(repo_dir, "config", "color.diff.new", "blue")
    output = on_a_terminal(repo_dir, ["git", "exp", "diff", a, b], user_env({"TERM": "xterm"}))
    expected = git_diff(repo_dir, "--color=always", a, b)
    assert b"\x1b[34m+\x1b[m\x1b[34mc\x1b[m" in expected
    assert output == expected.replace(b"\n", b"\r\n")  # the terminal's own newlines


def test_json(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    a, b = two_runs
    data = json.loads(invoke("diff", A_ID, B_ID, "--json").stdout)
    assert data["a"] == {
        "spec": A_ID,
        "kind": "run",
        "id": A_ID,
        "commit": a,
        "tree": git(repo_dir, "rev-parse", f"{a}^{{tree}}").strip(),
    }
    files = {entry["new_path"] or entry["old_path"]: entry for entry in data["code"]}
    assert list(files) == git(repo_dir, "diff", "--name-only", "-z", a, b).split("\0")[:-1]
    renamed = files["src/pkg/renamed_module.py"]
    assert renamed["status"] == "renamed"
    assert renamed["old_path"] == "src/pkg/long_module_name.py"
    assert (renamed["additions"], renamed["deletions"], renamed["similarity"]) == (1, 1, 97)
    assert renamed["old_id"] == git(repo_dir, "rev-parse", f"{a}:src/pkg/long_module_name.py")[:-1]
    assert files["gone.txt"]["status"] == "deleted" and files["gone.txt"]["new_path"] is None
    assert files["gone.txt"]["new_mode"] is None and files["gone.txt"]["new_id"] is None
    assert files["new.txt"]["old_path"] is None and files["new.txt"]["additions"] == 1
    assert files["run.sh"]["old_mode"] == "100644" and files["run.sh"]["new_mode"] == "100755"
    assert files["link"]["new_mode"] == "120000"
    assert files["data.bin"]["binary"] is True and files["data.bin"]["additions"] == 0
    numstat = git(repo_dir, "diff", "--numstat", a, b, "--", "big.txt").split("\t")
    assert [files["big.txt"]["additions"], files["big.txt"]["deletions"]] == [
        int(numstat[0]),
        int(numstat[1]),
    ]
    assert data["params"]["added"] == {"dropout": 0.5}
    assert data["metrics"]["loss"]["delta"]["last"] == -0.2
    assert data["environment"]["host"] == {"hostname": {"a": "box1", "b": "box2"}}
    no_code = json.loads(invoke("diff", A_ID, "HEAD", "--json", "--no-code").stdout)
    assert no_code["code"] is None and no_code["params"] is None


def test_json_file_names_are_byte_safe(repo_dir: Path) -> None:
    names = [b"caf\xe9 latin-1.txt", b"two\nlines.txt", b"tab\there.txt"]
    for name in names:
        (repo_dir / os.fsdecode(name)).write_bytes(b"content\n")
    os.rename(repo_dir / "README", repo_dir / os.fsdecode(b"read\nme\xff"))
    environ = dict(os.environ)
    changes = code_changes(repo(), diff_runs(repo(), "HEAD", None, environ), [], environ)
    tree = add_all_tree(repo_dir, repo_dir.parent / "oracle")
    oracle = git_bytes(repo_dir, "diff", "--name-status", "-z", "-M", "HEAD", tree)
    assert oracle.split(b"\0") == [
        b"A",
        b"caf\xe9 latin-1.txt",
        b"R100",
        b"README",
        b"read\nme\xff",
        b"A",
        b"tab\there.txt",
        b"A",
        b"two\nlines.txt",
        b"",
    ]
    assert [(change.old_path, change.new_path) for change in changes] == [
        (None, b"caf\xe9 latin-1.txt"),
        (b"README", b"read\nme\xff"),
        (None, b"tab\there.txt"),
        (None, b"two\nlines.txt"),
    ]
    data = json.loads(invoke("diff", "HEAD", "--json").stdout)
    assert [(entry["old_path"], entry["new_path"]) for entry in data["code"]] == [
        (None, "caf\\xe9 latin-1.txt"),
        ("README", "read\nme\\xff"),
        (None, "tab\there.txt"),
        (None, "two\nlines.txt"),
    ]


def test_exit_code(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    assert invoke("diff", A_ID, B_ID, "--exit-code").exit_code == 1
    assert invoke("diff", A_ID, B_ID).exit_code == 0
    assert invoke("diff", B_ID, B_ID, "--exit-code").exit_code == 0
    assert invoke("diff", B_ID, "HEAD", "--exit-code", "--", "no-such-path").exit_code == 0
    assert invoke("diff", "HEAD", B_ID, "--exit-code", "--stat", "--", "noeol").exit_code == 1
    assert invoke("diff", A_ID, B_ID, "--exit-code", "--json", "--", "nothing").exit_code == 1
    same_code = invoke("diff", A_ID, B_ID, "--exit-code", "--name-only", "--", "nothing")
    assert (same_code.exit_code, same_code.stdout) == (1, "")  # the params differ
    assert invoke("diff", "HEAD", "HEAD", "--exit-code", "--json").exit_code == 0


def test_bad_input_is_one_clear_line(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    with pytest.raises(UnknownRevisionError) as unknown:
        diff_runs(repo(), "zzzz", "HEAD", os.environ)
    assert str(unknown.value) == "unknown run or revision 'zzzz' (git exp log lists runs)"
    snapshot_run(repo_dir, "20260101.003.xaaa")
    with pytest.raises(GitExpError, match=r"^ambiguous run 'aaa': it matches"):
        diff_runs(repo(), "aaa", "HEAD", os.environ)
    for args, message in [
        (("nope", "HEAD"), "error: unknown run or revision 'nope' (git exp log lists runs)"),
        (("HEAD^{tree}",), "error: 'HEAD^{tree}' is a tree, not a run or a commit"),
        (("HEAD", "--", ":(bad)x"), "error: git diff failed: " + git_fatal(":(bad)x")),
        (("HEAD", "--", "../.."), "error: git diff failed: " + git_fatal("../..")),
        (("HEAD", "--json", "--", "../.."), "error: git diff failed: " + git_fatal("../..")),
    ]:
        code, stdout, stderr = run_main(*args)
        assert (code, stdout, stderr) == (1, "", message + "\n"), args
    usage = invoke("diff", "a", "b", "c")
    assert usage.exit_code == 2
    assert "too many runs: give A and B, and put paths after --" in usage.stderr


def git_fatal(pathspec: str) -> str:
    """git's own one-line reason for refusing `pathspec`."""
    result = subprocess.run(["git", "diff", "HEAD", "--", pathspec], capture_output=True, text=True)
    assert result.returncode == 128 and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def run_main(*args: str) -> tuple[int, str, str]:
    """`git exp diff ARGS` through the real entry point (errors become one line)."""
    result = git_exp(Path.cwd(), "diff", *args)
    return result.returncode, result.stdout, result.stderr


def test_the_repository_is_left_alone(repo_dir: Path, two_runs: tuple[str, str]) -> None:
    use_diff_config(repo_dir)  # textconv and colours run too
    (repo_dir / "src/model.py").write_text("dirty\n")
    git(repo_dir, "add", "src/model.py")
    (repo_dir / "untracked.txt").write_text("untracked\n")
    before = repo_state(repo_dir)
    for args in (
        (A_ID, B_ID),
        (A_ID,),
        ("HEAD", "--stat"),
        (A_ID, "--json", "--", "src"),
        (B_ID, "--name-only"),
    ):
        assert invoke("diff", *args).exit_code == 0, args
    assert repo_state(repo_dir) == before


TRAIN = """
import sys, gitexp
gitexp.log(step=0, loss=1.0)
gitexp.log(step=1, loss=float(sys.argv[2]))
"""


def test_end_to_end_through_git(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write_program(repo_dir / "train.py", TRAIN)
    git(repo_dir, "add", "train.py")
    git(repo_dir, "commit", "-q", "-m", "train")
    first, _ = run_core(repo_dir, "train.py", "--lr", "0.5")
    (repo_dir / "train.py").write_text(TRAIN.replace("loss=1.0", "loss=2.0"))
    second, _ = run_core(repo_dir, "train.py", "--lr", "0.25")
    capfd.readouterr()
    before = repo_state(repo_dir)
    result = git_exp(repo_dir, "diff", "@~1", "@")
    assert result.returncode == 0, result.stderr
    patch = git_diff(repo_dir, first.commit, second.commit).decode()
    assert "-gitexp.log(step=0, loss=1.0)" in patch
    assert result.stdout.startswith(patch + "\n")
    assert "  ~ lr: 0.5 → 0.25" in result.stdout
    assert "  loss    last  0.5  0.25  -0.25" in result.stdout
    stat = git_exp(repo_dir, "diff", "@~1", "--stat", env=user_env({"COLUMNS": "60"}))
    assert stat.stdout.startswith(git_diff(repo_dir, "--stat=60", first.commit).decode())
    assert repo_state(repo_dir) == before


def test_abbreviations_grow_with_packed_objects(repo_dir: Path) -> None:
    blobs = b"".join(
        b"blob\ndata %d\n%s\n" % (len(data), data)
        for data in (b"blob %d\n" % i for i in range(17000))
    )
    subprocess.run(["git", "fast-import", "--quiet"], cwd=repo_dir, input=blobs, check=True)
    (repo_dir / "README").write_text("changed\n")
    git(repo_dir, "commit", "-q", "-am", "change")
    expected = git_diff(repo_dir, "HEAD~1", "HEAD")
    assert re.search(rb"^index [0-9a-f]{8}\.\.[0-9a-f]{8} 100644$", expected, re.MULTILINE)
    assert code_bytes("HEAD~1", "HEAD") == expected

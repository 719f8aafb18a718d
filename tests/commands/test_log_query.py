"""`git exp log --where/--sort/-r/--since/--all/--csv/--md`."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path

import pygit2
import pytest
from helpers_e2e import assert_one_error_line, git_exp, run_core

from gitexp.commands.rm import mark_deleted
from gitexp.errors import UsageError
from gitexp.selection import select_runs

PROGRAM = "import gitexp, sys; gitexp.log(step=1, val_acc=float(sys.argv[2])); sys.exit(0)"


@pytest.fixture
def sweep(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> list[str]:
    ids = []
    for lr, acc in (("0.1", "0.80"), ("0.01", "0.95"), ("0.001", "0.91")):
        result, _ = run_core(
            repo_dir, sys.executable, "-c", PROGRAM, f"--lr={lr}", acc, name="train"
        )
        ids.append(result.run_id)
    capfd.readouterr()
    return ids  # oldest first


def listed(repo_dir: Path, **options: object) -> list[str]:
    return [run.id for run in select_runs(pygit2.Repository(str(repo_dir)), **options)]  # type: ignore[arg-type]


def test_where_sort_reverse_and_limit(repo_dir: Path, sweep: list[str]) -> None:
    oldest, middle, newest = sweep
    assert listed(repo_dir, where="metrics.val_acc.max > 0.9 and params.lr <= 0.01") == [
        newest,
        middle,
    ]
    assert listed(repo_dir, sort="params.lr") == [newest, middle, oldest]
    assert listed(repo_dir, sort="metrics.val_acc.max", reverse=True, limit=2) == [
        middle,
        newest,
    ]
    assert listed(repo_dir, where="params.lr in [0.1, 0.001]") == [newest, oldest]


def test_deleted_runs_hidden_unless_all(repo_dir: Path, sweep: list[str]) -> None:
    mark_deleted(pygit2.Repository(str(repo_dir)), [sweep[1]], True, os.environ)
    assert sweep[1] not in listed(repo_dir)
    assert sweep[1] in listed(repo_dir, include_deleted=True)
    assert listed(repo_dir, include_deleted=True, where="deleted != null") == [sweep[1]]


def test_since(repo_dir: Path, sweep: list[str]) -> None:
    assert len(git_exp(repo_dir, "log", "--since", "1h").stdout.splitlines()) == 3
    assert git_exp(repo_dir, "log", "--since", "2999-01-01").stdout == ""


def test_csv_and_md(repo_dir: Path, sweep: list[str]) -> None:
    rows = list(csv.reader(io.StringIO(git_exp(repo_dir, "log", "--csv").stdout)))
    assert rows[0] == [
        "id", "status", "started_at", "duration_s", "commit", "metrics", "tags", "message"
    ]  # fmt: skip
    assert [row[0] for row in rows[1:]] == sweep[::-1]
    markdown = git_exp(repo_dir, "log", "--md").stdout.splitlines()
    assert markdown[0].startswith("| id | status |")
    assert len(markdown) == 2 + 3


def test_json_respects_filters(repo_dir: Path, sweep: list[str]) -> None:
    out = git_exp(repo_dir, "log", "--json", "--where", "params.lr == 0.01").stdout
    assert [record["id"] for record in json.loads(out)] == [sweep[1]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--where", "params.lr >"], "invalid --where expression: expected a value (a number, "
         "a quoted string, true, false or null) at column 12, found the end"),
        (["--sort", "nope"], "unknown sort key 'nope': use a record field such as started_at, "
         "duration_s, status, params.<name> or metrics.<name>.max"),
        (["--sort", "params.nope"], "unknown sort key 'params.nope': no listed run has it"),
        (["--since", "soon"], "invalid --since 'soon': use a duration (45s, 90m, 12h, 2d, 1w) or a "
         "date (2026-11-01)"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line(
    repo_dir: Path, sweep: list[str], args: list[str], expected: str
) -> None:
    result = git_exp(repo_dir, "log", *args)
    assert result.returncode == 2  # a usage error, as click's own
    assert_one_error_line(result.stderr, expected)


def test_query_error_is_a_gitexp_error(repo_dir: Path, sweep: list[str]) -> None:
    with pytest.raises(UsageError):
        listed(repo_dir, where="(")

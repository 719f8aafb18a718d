"""`git exp compare`: one row a run, params and metric columns, only those that differ."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pygit2
import pytest
from helpers_diff import invoke, snapshot_run
from helpers_e2e import git_exp, repo_state, run_core, write_program

from gitexp.commands.compare import compare_runs
from gitexp.errors import UnknownRunError, UsageError


def metric(last: float, low: float, high: float) -> dict[str, float]:
    return {"last": last, "min": low, "max": high, "count": 3, "step": 2}


RUNS = [
    (
        "20260101.001.aaaa",
        {
            "params": {"lr": 0.1, "epochs": 10, "seed": 1},
            "metrics": {"loss": metric(0.5, 0.4, 2.0), "val_acc": metric(0.8, 0.5, 0.85)},
            "tags": ["baseline"],
        },
    ),
    (
        "20260101.002.bbbb",
        {
            "params": {"lr": 0.01, "epochs": 10, "seed": 1},
            "metrics": {"loss": metric(0.3, 0.3, 2.0), "val_acc": metric(0.9, 0.5, 0.9)},
            "tags": ["sweep"],
        },
    ),
    (
        "20260101.003.cccc",
        {
            "params": {"lr": 0.001, "epochs": 10, "seed": 1, "dropout": 0.5},
            "metrics": {"loss": metric(0.35, 0.3, 2.0)},
            "tags": ["sweep"],
            "message": "with dropout",
        },
    ),
    (
        "20260101.004.dddd",
        {
            "params": {"lr": 0.5, "epochs": 10, "seed": 1},
            "metrics": {"loss": metric(9.0, 2.0, 9.0)},
            "deleted": "2026-01-05T00:00:00.000+00:00",
        },
    ),
]


@pytest.fixture
def runs(repo_dir: Path) -> None:
    for day, (run_id, fields) in enumerate(RUNS, start=1):
        started = f"2026-01-0{day}T10:00:00.000+00:00"
        snapshot_run(repo_dir, run_id, fields, started_at=started)
    snapshot_run(
        repo_dir, "20260101.001.eeee", name="other", started_at="2025-12-01T00:00:00+00:00"
    )


def table(**options: object) -> tuple[list[str], list[list[object]]]:
    result = compare_runs(pygit2.Repository("."), **options)  # type: ignore[arg-type]
    return result.columns, [[row.get(c) for c in result.columns] for row in result.rows]


def test_only_differing_columns_newest_first(runs: None) -> None:
    columns, rows = table(names=["train"])
    assert columns == ["id", "status", "params.lr", "params.dropout", "loss", "val_acc"]
    assert rows == [
        ["train/20260101.003.cccc", "succeeded", 0.001, 0.5, 0.35, None],
        ["train/20260101.002.bbbb", "succeeded", 0.01, None, 0.3, 0.9],
        ["train/20260101.001.aaaa", "succeeded", 0.1, None, 0.5, 0.8],
    ]


def test_all_columns_and_metric_stat(runs: None) -> None:
    columns, rows = table(names=["train"], all_columns=True, metric_stat="max")
    assert columns == [
        "id",
        "status",
        "params.lr",
        "params.epochs",
        "params.seed",
        "params.dropout",
        "loss.max",
        "val_acc.max",
    ]
    assert rows[0][-2:] == [2.0, None]
    assert rows[2][-2:] == [2.0, 0.85]


def test_named_runs_in_the_order_given_deleted_included(runs: None) -> None:
    columns, rows = table(specs=["aaaa", "dddd", "@"])
    assert [row[0] for row in rows] == [
        "train/20260101.001.aaaa",
        "train/20260101.004.dddd",
        "train/20260101.003.cccc",
    ]
    assert "params.epochs" not in columns
    _, single = table(specs=["aaaa", "train/20260101.001.aaaa"])
    assert len(single) == 1  # named twice, shown once


def test_filters(runs: None) -> None:
    assert [row[0] for row in table(tags=["sweep"])[1]] == [
        "train/20260101.003.cccc",
        "train/20260101.002.bbbb",
    ]
    _, rows = table(where="params.lr < 0.05 and metrics.loss.min <= 0.3")
    assert [row[0] for row in rows] == ["train/20260101.003.cccc", "train/20260101.002.bbbb"]
    _, rows = table(include_deleted=True, max_count=2)
    assert [row[0] for row in rows] == ["train/20260101.004.dddd", "train/20260101.003.cccc"]
    _, everything = table()
    assert [row[0] for row in everything][-1] == "other/20260101.001.eeee"
    assert "train/20260101.004.dddd" not in [row[0] for row in everything]
    columns, rows = table(specs=["aaaa"])
    assert len(rows) == 1 and "params.epochs" in columns  # one row: every column


def test_text_table(runs: None) -> None:
    result = invoke("compare", "--name", "train")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "id                       status     params.lr  params.dropout  loss  val_acc",
        "train/20260101.003.cccc  succeeded      0.001             0.5  0.35        -",
        "train/20260101.002.bbbb  succeeded       0.01               -   0.3      0.9",
        "train/20260101.001.aaaa  succeeded        0.1               -   0.5      0.8",
    ]


def test_csv_markdown_and_json(runs: None) -> None:
    text = invoke("compare", "aaaa", "bbbb", "--csv").stdout
    assert list(csv.reader(io.StringIO(text))) == [
        ["id", "status", "params.lr", "loss", "val_acc"],
        ["train/20260101.001.aaaa", "succeeded", "0.1", "0.5", "0.8"],
        ["train/20260101.002.bbbb", "succeeded", "0.01", "0.3", "0.9"],
    ]
    assert invoke("compare", "aaaa", "cccc", "--md").stdout.splitlines() == [
        "| id | status | params.lr | params.dropout | loss | val_acc |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        "| train/20260101.001.aaaa | succeeded | 0.1 | - | 0.5 | 0.8 |",
        "| train/20260101.003.cccc | succeeded | 0.001 | 0.5 | 0.35 | - |",
    ]
    assert json.loads(invoke("compare", "aaaa", "cccc", "--json").stdout) == [
        {
            "id": "train/20260101.001.aaaa",
            "status": "succeeded",
            "params.lr": 0.1,
            "params.dropout": None,
            "loss": 0.5,
            "val_acc": 0.8,
        },
        {
            "id": "train/20260101.003.cccc",
            "status": "succeeded",
            "params.lr": 0.001,
            "params.dropout": 0.5,
            "loss": 0.35,
            "val_acc": None,
        },
    ]


def test_bad_input(runs: None, repo_dir: Path) -> None:
    with pytest.raises(UnknownRunError):
        compare_runs(pygit2.Repository("."), ["zzzz"])
    with pytest.raises(UsageError):
        compare_runs(pygit2.Repository("."), where="params.lr >")
    for args, message, code in [
        (("zzzz",), "error: unknown run 'zzzz' (git exp log lists runs)\n", 1),
        (("--where", "params.lr >"), None, 2),
    ]:
        result = git_exp(repo_dir, "compare", *args)
        assert result.returncode == code and result.stdout == ""
        assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: ")
        assert message is None or result.stderr == message
    both = invoke("compare", "--csv", "--md")
    assert both.exit_code == 2 and "choose one of --json, --csv and --md" in both.stderr


def test_leaves_the_repository_alone(runs: None, repo_dir: Path) -> None:
    before = repo_state(repo_dir)
    for args in ((), ("--csv",), ("--json", "--all"), ("aaaa", "bbbb", "--md")):
        assert invoke("compare", *args).exit_code == 0
    assert repo_state(repo_dir) == before


def test_end_to_end_through_git(repo_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    write_program(repo_dir / "train.py", "import gitexp, sys\ngitexp.log(acc=float(sys.argv[2]))\n")
    run_core(repo_dir, "train.py", "--acc", "0.5")
    run_core(repo_dir, "train.py", "--acc", "0.75")
    capfd.readouterr()
    result = git_exp(repo_dir, "compare", "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["params.acc"], row["acc"]) for row in rows] == [("0.75", "0.75"), ("0.5", "0.5")]

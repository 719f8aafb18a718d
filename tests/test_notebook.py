"""`gitexp.runs()`: runs as Python objects, filtered like `git exp log`, shown in notebooks."""

from __future__ import annotations

import datetime as dt
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import git
from helpers_diff import snapshot_run
from helpers_e2e import user_env

import gitexp
from gitexp.errors import GitExpError, UnknownRunError
from gitexp.extras import MissingExtraError
from gitexp.notebook import Run, Runs, series_rows

HOSTILE = "<img src=x onerror=alert(1)> & \x1b[31m"


def summary(last: float, low: float, high: float) -> dict[str, float]:
    return {"last": last, "min": low, "max": high, "count": 2, "step": 1}


def mark_failed(repo_dir: Path, ref: str) -> None:
    """Rewrite a run's record with status failed, as git notes does."""
    commit = git(repo_dir, "rev-parse", ref).strip()
    record = json.loads(git(repo_dir, "notes", "--ref", "experiments", "show", commit))
    record["status"] = "failed"
    git(repo_dir, "notes", "--ref", "experiments", "add", "-f", "-m", json.dumps(record), commit)


@pytest.fixture
def repo(repo_dir: Path) -> Path:
    """Four runs: two of train (one tagged, with a hostile message), one of eval, one deleted."""
    snapshot_run(
        repo_dir,
        "20260101.001.aaaa",
        {
            "params": {"lr": 0.1},
            "metrics": {"loss": summary(0.5, 0.5, 1.0)},
            "duration_s": 12.5,
            "command": ["train.py", "--lr", "0.1"],
        },
        started_at="2026-01-01T10:00:00.000+00:00",
    )
    snapshot_run(
        repo_dir,
        "20260102.001.bbbb",
        {
            "params": {"lr": 0.01, HOSTILE: HOSTILE},
            "metrics": {"loss": summary(0.2, 0.2, 1.0), "val_acc": summary(0.9, 0.5, 0.9)},
            "tags": ["best", HOSTILE],
            "message": HOSTILE,
            "exit_code": 1,
        },
        started_at="2026-01-02T10:00:00.000+00:00",
    )
    snapshot_run(
        repo_dir, "20260103.001.cccc", name="eval", started_at="2026-01-03T10:00:00.000+00:00"
    )
    snapshot_run(
        repo_dir,
        "20260104.001.dddd",
        {"deleted": "2026-01-05T00:00:00.000+00:00"},
        started_at="2026-01-04T10:00:00.000+00:00",
    )
    mark_failed(repo_dir, "refs/experiments/train/20260102.001.bbbb")
    run_dir = repo_dir / ".git" / "experiments" / "train" / "20260102.001.bbbb"
    run_dir.mkdir(parents=True)
    lines = [{"step": 0, "loss": 1.0, "val_acc": 0.5}, {"step": 1, "loss": 0.2}, {"val_acc": 0.9}]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return repo_dir


def test_runs_expose_record_fields(repo: Path) -> None:
    runs = gitexp.runs()
    assert isinstance(runs, Runs) and len(runs) == 3
    assert [run.id for run in runs] == [
        "eval/20260103.001.cccc",
        "train/20260102.001.bbbb",
        "train/20260101.001.aaaa",
    ]
    first = runs["aaaa"]
    assert isinstance(first, Run)
    assert (first.name, first.status, first.params, first.tags) == (
        "train",
        "succeeded",
        {"lr": 0.1},
        [],
    )
    assert first.metrics["loss"]["last"] == 0.5
    assert first.started_at == dt.datetime(2026, 1, 1, 10, tzinfo=dt.UTC)
    assert first.duration_s == 12.5 and first.command == ["train.py", "--lr", "0.1"]
    assert first.ref == "refs/experiments/train/20260101.001.aaaa" and len(first.commit) == 40
    assert first.message is None and first.run_dir is None and first.series() == {}
    assert runs[1].status == "failed" and runs[1].message == HOSTILE
    assert runs[1].run_dir == repo / ".git" / "experiments" / "train" / "20260102.001.bbbb"
    assert isinstance(runs[0:2], Runs) and len(runs[0:2]) == 2
    assert {"duration_s", "host", "metrics_frame"} <= set(dir(first))
    with pytest.raises(AttributeError):
        first.no_such_field  # noqa: B018
    with pytest.raises(UnknownRunError):
        runs["zzzz"]


def test_filters_are_those_of_log(repo: Path) -> None:
    def ids(**filters: object) -> list[str]:
        return [run.id.rsplit(".", 1)[1] for run in gitexp.runs(str(repo), **filters)]

    assert ids(name="train") == ["bbbb", "aaaa"]
    assert ids(name=["train", "eval"], limit=1) == ["cccc"]
    assert ids(status="failed") == ["bbbb"]
    assert ids(tag="best") == ["bbbb"]
    assert ids(where="params.lr < 0.05") == ["bbbb"]
    assert ids(since="2026-01-02") == ["cccc", "bbbb"]
    assert ids(since=dt.datetime(2026, 1, 3, tzinfo=dt.UTC)) == ["cccc"]
    assert ids(include_deleted=True) == ["dddd", "cccc", "bbbb", "aaaa"]
    assert ids(sort="params.lr") == ["bbbb", "aaaa", "cccc"]
    (repo / "sub").mkdir()
    assert len(gitexp.runs(repo / "sub")) == 3  # found the way git finds the repository


def test_metrics_frame_merges_the_series_by_step(repo: Path) -> None:
    run = gitexp.runs()["bbbb"]
    assert series_rows(run.series()) == [
        {"step": 0, "loss": 1.0, "val_acc": 0.5},
        {"step": 1, "loss": 0.2, "val_acc": 0.9},  # val_acc's second point had no step: 1
    ]
    pandas = pytest.importorskip("pandas")
    frame = run.metrics_frame()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == ["step", "loss", "val_acc"]
    assert frame["loss"].tolist() == [1.0, 0.2]


def test_to_pandas_has_a_row_per_run(repo: Path) -> None:
    pytest.importorskip("pandas")
    frame = gitexp.runs(name="train").to_pandas()
    assert frame["id"].tolist() == ["train/20260102.001.bbbb", "train/20260101.001.aaaa"]
    assert frame["params.lr"].tolist() == [0.01, 0.1]
    assert frame["metrics.loss.last"].tolist() == [0.2, 0.5]
    assert math.isnan(frame["metrics.val_acc.max"].tolist()[1])
    assert frame["status"].tolist() == ["failed", "succeeded"]


def test_to_pandas_without_pandas_says_how_to_install_it(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if pandas were not installed
    runs = gitexp.runs()
    with pytest.raises(
        MissingExtraError, match=r"^Runs.to_pandas\(\) needs pandas: pip install pandas$"
    ):
        runs.to_pandas()
    assert runs["bbbb"].metrics_frame() == series_rows(runs["bbbb"].series())


def test_collection_html_escapes_everything(repo: Path) -> None:
    page = gitexp.runs()._repr_html_()
    assert "<img" not in page and "\x1b" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; &amp; \\x1b[31m" in page
    root = ET.fromstring(f"<div>{page}</div>")  # well-formed, so nothing escaped the cells
    header = [cell.text for cell in root.iter("th")]
    assert header[:5] == ["id", "status", "started", "duration", "params.lr"]
    assert {"loss", "val_acc", "tags", "message"} <= set(header)
    statuses = [span for span in root.iter("span") if span.text == "failed"]
    assert statuses and "color:" in statuses[0].attrib["style"]


def test_run_html_shows_its_curves(repo: Path) -> None:
    pytest.importorskip("matplotlib")
    runs = gitexp.runs()
    page = runs["bbbb"]._repr_html_()
    assert "<img" not in page
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    texts = {
        "".join(n.itertext()) for n in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")
    }
    assert {"loss", "val_acc", "train/bbbb"} <= texts
    assert "<svg" not in runs["aaaa"]._repr_html_()  # no series here: the record table only
    assert "<svg" in runs[0:2].plot(["loss"])._repr_svg_()
    with pytest.raises(GitExpError, match="unknown metric 'acc'"):
        runs["bbbb"].plot(["acc"])
    with pytest.raises(GitExpError, match=r"^no metrics to plot"):
        runs["aaaa"].plot()


def test_run_html_without_matplotlib(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    page = gitexp.runs()["bbbb"]._repr_html_()
    assert "<svg" not in page and "params.lr" in page
    assert "curves need matplotlib: pip install 'gitexp[ui]'" in page


def test_import_gitexp_stays_light(repo: Path) -> None:
    code = (
        "import sys, gitexp; assert callable(gitexp.runs); "
        "heavy = ('pygit2', 'click', 'psutil', 'gitexp.notebook'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=user_env(), capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"

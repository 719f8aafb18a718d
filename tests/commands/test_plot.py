"""`git exp plot`: metric series read back, figures that decode, legends naming each run."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pygit2
import pytest
from helpers_diff import invoke, snapshot_run
from helpers_e2e import (
    assert_one_error_line,
    git_exp,
    start_git_exp,
    user_env,
    wait_for,
    write_program,
)

from gitexp.commands.plot import plot_data
from gitexp.errors import GitExpError
from gitexp.listing import list_runs
from gitexp.metrics import summarize_metrics
from gitexp.plotting import short_labels
from gitexp.series import downsample, metric_series

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE_METRIC = "acc $x$ <script>&"


def write_points(run_dir: Path, *points: dict[str, Any] | str) -> None:
    """Append points (a str is written as a raw line) to the run's metrics.jsonl."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "metrics.jsonl").open("a") as file:
        for point in points:
            file.write((point if isinstance(point, str) else json.dumps(point)) + "\n")


@pytest.fixture
def runs(repo_dir: Path) -> dict[str, Path]:
    """Three runs with metrics (two of them share val_acc) and one without; id -> run dir."""
    made = {}
    for run_id, lr in (("20260101.001.aaaa", 0.1), ("20260101.002.bbbb", 0.05)):
        full_id, _ = snapshot_run(repo_dir, run_id, {"params": {"lr": lr}})
        made[full_id] = run_dir = repo_dir / ".git" / "experiments" / full_id
        write_points(
            run_dir,
            *({"step": step, "loss": math.exp(-lr * step), "val_acc": 1 - lr} for step in range(5)),
        )
    full_id, _ = snapshot_run(repo_dir, "20260101.003.cccc", name="eval")
    made[full_id] = run_dir = repo_dir / ".git" / "experiments" / full_id
    write_points(run_dir, {"step": 0, "loss": 3.0}, {"step": 1, "loss": 2.0})
    full_id, _ = snapshot_run(repo_dir, "20260101.004.dddd")
    made[full_id] = run_dir = repo_dir / ".git" / "experiments" / full_id
    run_dir.mkdir(parents=True)  # a run that logged nothing
    return made


def test_series_follow_the_rules_of_the_summaries(tmp_path: Path) -> None:
    write_points(
        tmp_path,
        {"loss": 1.0, "note": "text", "flag": True},
        {"loss": None, "acc": 0.5},
        {"step": 10, "loss": 0.5, "acc": float("nan")},
        {"step": 11, "loss": 0.25, "_rank": 1},
        "not json",
        '{"step": 12, "loss": 0.1',  # a line the program is still writing
    )
    series = metric_series(tmp_path)
    assert list(series) == ["loss", "acc"]
    assert series["loss"][0] == (0, 1.0)
    assert series["loss"][1][0] == 1 and math.isnan(series["loss"][1][1])
    assert series["loss"][2] == (10, 0.5)
    assert series["acc"][0] == (0, 0.5)
    assert series["acc"][1][0] == 10 and math.isnan(series["acc"][1][1])
    assert metric_series(tmp_path, rank=1) == {"loss": [(11, 0.25)]}
    assert metric_series(tmp_path / "missing") == {} == metric_series(None)
    summary = summarize_metrics(tmp_path / "metrics.jsonl").metrics
    # The series ends where the summary does (rank 0 only here, so the summary counts one more).
    assert summary["loss"]["count"] == len(series["loss"]) + 1
    assert summary["acc"]["step"] == series["acc"][-1][0]


def test_downsample_keeps_ends_and_extremes() -> None:
    points = [(float(step), math.sin(step / 50)) for step in range(100_000)]
    points[54_321] = (54_321.0, 99.0)
    kept = downsample(points, 1000)
    assert len(kept) <= 1002
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (54_321.0, 99.0) in kept
    assert [step for step, _ in kept] == sorted(step for step, _ in kept)
    assert downsample(points[:10], 1000) == points[:10]


def test_plot_data_defaults_to_the_shared_metrics(runs: dict[str, Path]) -> None:
    repo = pygit2.Repository(".")
    data = plot_data(repo, ["aaaa", "bbbb"])
    assert data.metrics == ["loss", "val_acc"]
    assert [run.label for run in data.runs] == ["train/aaaa", "train/bbbb"]
    assert data.runs[0].series["loss"][:2] == [(0, 1.0), (1, math.exp(-0.1))]
    mixed = plot_data(repo, ["aaaa", "eval/cccc", "dddd"])
    assert mixed.metrics == ["loss"]  # val_acc is not logged by eval/cccc
    assert mixed.available == ["loss", "val_acc"]
    assert mixed.without_metrics == ["train/20260101.004.dddd"]
    assert [run.id for run in mixed.runs] == ["train/20260101.001.aaaa", "eval/20260101.003.cccc"]
    chosen = plot_data(repo, ["@~3"], ["val_acc"])
    assert chosen.metrics == ["val_acc"] and list(chosen.runs[0].series) == ["val_acc"]


def test_plot_data_errors(runs: dict[str, Path]) -> None:
    repo = pygit2.Repository(".")
    with pytest.raises(GitExpError, match=r"^unknown metric 'acc': the runs logged loss, val_acc$"):
        plot_data(repo, ["aaaa"], ["loss", "acc"])
    with pytest.raises(GitExpError, match=r"^no metrics to plot: train/20260101.004.dddd logged"):
        plot_data(repo, ["dddd"])


def test_a_run_whose_directory_is_elsewhere_is_named_as_such(
    runs: dict[str, Path], repo_dir: Path
) -> None:
    # As after `git exp pull`: the record names a run directory on the machine it ran on.
    full_id, _ = snapshot_run(
        repo_dir, "20260101.005.eeee", {"run_dir": "/elsewhere/train/20260101.005.eeee"}
    )
    repo = pygit2.Repository(".")
    data = plot_data(repo, ["aaaa", "eeee", "dddd"])
    assert (data.not_here, data.without_metrics) == ([full_id], ["train/20260101.004.dddd"])
    with pytest.raises(GitExpError) as raised:
        plot_data(repo, ["eeee", "dddd"])
    assert str(raised.value) == (
        "no metrics to plot: train/20260101.004.dddd logged none (programs log them with "
        "gitexp.log(...) or JSON lines in $GITEXP_METRICS); the run directory of "
        f"{full_id} is not on this machine (metrics stay where a run ran: `git exp export` "
        "there and `git exp import` here bring them)"
    )
    result = git_exp(repo_dir, "plot", "aaaa", "eeee", "--json")
    assert result.returncode == 0
    assert f"{full_id}: its run directory is not on this machine; left out" in result.stderr
    assert json.loads(result.stdout)["not_here"] == [full_id]


def test_labels_are_short_unless_ambiguous(repo_dir: Path) -> None:
    snapshot_run(repo_dir, "20260101.001.aaaa")
    snapshot_run(repo_dir, "20260102.001.aaaa")
    snapshot_run(repo_dir, "20260102.002.bbbb")
    labels = short_labels(sorted(list_runs(pygit2.Repository(".")), key=lambda run: run.id))
    assert labels == ["train/20260101.001.aaaa", "train/20260102.001.aaaa", "train/bbbb"]


def test_png_decodes(runs: dict[str, Path], tmp_path: Path) -> None:
    from matplotlib.image import imread

    output = tmp_path / "curves.png"
    result = invoke("plot", "aaaa", "bbbb", "-o", str(output))
    assert result.exit_code == 0, result.output
    assert f"wrote {output}" in result.stderr
    data = output.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    pixels = imread(output)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len({tuple(pixel) for pixel in pixels[::7, ::7].reshape(-1, pixels.shape[2])}) > 2


def test_svg_has_a_subplot_per_metric_and_a_legend_naming_each_run(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    output = tmp_path / "curves.svg"
    result = invoke("plot", "aaaa", "bbbb", "-o", str(output))
    assert result.exit_code == 0, result.output
    texts = svg_texts(output.read_text())
    assert {"train/aaaa", "train/bbbb", "loss", "val_acc", "step"} <= texts
    assert output.read_bytes() == svg_again(tmp_path)  # same runs, same bytes


def svg_again(tmp_path: Path) -> bytes:
    again = tmp_path / "again.svg"
    assert invoke("plot", "aaaa", "bbbb", "-o", str(again)).exit_code == 0
    return again.read_bytes()


def svg_texts(svg: str) -> set[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return {"".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")}


def test_html_is_a_page_with_the_svg_inline(runs: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    result = invoke("plot", "aaaa", "eval/cccc", "-o", str(output))
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert page.startswith("<!DOCTYPE html>")
    svg = page[page.index("<svg") : page.index("</svg>") + len("</svg>")]
    assert {"train/aaaa", "eval/cccc", "loss"} <= svg_texts(svg)
    # Self-contained: nothing to fetch, nothing to run.
    assert "<script" not in page and " src=" not in page
    assert set(re.findall(r'href="(.)', page)) <= {"#"}


def test_hostile_metric_names_stay_text(repo_dir: Path, tmp_path: Path) -> None:
    full_id, _ = snapshot_run(repo_dir, "20260101.001.aaaa")
    write_points(repo_dir / ".git/experiments" / full_id, {HOSTILE_METRIC: 1}, {HOSTILE_METRIC: 2})
    output = tmp_path / "x.svg"
    assert invoke("plot", "@", "-o", str(output)).exit_code == 0
    assert HOSTILE_METRIC in svg_texts(output.read_text())


def test_terminal_plot_and_json(runs: dict[str, Path]) -> None:
    result = invoke("plot", "aaaa", "bbbb", "--metric", "loss")
    assert result.exit_code == 0, result.output
    assert "train/aaaa" in result.stdout and "train/bbbb" in result.stdout
    assert "loss" in result.stdout and "\x1b[" not in result.stdout
    assert len(result.stdout.splitlines()) > 10
    as_json = json.loads(invoke("plot", "aaaa", "eval/cccc", "dddd", "--json").stdout)
    assert as_json["metrics"] == ["loss"]
    assert as_json["without_metrics"] == ["train/20260101.004.dddd"]
    assert as_json["runs"][1] == {
        "id": "eval/20260101.003.cccc",
        "label": "eval/cccc",
        "status": "succeeded",
        "series": {"loss": [[0, 3.0], [1, 2.0]]},
    }


def test_user_errors_are_one_line(runs: dict[str, Path], repo_dir: Path) -> None:
    unknown = git_exp(repo_dir, "plot", "aaaa", "--metric", "acc")
    assert unknown.returncode == 1
    assert_one_error_line(unknown.stderr, "unknown metric 'acc': the runs logged loss, val_acc")
    none = git_exp(repo_dir, "plot", "dddd")
    assert none.returncode == 1
    assert "no metrics to plot" in assert_one_error_line(none.stderr)
    bad = invoke("plot", "aaaa", "-o", "curves.pdf")
    assert bad.exit_code == 2 and "must end in .png, .svg or .html" in bad.stderr
    missing_dir = git_exp(repo_dir, "plot", "aaaa", "-o", "no/such/dir/x.png")
    assert missing_dir.returncode == 1
    assert_one_error_line(missing_dir.stderr).startswith("cannot write no/such/dir/x.png")


@pytest.mark.parametrize(("module", "args"), [("matplotlib", ["-o", "x.png"]), ("plotext", [])])
def test_without_the_ui_extra_it_says_how_to_install_it(
    runs: dict[str, Path], repo_dir: Path, module: str, args: list[str]
) -> None:
    # A None entry in sys.modules makes `import matplotlib` fail as if it were not installed.
    code = (
        f"import sys; sys.modules[{module!r}] = None; "
        f"sys.argv = ['git-exp', 'plot', 'aaaa', *{args!r}]; "
        "from gitexp.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_dir, env=user_env(), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert_one_error_line(result.stderr, f"git exp plot needs {module}: pip install 'gitexp[ui]'")
    assert not (repo_dir / "x.png").exists()


@pytest.mark.slow
def test_a_running_run_plots_what_it_has_so_far(repo_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    write_program(
        repo_dir / "train.py",
        f"""
        import os, time, gitexp
        for step in range(3):
            gitexp.log(step=step, loss=1.0 / (step + 1))
        gitexp.flush()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.02)
        gitexp.log(step=3, loss=0.1)
        """,
    )
    process = start_git_exp(repo_dir, "run", "train.py")
    try:
        wait_for(lambda: _logged_points(repo_dir) == 3)
        output = tmp_path / "live.svg"
        result = git_exp(repo_dir, "plot", "@", "-o", str(output))
        assert result.returncode == 0, result.stderr
        assert any(text.endswith(" (running)") for text in svg_texts(output.read_text()))
        data = json.loads(git_exp(repo_dir, "plot", "@", "--json").stdout)
        assert data["runs"][0]["status"] == "running"
        assert data["runs"][0]["series"]["loss"] == [[0, 1.0], [1, 0.5], [2, 1 / 3]]
    finally:
        go.touch()
        process.communicate(timeout=60)
    assert process.returncode == 0
    done = json.loads(git_exp(repo_dir, "plot", "@", "--json").stdout)
    assert done["runs"][0]["status"] == "succeeded"
    assert done["runs"][0]["series"]["loss"][-1] == [3, 0.1]
    terminal = git_exp(repo_dir, "plot", "@")
    assert terminal.returncode == 0 and "train/" in terminal.stdout


def _logged_points(repo_dir: Path) -> int:
    files = list((repo_dir / ".git" / "experiments" / "train").glob("*/metrics.jsonl"))
    return len(files[0].read_text().splitlines()) if files else 0


def test_run_dir_comes_from_the_logdir_only(repo_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "moved" / "train" / "20260101.001.aaaa"
    write_points(elsewhere, {"loss": 1})
    other = tmp_path / "secrets"
    write_points(other, {"stolen": 1})
    snapshot_run(repo_dir, "20260101.001.aaaa", {"run_dir": str(elsewhere)})
    snapshot_run(repo_dir, "20260101.002.bbbb", {"run_dir": str(other)})
    repo = pygit2.Repository(".")
    root = repo_dir / ".git" / "experiments"
    for spec in ("aaaa", "bbbb"):  # a record naming another directory is never followed,
        with pytest.raises(GitExpError):  # even one ending in <name>/<id>
            plot_data(repo, [spec])
    write_points(root / "train" / "20260101.002.bbbb", {"loss": 2})
    assert plot_data(repo, ["bbbb"]).runs[0].series == {"loss": [(0, 2.0)]}
